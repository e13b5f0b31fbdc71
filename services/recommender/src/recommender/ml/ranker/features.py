"""The ranker's features: panel-derived parquet sources, their Feast views, point-in-time retrieval.

Every feature the ranker reads about a customer or a product is a row of a Feast feature view with
an event timestamp = the snapshot it was computed at, and nothing in that row uses data from after
that snapshot. Training examples ask Feast's ``get_historical_features`` for the features as of the
*cut-off* snapshot that opens the month being predicted, so nothing after it can leak: the same
mechanism the online store serves from, not a hand-written join.

Views (feature service ``ranker_v1``; a changed column is a new view version, never an edit):

- ``ranker_profile`` (customer): the Santander demographic columns the source has (age, tenure
  ``antiguedad``, income ``renta``, activity, segment ``segmento`` …);
- ``ranker_holdings`` (customer): holdings 1..5 snapshots back as bit masks over the product axis
  (``held_lag{k}_w{w}``: bit ``j`` of word ``w`` = product ``63·w + j``), products held, additions
  and closures in the last 1 and 3 months, months since the last addition, snapshots observed;
- ``ranker_state`` (customer): lifecycle stage, AUM and AUM band, valid risk level, segment flags
  (the synthetic bank's ``customer_months``; a real bank's profile service);
- ``ranker_moments`` (customer): per moment type, the count in the last month and 3 months and the
  days since the last one (the synthetic bank's ``moments``; a real bank's event stream);
- ``ranker_product`` (product): monthly addition rate among non-holders (1 and 3 months), holder
  share, closure rate, additions, product type and risk rating.

Why a dedicated repo and not ``feature_repo/``: these sources are derived from whichever panel a
run trains on (the synthetic one, or a Santander-layout CSV given by path), not from the bank's
``features/*.parquet`` that ``feature_repo/sources.py`` points at; adding them there would make
``feast apply`` and materialisation of the shared repo depend on files the demo and the tests never
write. :func:`open_ranker_store` applies the same kind of objects (``Entity``, ``FileSource``,
``FeatureView``, ``FeatureService``) into a registry next to the sources, with the local file
offline store. Entity names and join keys are the shared repo's (``customer``/``customer_id``,
``product``/``product_id``), so the views can move into ``feature_repo/`` unchanged once the
profile service writes these sources for the live bank.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
from feast import Entity, FeatureService, FeatureStore, FeatureView, Field, FileSource, RepoConfig, ValueType
from feast.types import Float64, Int64, PrimitiveFeastType, String
from numpy.typing import NDArray

from recommender.ml.ranker.panel import PROFILE_CATEGORICAL, PROFILE_NUMERIC, SnapshotPanel

I64 = NDArray[np.int64]
F64 = NDArray[np.float64]

#: Feature service of this feature set; a model records it with the view versions.
FEATURE_SERVICE: Final = "ranker_v1"
#: Snapshots back the holdings view carries (lag 1 = the cut-off snapshot itself).
LAGS: Final = 5
#: Product bits per mask word (63 keeps int64 masks non-negative).
BITS_PER_WORD: Final = 63
#: AUM band edges (CNY), as the recommender's LightFM tokens (``recommender.ml.data``).
AUM_EDGES: Final = (10_000.0, 50_000.0, 200_000.0, 1_000_000.0)
#: A monthly snapshot stays usable until the next one arrives (two months, as ``customer_profile``).
TTL: Final = timedelta(days=62)
_DAY_NS: Final = 86_400 * 10**9


@dataclass(frozen=True)
class ViewSpec:
    """One feature view: name, version, entity and typed columns."""

    name: str
    version: int
    entity: str  # "customer" or "product"
    fields: tuple[tuple[str, PrimitiveFeastType], ...]
    description: str

    @property
    def join_key(self) -> str:
        """``customer_id`` or ``product_id``."""
        return f"{self.entity}_id"

    def refs(self) -> list[str]:
        """``view:feature`` references in schema order."""
        return [f"{self.name}:{name}" for name, _ in self.fields]


def mask_words(products: int) -> int:
    """How many int64 words the holdings masks of ``products`` products need."""
    return max(1, -(-products // BITS_PER_WORD))


def view_specs(panel: SnapshotPanel) -> list[ViewSpec]:
    """The views this panel can fill: profile, holdings and product always; state and moments when
    the source has them (the synthetic bank does, a Santander CSV does not)."""
    profile_columns = set(panel.profile.columns)
    specs = [
        ViewSpec(
            "ranker_profile",
            1,
            "customer",
            (
                *((c, Float64) for c in PROFILE_NUMERIC if c in profile_columns),
                *((c, String) for c in PROFILE_CATEGORICAL if c in profile_columns),
            ),
            "Santander demographic columns at the snapshot",
        ),
        ViewSpec(
            "ranker_holdings",
            1,
            "customer",
            (
                *(
                    (f"held_lag{k}_w{w}", Int64)
                    for k in range(1, LAGS + 1)
                    for w in range(mask_words(len(panel.products)))
                ),
                ("n_held", Int64),
                ("adds_1m", Int64),
                ("adds_3m", Int64),
                ("drops_1m", Int64),
                ("drops_3m", Int64),
                ("months_since_add", Float64),
                ("snapshots_observed", Int64),
            ),
            "Holdings 1..5 snapshots back (bit masks) and recent changes",
        ),
    ]
    if panel.states is not None:
        segs = sorted(c for c in panel.states.columns if c.startswith("seg_"))
        specs.append(
            ViewSpec(
                "ranker_state",
                1,
                "customer",
                (
                    ("lifecycle_stage", String),
                    ("aum", Float64),
                    ("aum_band", Int64),
                    ("risk_level", Int64),
                    *((s, Int64) for s in segs),
                ),
                "Lifecycle, AUM, valid risk level and segments at the snapshot",
            )
        )
    if panel.moments is not None:
        kinds = moment_types(panel)
        specs.append(
            ViewSpec(
                "ranker_moments",
                1,
                "customer",
                tuple(
                    (f"{kind}_{suffix}", dtype)
                    for kind in kinds
                    for suffix, dtype in (("1m", Int64), ("3m", Int64), ("days", Float64))
                ),
                "Moments of truth before the snapshot: counts and recency per type",
            )
        )
    specs.append(
        ViewSpec(
            "ranker_product",
            1,
            "product",
            (
                ("add_rate_1m", Float64),
                ("add_rate_3m", Float64),
                ("holder_share", Float64),
                ("drop_rate_1m", Float64),
                ("adds_1m", Int64),
                ("product_type", String),
                ("risk_rating", Float64),
            ),
            "Monthly product statistics and attributes",
        )
    )
    return specs


def moment_types(panel: SnapshotPanel) -> list[str]:
    """The moment types of the panel: the bank generator's list when it has moments."""
    if panel.moments is None:
        return []
    from qianmian_bankgen.dynamics import MOMENTS

    return list(MOMENTS)


# ---------------------------------------------------------------------------------------------
# sources: one row per (entity, snapshot), computed from the snapshot and everything before it
# ---------------------------------------------------------------------------------------------


def holding_masks(held: NDArray[np.bool_]) -> I64:
    """``[..., P]`` booleans -> ``[..., words]`` int64 bit masks (bit ``j % 63`` of word ``j // 63``)."""
    products = held.shape[-1]
    out = np.zeros((*held.shape[:-1], mask_words(products)), dtype=np.int64)
    for w in range(out.shape[-1]):
        block = held[..., w * BITS_PER_WORD : (w + 1) * BITS_PER_WORD].astype(np.int64)
        out[..., w] = block @ (np.int64(1) << np.arange(block.shape[-1], dtype=np.int64))
    return out


def unpack_masks(masks: I64, products: int) -> NDArray[np.bool_]:
    """Inverse of :func:`holding_masks`: ``[..., words]`` -> ``[..., products]`` booleans."""
    shifts = np.arange(BITS_PER_WORD, dtype=np.int64)
    bits = (masks[..., :, None] >> shifts) & 1
    return np.asarray(bits.reshape(*masks.shape[:-1], -1)[..., :products], dtype=np.bool_)


def _present_rows(panel: SnapshotPanel) -> tuple[I64, I64]:
    t, i = np.nonzero(panel.present)
    return t.astype(np.int64), i.astype(np.int64)


def _stamps(panel: SnapshotPanel, t: I64) -> pd.Series:
    days = np.asarray([np.datetime64(d, "ns") for d in panel.dates])
    return pd.Series(pd.to_datetime(days[t], utc=True))


def _customer_frame(panel: SnapshotPanel, t: I64, i: I64) -> pd.DataFrame:
    ids = np.asarray(panel.customers.ids, dtype=object)
    return pd.DataFrame({"customer_id": ids[i], "event_timestamp": _stamps(panel, t)})


def profile_source(panel: SnapshotPanel) -> pd.DataFrame:
    """``ranker_profile`` rows: the snapshot's own demographic columns."""
    p = panel.profile
    frame = _customer_frame(panel, p["t"].to_numpy(), p["i"].to_numpy())
    for column in p.columns:
        if column in ("t", "i"):
            continue
        values = p[column]
        frame[column] = (
            values.astype(object).where(values.notna(), None) if column in PROFILE_CATEGORICAL else values
        )
    return frame


def _running_last(flags: NDArray[np.bool_]) -> F64:
    """``[T × N]``: index of the latest ``t' ≤ t`` where ``flags[t']`` (NaN if none)."""
    index = np.where(flags, np.arange(flags.shape[0])[:, None], -1)
    last = np.maximum.accumulate(index, axis=0).astype(np.float64)
    last[last < 0] = np.nan
    return np.asarray(last, dtype=np.float64)


def holdings_source(panel: SnapshotPanel) -> pd.DataFrame:
    """``ranker_holdings`` rows: masks of the snapshot and the four before it, and recent changes."""
    months = panel.months
    masks = holding_masks(panel.held)  # [T, N, W]
    adds = np.stack([panel.added(t).sum(axis=1) for t in range(months)]).astype(np.int64)
    drops = np.stack([panel.dropped(t).sum(axis=1) for t in range(months)]).astype(np.int64)
    t, i = _present_rows(panel)
    frame = _customer_frame(panel, t, i)
    for k in range(1, LAGS + 1):
        back = t - (k - 1)
        ok = back >= 0
        lagged = np.zeros((t.shape[0], masks.shape[2]), dtype=np.int64)
        lagged[ok] = masks[back[ok], i[ok]]
        for w in range(masks.shape[2]):
            frame[f"held_lag{k}_w{w}"] = lagged[:, w]
    frame["n_held"] = panel.held[t, i].sum(axis=1).astype(np.int64)

    def window(values: I64, span: int) -> I64:
        total = np.zeros(t.shape[0], dtype=np.int64)
        for d in range(span):
            ok = t - d >= 0
            total[ok] += values[t[ok] - d, i[ok]]
        return total

    frame["adds_1m"] = window(adds, 1)
    frame["adds_3m"] = window(adds, 3)
    frame["drops_1m"] = window(drops, 1)
    frame["drops_3m"] = window(drops, 3)
    last_add = _running_last(adds > 0)[t, i]
    frame["months_since_add"] = t - last_add
    frame["snapshots_observed"] = np.cumsum(panel.present, axis=0)[t, i].astype(np.int64)
    return frame


def state_source(panel: SnapshotPanel) -> pd.DataFrame:
    """``ranker_state`` rows from the monthly customer state (synthetic bank)."""
    assert panel.states is not None
    s = panel.states
    frame = _customer_frame(panel, s["t"].to_numpy(dtype=np.int64), s["i"].to_numpy(dtype=np.int64))
    frame["lifecycle_stage"] = s["lifecycle_stage"].astype(str).to_numpy()
    aum = s["aum"].to_numpy(dtype=np.float64)
    frame["aum"] = aum
    frame["aum_band"] = np.digitize(np.nan_to_num(aum), AUM_EDGES).astype(np.int64)
    frame["risk_level"] = s["risk_level"].fillna(0).to_numpy(dtype=np.int64)
    for column in sorted(c for c in s.columns if c.startswith("seg_")):
        frame[column] = s[column].to_numpy(dtype=np.int64)
    return frame


def moments_source(panel: SnapshotPanel) -> pd.DataFrame:
    """``ranker_moments`` rows: per snapshot, moments whose ``at`` is at or before it.

    A moment belongs to the month whose window ``(snapshot t-1, snapshot t]`` holds its timestamp;
    the row at snapshot ``t`` counts the moments of month ``t`` (1m) and of months ``t-2..t`` (3m)
    and the days from the newest one to the snapshot.
    """
    assert panel.moments is not None
    kinds = moment_types(panel)
    m = panel.moments
    stamps = np.asarray([np.datetime64(d, "ns") for d in panel.dates]).astype(np.int64)
    at = (
        pd.to_datetime(m["at"], utc=True)
        .dt.tz_localize(None)
        .to_numpy(dtype="datetime64[ns]")
        .astype(np.int64)
    )
    month = np.searchsorted(stamps, at, side="left")  # first snapshot at or after the moment
    kind = pd.Categorical(m["moment_type"].astype(str), categories=kinds).codes.astype(np.int64)
    keep = (month < panel.months) & (kind >= 0)
    month, kind, at, cust = month[keep], kind[keep], at[keep], m["i"].to_numpy(dtype=np.int64)[keep]
    n, k = len(panel.customers), len(kinds)
    counts = np.zeros((panel.months, n, k), dtype=np.int64)
    np.add.at(counts, (month, cust, kind), 1)
    newest = np.full((panel.months, n, k), np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(newest, (month, cust, kind), at)
    newest = np.maximum.accumulate(newest, axis=0)
    t, i = _present_rows(panel)
    frame = _customer_frame(panel, t, i)
    three = counts.copy()
    three[1:] += counts[:-1]
    three[2:] += counts[:-2]
    for c, name in enumerate(kinds):
        frame[f"{name}_1m"] = counts[t, i, c]
        frame[f"{name}_3m"] = three[t, i, c]
        last = newest[t, i, c]
        days = (stamps[t] - last) / _DAY_NS
        frame[f"{name}_days"] = np.where(last == np.iinfo(np.int64).min, np.nan, days)
    return frame


def product_source(panel: SnapshotPanel) -> pd.DataFrame:
    """``ranker_product`` rows: one per (product, snapshot), statistics of the month closing there."""
    months, products = panel.months, len(panel.products)
    adds = np.zeros((months, products))
    at_risk = np.zeros((months, products))
    drops = np.zeros((months, products))
    holders = np.zeros((months, products))
    for t in range(months):
        holders[t] = panel.held[t].sum(axis=0)
        if t >= 1:
            both = panel.continuing(t)
            adds[t] = panel.added(t).sum(axis=0)
            drops[t] = panel.dropped(t).sum(axis=0)
            at_risk[t] = (both[:, None] & ~panel.held[t - 1]).sum(axis=0)
    base = np.maximum(at_risk, 1.0)
    rate_1m = np.where(at_risk > 0, adds / base, np.nan)
    adds_3m, risk_3m = adds.copy(), at_risk.copy()
    for d in (1, 2):
        adds_3m[d:] += adds[:-d]
        risk_3m[d:] += at_risk[:-d]
    rate_3m = np.where(risk_3m > 0, adds_3m / np.maximum(risk_3m, 1.0), np.nan)
    previous_holders = np.vstack([np.full((1, products), np.nan), holders[:-1]])
    drop_rate = np.where(previous_holders > 0, drops / np.maximum(previous_holders, 1.0), np.nan)
    present = np.maximum(panel.present.sum(axis=1), 1)[:, None]
    month, j = (np.asarray(a, dtype=np.int64) for a in np.divmod(np.arange(months * products), products))
    info = panel.product_info.set_index("product_id").reindex(list(panel.products.ids))
    return pd.DataFrame(
        {
            "product_id": np.asarray(panel.products.ids, dtype=object)[j],
            "event_timestamp": _stamps(panel, month),
            "add_rate_1m": rate_1m[month, j],
            "add_rate_3m": rate_3m[month, j],
            "holder_share": (holders / present)[month, j],
            "drop_rate_1m": drop_rate[month, j],
            "adds_1m": adds[month, j].astype(np.int64),
            "product_type": info["product_type"].astype(str).to_numpy()[j],
            "risk_rating": info["risk_rating"].to_numpy(dtype=np.float64)[j],
        }
    )


_SOURCES = {
    "ranker_profile": profile_source,
    "ranker_holdings": holdings_source,
    "ranker_state": state_source,
    "ranker_moments": moments_source,
    "ranker_product": product_source,
}


def write_sources(panel: SnapshotPanel, specs: Sequence[ViewSpec], folder: Path) -> dict[str, Path]:
    """Write one parquet source per view into ``folder``; returns the paths by view name."""
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for spec in specs:
        frame = _SOURCES[spec.name](panel)
        path = folder / f"{spec.name}.parquet"
        frame.to_parquet(path, index=False)
        paths[spec.name] = path
    return paths


# ---------------------------------------------------------------------------------------------
# the Feast repo
# ---------------------------------------------------------------------------------------------


def feast_objects(
    specs: Sequence[ViewSpec], paths: dict[str, Path]
) -> list[Entity | FeatureView | FeatureService]:
    """Entities, sources, views and the versioned feature service, as a Feast repo defines them."""
    entities = {
        "customer": Entity(
            name="customer",
            join_keys=["customer_id"],
            value_type=ValueType.STRING,
            description="A bank customer, by pseudonymous id.",
        ),
        "product": Entity(
            name="product",
            join_keys=["product_id"],
            value_type=ValueType.STRING,
            description="A product of the panel's product axis.",
        ),
    }
    views = [
        FeatureView(
            name=spec.name,
            entities=[entities[spec.entity]],
            ttl=TTL,
            schema=[Field(name=name, dtype=dtype) for name, dtype in spec.fields],
            source=FileSource(
                name=f"{spec.name}_source",
                path=str(paths[spec.name].resolve()),
                timestamp_field="event_timestamp",
                description=spec.description,
            ),
            online=True,
            tags={"owner": "recommender", "version": str(spec.version), "cadence": "monthly"},
            description=spec.description,
        )
        for spec in specs
    ]
    members: list[Any] = list(views)  # FeatureService wants an invariant list of a wider union
    service = FeatureService(
        name=FEATURE_SERVICE,
        features=members,
        description="Features of the next-product ranker, version 1.",
        tags={"owner": "recommender", "version": "1"},
    )
    return [*entities.values(), *views, service]


def ranker_store(folder: Path) -> FeatureStore:
    """The local Feast store in ``folder``: file registry, SQLite online store, file offline store
    (what :func:`open_ranker_store` applied; the recommender serves from its online store)."""
    folder = Path(folder).resolve()  # Feast resolves a relative registry path against repo_path again
    if not (folder / "registry.db").is_file():
        raise FileNotFoundError(f"no ranker feature store in {folder} (train-ranker --workdir writes one)")
    return FeatureStore(repo_path=str(folder), config=_ranker_config(folder))


def _ranker_config(folder: Path) -> RepoConfig:
    return RepoConfig(
        repo_path=folder,
        project="qianmian_ranker",
        provider="local",
        registry={"registry_type": "file", "path": str(folder / "registry.db"), "cache_ttl_seconds": 600},
        online_store={"type": "sqlite", "path": str(folder / "online_store.db")},
        offline_store={"type": "file"},
        entity_key_serialization_version=3,
    )


def open_ranker_store(folder: Path, specs: Sequence[ViewSpec], paths: dict[str, Path]) -> FeatureStore:
    """A local Feast store in ``folder`` with the ranker's objects applied (see :func:`ranker_store`)."""
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    store = FeatureStore(repo_path=str(folder), config=_ranker_config(folder))
    store.apply(feast_objects(specs, paths))  # type: ignore[arg-type]
    return store


def materialize_snapshot(store: FeatureStore, snapshot: datetime) -> None:
    """Load every view's newest values up to ``snapshot`` (inclusive) into the online store."""
    from qianmian_features import materialize

    materialize(store, end=snapshot + timedelta(seconds=1))


def historical(store: FeatureStore, spec: ViewSpec, entity_df: pd.DataFrame) -> pd.DataFrame:
    """Point-in-time values of one view for every row of ``entity_df`` (join key, event_timestamp),
    one output row per input row in order, columns ``view__feature``.

    One call per view: Feast's file store merges every view into the growing result, so asking for
    all views at once multiplies the widest frame by the rows per entity.
    """
    from qianmian_features import historical_features

    request = entity_df[[spec.join_key, "event_timestamp"]]
    answer = historical_features(store, request, spec.refs())
    return answer.drop(columns=[spec.join_key, "event_timestamp"]).reset_index(drop=True)
