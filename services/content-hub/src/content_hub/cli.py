"""``content-hub``: migrate, downgrade, seed sample content, serve."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from qianmian_core.logging import configure_logging
from qianmian_core.settings import load_settings

from content_hub.profile import CustomerTraits
from content_hub.settings import ContentHubSettings


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``content-hub`` console script."""
    parser = argparse.ArgumentParser(prog="content-hub", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="apply the database migrations up to head")
    down = commands.add_parser("downgrade", help="revert the database migrations")
    down.add_argument("--revision", default="base", help="target revision (default: base, an empty schema)")
    commands.add_parser(
        "seed", help="migrate, then write and approve sample content through the workflow (idempotent)"
    )
    commands.add_parser("serve", help="serve the API with uvicorn on the configured host and port")
    args = parser.parse_args(argv)

    settings = load_settings(ContentHubSettings)
    configure_logging(settings.service_name, settings.log_level)
    # Imported here so that `--help` stays fast and needs no database driver.
    from content_hub.database import downgrade, migrate

    if args.command == "migrate":
        migrate(settings.database_url)
        print(f"content-hub: migrated {settings.database_url.split('@')[-1]} to head")
    elif args.command == "downgrade":
        downgrade(settings.database_url, args.revision)
        print(f"content-hub: downgraded to {args.revision}")
    elif args.command == "seed":
        return _seed(settings)
    elif args.command == "serve":
        import uvicorn

        from content_hub.main import create_app

        uvicorn.run(create_app(settings), host=settings.host, port=settings.port, workers=1, log_config=None)
    return 0


def _seed(settings: ContentHubSettings) -> int:
    from qianmian_core.db import Database

    from content_hub.database import migrate
    from content_hub.main import build_service
    from content_hub.service.seed import SEED_PRODUCTS, seed_content

    migrate(settings.database_url)
    database = Database(settings.database_url)
    try:
        report = seed_content(build_service(settings, database, _NoProfiles()))
    finally:
        database.dispose()
    print(
        f"content-hub: seed content for {len(SEED_PRODUCTS)} products: {report.created} created, "
        f"{report.approved} approved, {report.unchanged} already in place"
    )
    return 0


class _NoProfiles:
    """Seeding never renders for a customer."""

    async def traits_for(self, customer_id: str) -> CustomerTraits:
        raise RuntimeError("seeding needs no customer traits")


if __name__ == "__main__":
    sys.exit(main())
