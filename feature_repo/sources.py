"""Data sources: the feature snapshots the synthetic bank writes (docs/data-contract.md).

The parquet files live under ``$QIANMIAN_DATA_DIR/features/`` (the directory given to
``qianmian-bankgen generate --out``); when the variable is unset, ``data/bank`` at the
repository root. Paths are made absolute here because Feast stores them in the registry
as written and resolves relative ones against the *current* directory of whoever reads
them later, not against the feature repo.
"""

import os
from pathlib import Path

from feast import FileSource, PushSource

_REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> str:
    """The bankgen output directory: a local path (made absolute) or an object-store URL."""
    configured = os.environ.get("QIANMIAN_DATA_DIR", "").strip()
    if not configured:
        return str(_REPO_ROOT / "data" / "bank")
    if "://" in configured:  # s3://, gs://, ... are read by the offline store as given
        return configured.rstrip("/")
    return str(Path(configured).expanduser().resolve())


def _snapshot(name: str) -> FileSource:
    return FileSource(
        name=f"{name}_source",
        path=f"{data_dir()}/features/{name}.parquet",
        timestamp_field="event_timestamp",
        created_timestamp_column="created_timestamp",
        description=f"bankgen features/{name}.parquet",
    )


customer_profile_source = _snapshot("customer_profile")
customer_activity_source = _snapshot("customer_activity")
product_stats_source = _snapshot("product_stats")

# Profile and recommender push fresh activity counters here as events happen; the
# parquet snapshot is the batch source used for backfill and training.
customer_activity_push = PushSource(
    name="customer_activity_push",
    batch_source=customer_activity_source,
    description="Near-real-time customer activity counters pushed by the services.",
)
