"""``profile-service``: migrate, downgrade, seed, flush-outbox, serve."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from qianmian_core import migrations
from qianmian_core.db import Database
from qianmian_core.logging import configure_logging
from qianmian_core.settings import load_settings

from profile_service.settings import ProfileSettings

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="profile-service", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    migrate = commands.add_parser("migrate", help="apply migrations up to a revision (default head)")
    migrate.add_argument("--revision", default="head")
    down = commands.add_parser("downgrade", help="revert migrations down to a revision (default base)")
    down.add_argument("--revision", default="base")
    seed = commands.add_parser("seed", help="load a bankgen output directory (replaces existing rows)")
    seed.add_argument("--data", type=Path, default=Path("data/bank"), help="bankgen --out directory")
    seed.add_argument("--no-migrate", action="store_true", help="do not migrate to head first")
    commands.add_parser("flush-outbox", help="push queued feature rows to Feast")
    serve = commands.add_parser("serve", help="run the HTTP service (uvicorn)")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``profile-service`` console script."""
    args = _parser().parse_args(argv)
    settings = load_settings(ProfileSettings)
    configure_logging(settings.service_name, settings.log_level)
    if args.command == "migrate":
        migrations.upgrade(MIGRATIONS, settings.database_url, args.revision)
        return 0
    if args.command == "downgrade":
        migrations.downgrade(MIGRATIONS, settings.database_url, args.revision)
        return 0
    if args.command == "seed":
        return _seed(settings, args.data, migrate=not args.no_migrate)
    if args.command == "flush-outbox":
        return _flush(settings)
    if args.command == "serve":
        import uvicorn

        uvicorn.run(
            "profile_service.main:create_app",
            factory=True,
            host=args.host or settings.host,
            port=args.port or settings.port,
            workers=1,
            # Our JSON logging (configured in create_app) handles uvicorn's loggers too.
            log_config=None,
        )
        return 0
    raise AssertionError(args.command)  # pragma: no cover - argparse rejects unknown commands


def _seed(settings: ProfileSettings, data: Path, *, migrate: bool) -> int:
    from profile_service.service.seeding import seed

    if not (data / "customers.parquet").is_file():
        print(f"{data} has no customers.parquet: run qianmian-bankgen generate --out {data}", file=sys.stderr)
        return 2
    if migrate:
        migrations.upgrade(MIGRATIONS, settings.database_url)
    database = Database(settings.database_url)
    try:
        with database.session() as session:
            report = seed(session, data)
    finally:
        database.dispose()
    counts = ", ".join(f"{table}={count}" for table, count in report.counts.items())
    print(f"seeded {data} as of {report.as_of.isoformat()} in {report.seconds}s: {counts}")
    return 0


def _flush(settings: ProfileSettings) -> int:
    from profile_service.main import default_pusher
    from profile_service.service.feature_sync import flush

    database = Database(settings.database_url)
    try:
        with database.session() as session:
            pushed = flush(session, default_pusher(settings), settings.outbox_batch_size)
            from profile_service.repository.outbox import size

            left = size(session)
    finally:
        database.dispose()
    print(f"pushed {pushed} feature rows; {left} still queued")
    return 0 if left == 0 else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
