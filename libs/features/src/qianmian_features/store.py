"""Open the Feast store of an environment, apply the repo, materialise, push and read."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from weakref import WeakKeyDictionary

import pandas as pd
import yaml
from feast import FeatureService, FeatureStore, RepoConfig
from feast.data_source import PushMode
from feast.repo_operations import apply_total_with_repo_instance, parse_repo

from qianmian_features.freshness import FeatureValue
from qianmian_features.settings import FeatureConfigError, FeatureSettings

CUSTOMER_ACTIVITY_PUSH = "customer_activity_push"
CUSTOMER_ACTIVITY_COLUMNS: tuple[str, ...] = (
    "impressions_7d",
    "impressions_30d",
    "clicks_7d",
    "clicks_30d",
    "purchases_30d",
    "moments_7d",
    "moments_30d",
    "logins_7d",
    "last_moment_type",
    "last_moment_ts",
)

#: customer id -> ``"view:feature"`` -> value with its event timestamp
OnlineFeatures = dict[str, dict[str, FeatureValue]]


def open_store(settings: FeatureSettings | None = None) -> FeatureStore:
    """Open the feature store of ``settings.feast_env`` (default: from the environment).

    The environment's yaml is rendered here rather than by Feast so that an unset
    ``${VAR}`` stops the process with its name (see ``FeatureSettings.render_yaml``).
    """
    settings = settings or FeatureSettings()
    raw = yaml.safe_load(settings.render_yaml())
    if settings.feast_project:
        raw["project"] = settings.feast_project
    try:
        config = RepoConfig(repo_path=settings.feature_repo, **raw)
    except Exception as exc:  # pydantic ValidationError, wrapped so callers see one error type
        raise FeatureConfigError(f"invalid {settings.yaml_path}: {exc}") from exc
    store = FeatureStore(repo_path=str(settings.feature_repo), config=config)
    # apply() needs the repo and data directory this store was opened with.
    _SETTINGS_BY_STORE[store] = settings
    return store


_SETTINGS_BY_STORE: WeakKeyDictionary[FeatureStore, FeatureSettings] = WeakKeyDictionary()


def _settings_of(store: FeatureStore) -> FeatureSettings:
    try:
        return _SETTINGS_BY_STORE[store]
    except KeyError:
        raise FeatureConfigError("open the store with qianmian_features.open_store()") from None


@contextmanager
def _importable_repo(repo: Path, data_dir: str) -> Iterator[None]:
    """Make the repo's modules importable from a clean slate, as `feast apply` would.

    Feast imports the repo's files as top-level modules (``entities``, ``sources`` ...)
    named relative to the current directory, and Python caches them: a second repo (a
    test's copy) or a new data directory would silently reuse the first one's objects.
    """
    repo = repo.resolve()
    # Evict by *name* as well as by file: a module of the same name imported from another copy of
    # the repo (another test, another data directory) would otherwise shadow this one.
    repo_module_names = {
        ".".join(path.relative_to(repo).with_suffix("").parts)
        for path in repo.rglob("*.py")
        if "data" not in path.relative_to(repo).parts
    }
    stale = [
        name
        for name, module in sys.modules.items()
        if name in repo_module_names
        or (getattr(module, "__file__", None) and Path(module.__file__ or "").resolve().parent == repo)
    ]
    for name in stale:
        del sys.modules[name]
    previous_cwd, previous_data_dir = Path.cwd(), os.environ.get("QIANMIAN_DATA_DIR")
    os.environ["QIANMIAN_DATA_DIR"] = data_dir
    sys.path.insert(0, str(repo))
    os.chdir(repo)
    try:
        yield
    finally:
        os.chdir(previous_cwd)
        sys.path.remove(str(repo))
        if previous_data_dir is None:
            os.environ.pop("QIANMIAN_DATA_DIR", None)
        else:
            os.environ["QIANMIAN_DATA_DIR"] = previous_data_dir


def apply(store: FeatureStore) -> None:
    """Register the repo's entities, sources, views and services (``feast apply``).

    Objects removed from the repo are removed from the registry and their online tables
    torn down, exactly as the Feast CLI does.
    """
    settings = _settings_of(store)
    with _importable_repo(settings.feature_repo, settings.resolved_data_dir):
        contents = parse_repo(settings.feature_repo)
        apply_total_with_repo_instance(
            store, store.project, store.registry, contents, skip_source_validation=False
        )


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"timestamps must be timezone-aware, got {moment!r}")
    return moment.astimezone(UTC)


def materialize(store: FeatureStore, end: datetime | None = None, start: datetime | None = None) -> None:
    """Load the latest value per entity up to ``end`` into the online store.

    Without ``start`` each view is materialised incrementally: from the end of its
    previous run, or on its first run from ``end`` minus its TTL, the oldest value that
    could still be fresh at ``end``. (Feast's own ``materialize_incremental`` starts a
    first run at *wall-clock* now minus TTL, which loads nothing when ``end`` lies in
    the past, e.g. for a generated data set or a backfill.)
    """
    end = _utc(end or datetime.now(UTC))
    if start is not None:
        store.materialize(start_date=_utc(start), end_date=end)
        return
    for view in store.list_feature_views():
        if not view.online:
            continue
        previous = view.most_recent_end_time
        ttl = view.ttl or timedelta(0)
        first = end - ttl if ttl > timedelta(0) else datetime(1970, 1, 1, tzinfo=UTC)
        view_start = max(first, _utc(previous)) if previous is not None else first
        if view_start < end:
            store.materialize(start_date=view_start, end_date=end, feature_views=[view.name])


def push_customer_activity(
    store: FeatureStore,
    rows: pd.DataFrame | Iterable[Mapping[str, Any]],
    to: Literal["online", "online_and_offline"] = "online",
) -> int:
    """Push activity counters for customers; online reads see them at once.

    Each row needs ``customer_id``, ``event_timestamp`` (timezone-aware) and every
    activity column; ``created_timestamp`` defaults to now. Returns the rows pushed.
    Note that the Redis store keeps the newer of two writes by event timestamp, while
    SQLite keeps the last write: push rows stamped with when the counts were true.
    """
    frame = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    if frame.empty:
        return 0
    if "created_timestamp" not in frame:
        frame["created_timestamp"] = pd.Timestamp.now(tz="UTC")
    required = ("customer_id", "event_timestamp", "created_timestamp", *CUSTOMER_ACTIVITY_COLUMNS)
    absent = [column for column in required if column not in frame]
    if absent:
        raise ValueError(f"customer activity rows lack columns: {', '.join(absent)}")
    frame = frame[list(required)]
    for column in ("event_timestamp", "created_timestamp"):
        stamps = pd.to_datetime(frame[column])
        if stamps.dt.tz is None:
            raise ValueError(f"{column} must be timezone-aware")
        frame[column] = stamps.dt.tz_convert("UTC")
    mode = PushMode.ONLINE_AND_OFFLINE if to == "online_and_offline" else PushMode.ONLINE
    store.push(CUSTOMER_ACTIVITY_PUSH, frame, to=mode)
    return len(frame)


def _read_online(
    store: FeatureStore, join_key: str, ids: Sequence[str], features: Sequence[str] | str
) -> OnlineFeatures:
    refs: list[str] | FeatureService = (
        store.get_feature_service(features) if isinstance(features, str) else list(features)
    )
    response = store.get_online_features(
        features=refs, entity_rows=[{join_key: entity_id} for entity_id in ids], full_feature_names=True
    )
    # full names are "view__feature"; stamps are whole epoch seconds, 0 when absent
    table = response.to_dict(include_event_timestamps=True)
    result: OnlineFeatures = {entity_id: {} for entity_id in ids}
    for name, column in table.items():
        if name == join_key or name.endswith("__ts"):
            continue
        view, _, feature = name.partition("__")
        stamps = table[f"{name}__ts"]
        for entity_id, value, stamp in zip(ids, column, stamps, strict=True):
            when = datetime.fromtimestamp(stamp, UTC) if stamp else None
            result[entity_id][f"{view}:{feature}"] = FeatureValue(value, when)
    return result


def online_features(
    store: FeatureStore, customer_ids: Sequence[str], features: Sequence[str] | str
) -> OnlineFeatures:
    """Online customer features with their event timestamps, keyed by ``"view:feature"``.

    ``features`` is a list of ``"view:feature"`` references or a feature service name
    restricted to customer views. Check the result with ``check_freshness``: Feast
    returns values however old they are.
    """
    return _read_online(store, "customer_id", customer_ids, features)


def online_product_features(
    store: FeatureStore, product_ids: Sequence[str], features: Sequence[str] | str
) -> OnlineFeatures:
    """Online product features with their event timestamps (see ``online_features``)."""
    return _read_online(store, "product_id", product_ids, features)


def historical_features(
    store: FeatureStore, entity_df: pd.DataFrame, features: Sequence[str] | str
) -> pd.DataFrame:
    """Point-in-time features for every row of ``entity_df``: one output row per input row, in order.

    ``entity_df`` has the join keys of the requested views, a timezone-aware
    ``event_timestamp`` and any other columns (labels, request ids), which are kept.
    Columns are named ``view__feature``. A feature without a row in
    ``[event_timestamp - ttl, event_timestamp]`` is null.

    Feast's file (Dask) offline store silently *drops* an entity row when the entity has
    source rows but none inside that window (e.g. a customer who joined after the
    requested time), and collapses rows sharing keys and timestamp (feast#6787). Training
    sets would lose exactly the new and lapsed customers, so the request is de-duplicated
    here and the answer joined back onto ``entity_df``.
    """
    refs: list[str] | FeatureService
    if isinstance(features, str):
        refs = store.get_feature_service(features)
        views = [projection.name for projection in refs.feature_view_projections]
    else:
        refs = list(features)
        views = sorted({ref.partition(":")[0] for ref in refs})
    join_keys = sorted(
        {column.name for name in views for column in store.get_feature_view(name).entity_columns}
    )
    absent = [key for key in (*join_keys, "event_timestamp") if key not in entity_df]
    if absent:
        raise ValueError(f"entity_df lacks columns: {', '.join(absent)}")
    on = [*join_keys, "event_timestamp"]
    frame = entity_df.copy()
    frame["event_timestamp"] = _utc_series(frame["event_timestamp"])
    request = frame[on].drop_duplicates(ignore_index=True)
    answer = store.get_historical_features(entity_df=request, features=refs, full_feature_names=True).to_df()
    answer["event_timestamp"] = _utc_series(answer["event_timestamp"])
    return frame.merge(answer, on=on, how="left", validate="many_to_one")


def _utc_series(stamps: pd.Series[Any]) -> pd.Series[Any]:
    converted = pd.to_datetime(stamps)
    if converted.dt.tz is None:
        raise ValueError("event_timestamp must be timezone-aware")
    return converted.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")


def ttl_by_view(store: FeatureStore) -> dict[str, timedelta]:
    """Each registered feature view's TTL, for ``check_freshness``."""
    return {view.name: view.ttl or timedelta(0) for view in store.list_feature_views()}


def feature_refs(store: FeatureStore, view_names: Iterable[str]) -> list[str]:
    """All ``"view:feature"`` references of the named views, in schema order."""
    refs: list[str] = []
    for name in view_names:
        view = store.get_feature_view(name)
        refs.extend(f"{view.name}:{field.name}" for field in view.features)
    return refs
