"""``rights-hub``: migrate, downgrade, seed the sample rights, expire due holds and grants, serve."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from qianmian_core.logging import configure_logging
from qianmian_core.settings import load_settings

from rights_hub.settings import RightsHubSettings


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rights-hub`` console script."""
    parser = argparse.ArgumentParser(prog="rights-hub", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="apply the database migrations up to head")
    down = commands.add_parser("downgrade", help="revert the database migrations")
    down.add_argument("--revision", default="base", help="target revision (default: base, an empty schema)")
    commands.add_parser("seed", help="migrate, then load the sample rights with budgets (idempotent)")
    commands.add_parser(
        "expire", help="expire due holds and unredeemed grants, retire ended rights (for a CronJob)"
    )
    commands.add_parser("serve", help="serve the API with uvicorn on the configured host and port")
    args = parser.parse_args(argv)

    settings = load_settings(RightsHubSettings)
    configure_logging(settings.service_name, settings.log_level)
    # Imported here so that `--help` stays fast and needs no database driver.
    from rights_hub.database import downgrade, migrate

    if args.command == "migrate":
        migrate(settings.database_url)
        print(f"rights-hub: migrated {settings.database_url.split('@')[-1]} to head")
    elif args.command == "downgrade":
        downgrade(settings.database_url, args.revision)
        print(f"rights-hub: downgraded to {args.revision}")
    elif args.command == "seed":
        _seed(settings)
    elif args.command == "expire":
        _expire(settings)
    elif args.command == "serve":
        import uvicorn

        from rights_hub.main import create_app

        uvicorn.run(create_app(settings), host=settings.host, port=settings.port, workers=1, log_config=None)
    return 0


def _seed(settings: RightsHubSettings) -> None:
    from rights_hub.database import migrate, open_database
    from rights_hub.service import CatalogueService, utc_now
    from rights_hub.service.seed import SEED_RIGHTS, seed_rights

    migrate(settings.database_url)
    database = open_database(settings.database_url)
    try:
        report = seed_rights(CatalogueService(database), utc_now())
    finally:
        database.dispose()
    print(
        f"rights-hub: seed of {len(SEED_RIGHTS)} rights: {report.created} created, "
        f"{report.activated} activated, {report.unchanged} already in place"
    )


def _expire(settings: RightsHubSettings) -> None:
    from rights_hub.database import open_database
    from rights_hub.service import LedgerService

    database = open_database(settings.database_url)
    try:
        report = LedgerService(database).expire_due(batch_size=settings.expire_batch_size)
    finally:
        database.dispose()
    print(
        f"rights-hub: expired {report.holds_expired} holds and {report.grants_expired} grants, "
        f"retired {report.rights_retired} rights"
    )


if __name__ == "__main__":
    sys.exit(main())
