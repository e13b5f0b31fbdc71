"""``product-hub``: migrate, downgrade, seed the catalogue, serve."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from qianmian_core.logging import configure_logging
from qianmian_core.settings import load_settings
from qianmian_rules import CustomerFacts

from product_hub.settings import ProductHubSettings


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``product-hub`` console script."""
    parser = argparse.ArgumentParser(prog="product-hub", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="apply the database migrations up to head")
    down = commands.add_parser("downgrade", help="revert the database migrations")
    down.add_argument("--revision", default="base", help="target revision (default: base, an empty schema)")
    commands.add_parser("seed", help="migrate, then load the seed catalogue (idempotent)")
    commands.add_parser("serve", help="serve the API with uvicorn on the configured host and port")
    args = parser.parse_args(argv)

    settings = load_settings(ProductHubSettings)
    configure_logging(settings.service_name, settings.log_level)
    # Imported here so that `--help` stays fast and needs no database driver.
    from product_hub.database import downgrade, migrate

    if args.command == "migrate":
        migrate(settings.database_url)
        print(f"product-hub: migrated {settings.database_url.split('@')[-1]} to head")
    elif args.command == "downgrade":
        downgrade(settings.database_url, args.revision)
        print(f"product-hub: downgraded to {args.revision}")
    elif args.command == "seed":
        return _seed(settings)
    elif args.command == "serve":
        import uvicorn

        from product_hub.main import create_app

        uvicorn.run(create_app(settings), host=settings.host, port=settings.port, workers=1, log_config=None)
    return 0


def _seed(settings: ProductHubSettings) -> int:
    from qianmian_bankgen.catalogue import CATALOGUE
    from qianmian_core.db import Database

    from product_hub.database import migrate
    from product_hub.service import ProductService
    from product_hub.service.seed import seed_catalogue

    migrate(settings.database_url)
    database = Database(settings.database_url)
    try:
        report = seed_catalogue(ProductService(database, _NoFacts()), CATALOGUE)
    finally:
        database.dispose()
    print(
        f"product-hub: seed catalogue of {len(CATALOGUE)} products: {report.created} created, "
        f"{report.activated} activated, {report.unchanged} already in place"
    )
    return 0


class _NoFacts:
    """Seeding never asks about customers."""

    async def facts_for(self, customer_id: str) -> CustomerFacts:
        raise RuntimeError("seeding needs no customer facts")


if __name__ == "__main__":
    sys.exit(main())
