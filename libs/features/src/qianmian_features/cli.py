"""``qianmian-features``: apply the feature repo, materialise, show a customer's features."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from qianmian_features.freshness import check_freshness
from qianmian_features.settings import FeatureConfigError, FeatureSettings
from qianmian_features.store import (
    apply,
    feature_refs,
    materialize,
    online_features,
    open_store,
    ttl_by_view,
)

CUSTOMER_VIEWS = ("customer_profile", "customer_activity")


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qianmian-features",
        description="Feast feature store of Qianmian. Environment: "
        "QIANMIAN_FEAST_ENV=local|redis|production, QIANMIAN_DATA_DIR, QIANMIAN_FEATURE_REPO "
        "(see feature_repo/README.md).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("apply", help="register entities, sources, views and feature services")
    mat = commands.add_parser("materialize", help="load the latest values up to --end into the online store")
    mat.add_argument("--end", type=_parse_time, help="ISO time, UTC if no offset (default: now)")
    mat.add_argument("--start", type=_parse_time, help="ISO time (default: incremental from the last run)")
    show = commands.add_parser("show", help="print one customer's online features with freshness")
    show.add_argument("--customer", required=True, help="pseudonymous id, e.g. C000000001")
    show.add_argument("--now", type=_parse_time, help="judge freshness at this time (default: now)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; exit status 2 on configuration errors."""
    args = _parser().parse_args(argv)
    try:
        settings = FeatureSettings()
        store = open_store(settings)
    except (FeatureConfigError, ValueError) as exc:
        print(f"qianmian-features: {exc}", file=sys.stderr)
        return 2
    if args.command == "apply":
        apply(store)
        print(f"applied {settings.feature_repo} to project {store.project} ({settings.feast_env.value})")
    elif args.command == "materialize":
        materialize(store, end=args.end, start=args.start)
        print(f"materialised project {store.project} up to {(args.end or datetime.now(UTC)).isoformat()}")
    else:
        now = args.now or datetime.now(UTC)
        refs = feature_refs(store, CUSTOMER_VIEWS)
        values = online_features(store, [args.customer], refs)[args.customer]
        _, missing = check_freshness(values, ttl_by_view(store), now)
        for ref in refs:
            feature = values[ref]
            stamp = feature.event_timestamp.isoformat() if feature.event_timestamp else "-"
            flag = "  MISSING" if ref in missing else ""
            print(f"{ref:45} {feature.value!s:>24}  {stamp}{flag}")
        print(f"{len(missing)} of {len(values)} features missing or stale at {now.isoformat()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
