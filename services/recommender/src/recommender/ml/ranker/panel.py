"""A monthly holdings panel (Santander ``train_ver2.csv`` layout) as the arrays the ranker works on.

Sources, one shape:

- :func:`simulate` — the synthetic bank's adoption dynamics (``qianmian_bankgen.dynamics``), in
  memory, with its moments, monthly customer state and the oracle's ``p_add``;
- :func:`load_panel_dir` — what ``qianmian-bankgen snapshots`` / ``write_panel`` wrote;
- :func:`panel_from_bank` — the generated bank's own holdings history (what profile serves), so the
  ranker and the decision policies see one world;
- :func:`load_santander_panel` — any Santander-layout CSV (the real Kaggle ``train_ver2.csv`` or a
  test's own file): products are the ``ind_*_ult1`` columns found, no moments, no oracle.

Month ``t`` is the month that *closes* at snapshot ``t`` (Santander's convention): a product is
*added* in month ``t`` when the customer held it at snapshot ``t`` but not at ``t - 1``. A
prediction for month ``t`` is made at the *cut-off* ``t - 1`` (the snapshot that opens the month)
and may only use what was known then.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from numpy.typing import NDArray

from recommender.ml.idmap import IdMap
from recommender.ml.loaders.santander import SANTANDER_KEYS, santander_flags

Bool = NDArray[np.bool_]
F32 = NDArray[np.float32]
I64 = NDArray[np.int64]

#: Santander demographic columns read as numbers (messy values such as ``"     NA"`` become NaN).
PROFILE_NUMERIC: Final[tuple[str, ...]] = (
    "age",
    "antiguedad",
    "renta",
    "ind_actividad_cliente",
    "ind_nuevo",
    "indrel",
    "cod_prov",
)
#: Santander demographic columns read as categories (codes come from the training data).
PROFILE_CATEGORICAL: Final[tuple[str, ...]] = (
    "sexo",
    "segmento",
    "tiprel_1mes",
    "indrel_1mes",
    "canal_entrada",
    "ind_empleado",
    "indresi",
    "indext",
    "pais_residencia",
)


@dataclass(frozen=True)
class SnapshotPanel:
    """Customers × monthly snapshots × products.

    ``held[t, i, j]``: customer ``i`` holds product ``j`` at snapshot ``t`` (False when absent);
    ``present[t, i]``: customer ``i`` has a row at snapshot ``t``. ``profile``: one row per present
    (t, i) with columns ``t``, ``i`` and the Santander demographic columns the source has.
    ``states`` (synthetic only): ``t``, ``i``, lifecycle_stage, aum, risk_level, seg_*.
    ``moments`` (synthetic only): ``i``, moment_type, at (UTC). ``oracle``: month -> ``[N × P]``
    true chance of adding each product during that month (NaN where not in the oracle's file).
    ``product_info``: product_id, product_type, risk_rating (NaN when unknown).
    """

    name: str
    dates: tuple[date, ...]
    customers: IdMap
    products: IdMap
    flags: tuple[str, ...]
    held: Bool
    present: Bool
    profile: pd.DataFrame
    product_info: pd.DataFrame
    states: pd.DataFrame | None = None
    moments: pd.DataFrame | None = None
    oracle: Mapping[int, F32] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def months(self) -> int:
        """Number of snapshots."""
        return len(self.dates)

    def timestamp(self, t: int) -> pd.Timestamp:
        """Snapshot ``t`` as a UTC timestamp (midnight of its date): the event time of its features."""
        return pd.Timestamp(datetime.combine(self.dates[t], datetime.min.time(), UTC))

    def continuing(self, t: int) -> Bool:
        """Customers present at both ``t - 1`` and ``t``: those for whom month ``t`` has additions."""
        if t < 1:
            return np.zeros(len(self.customers), dtype=np.bool_)
        return np.asarray(self.present[t - 1] & self.present[t], dtype=np.bool_)

    def added(self, t: int) -> Bool:
        """``[N × P]`` products added during month ``t`` (held at ``t``, not at ``t - 1``)."""
        if t < 1:
            return np.zeros(self.held.shape[1:], dtype=np.bool_)
        both = self.continuing(t)[:, None]
        return np.asarray(self.held[t] & ~self.held[t - 1] & both, dtype=np.bool_)

    def dropped(self, t: int) -> Bool:
        """``[N × P]`` products closed during month ``t``."""
        if t < 1:
            return np.zeros(self.held.shape[1:], dtype=np.bool_)
        both = self.continuing(t)[:, None]
        return np.asarray(self.held[t - 1] & ~self.held[t] & both, dtype=np.bool_)

    def describe(self) -> dict[str, object]:
        """Sizes for reports."""
        adds = [int(self.added(t).sum()) for t in range(1, self.months)]
        return {
            "source": self.name,
            "snapshots": f"{self.months} ({self.dates[0]} … {self.dates[-1]})",
            "customers": f"{len(self.customers):,} ({int(self.present[-1].sum()):,} in the last snapshot)",
            "products": len(self.products),
            "customer-months": f"{int(self.present.sum()):,}",
            "additions": f"{sum(adds):,} (per month {min(adds, default=0):,}–{max(adds, default=0):,})",
            "moments": f"{len(self.moments):,}" if self.moments is not None else "none in this source",
        }


# ---------------------------------------------------------------------------------------------
# building a panel from Santander-layout rows
# ---------------------------------------------------------------------------------------------


def _to_date(values: pd.Series) -> NDArray[np.datetime64]:
    return np.asarray(pd.to_datetime(values).to_numpy(dtype="datetime64[D]"))


def panel_from_frame(
    frame: pd.DataFrame,
    flags: Sequence[str],
    *,
    name: str,
    product_ids: Sequence[str] | None = None,
    customer_ids: Sequence[str] | None = None,
    product_info: pd.DataFrame | None = None,
    states: pd.DataFrame | None = None,
    moments: pd.DataFrame | None = None,
    oracle: pd.DataFrame | None = None,
    meta: Mapping[str, Any] | None = None,
) -> SnapshotPanel:
    """Build a panel from Santander-layout rows (``fecha_dato``, ``ncodpers``, demographics, flags).

    ``customer_ids``: the id of each ``ncodpers`` in ascending code order (default ``S<ncodpers>``,
    as :func:`recommender.ml.loaders.load_santander`); ``product_ids``: one per flag (default the
    flag names). ``states``, ``moments`` and ``oracle`` are keyed by ``ncodpers`` and ``fecha_dato``
    as ``qianmian_bankgen.dynamics`` writes them.
    """
    days = _to_date(frame["fecha_dato"])
    unique_days = np.unique(days)
    dates = tuple(pd.Timestamp(d).date() for d in unique_days)
    t_of = np.searchsorted(unique_days, days)
    codes = np.unique(frame["ncodpers"].to_numpy(dtype=np.int64))
    i_of = np.searchsorted(codes, frame["ncodpers"].to_numpy(dtype=np.int64))
    ids = list(customer_ids) if customer_ids is not None else [f"S{c}" for c in codes]
    if len(ids) != codes.shape[0]:
        raise ValueError("customer_ids must name every distinct ncodpers")
    products = IdMap(product_ids if product_ids is not None else flags)
    held = np.zeros((len(dates), codes.shape[0], len(flags)), dtype=np.bool_)
    present = np.zeros((len(dates), codes.shape[0]), dtype=np.bool_)
    present[t_of, i_of] = True
    held[t_of, i_of] = np.nan_to_num(frame[list(flags)].to_numpy(dtype=np.float32)) > 0
    columns = [c for c in (*PROFILE_NUMERIC, *PROFILE_CATEGORICAL) if c in frame]
    profile = pd.DataFrame({"t": t_of.astype(np.int64), "i": i_of.astype(np.int64)})
    for column in columns:
        values = frame[column]
        if column in PROFILE_NUMERIC:
            if values.dtype == object or isinstance(values.dtype, pd.CategoricalDtype | pd.StringDtype):
                values = pd.to_numeric(values.astype(str).str.strip(), errors="coerce")
            profile[column] = values.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            text = values.astype("string").str.strip()
            profile[column] = text.mask(text == "").astype("category")
    profile = profile.sort_values(["t", "i"], kind="stable").reset_index(drop=True)

    def keyed(table: pd.DataFrame | None) -> pd.DataFrame | None:
        if table is None:
            return None
        out = table.copy()
        out["i"] = np.searchsorted(codes, out.pop("ncodpers").to_numpy(dtype=np.int64))
        if "fecha_dato" in out:
            out["t"] = np.searchsorted(unique_days, _to_date(out.pop("fecha_dato")))
        return out

    state_frame = keyed(states)
    moment_frame = keyed(moments)
    if moment_frame is not None:
        moment_frame = moment_frame[["i", "moment_type", "at"]]
    oracle_by_month: dict[int, F32] = {}
    if oracle is not None and len(oracle):
        table = keyed(oracle)
        assert table is not None
        j_of = products.indices(table["product_id"].astype(str).tolist())
        for t in np.unique(table["t"].to_numpy()):
            rows = table["t"].to_numpy() == t
            matrix = np.full(held.shape[1:], np.nan, dtype=np.float32)
            matrix[table["i"].to_numpy()[rows], j_of[rows]] = table["p_add"].to_numpy(dtype=np.float32)[rows]
            oracle_by_month[int(t)] = matrix
    info = (
        product_info
        if product_info is not None
        else pd.DataFrame(
            {
                "product_id": list(products.ids),
                "product_type": [f.removeprefix("ind_").removesuffix("_ult1") for f in flags],
                "risk_rating": np.full(len(flags), np.nan),
            }
        )
    )
    return SnapshotPanel(
        name=name,
        dates=dates,
        customers=IdMap(ids),
        products=products,
        flags=tuple(flags),
        held=held,
        present=present,
        profile=profile,
        product_info=info.reset_index(drop=True),
        states=state_frame,
        moments=moment_frame,
        oracle=oracle_by_month,
        meta=dict(meta or {}),
    )


# ---------------------------------------------------------------------------------------------
# sources
# ---------------------------------------------------------------------------------------------


def read_santander_csv(path: Path, *, max_customers: int | None = None, seed: int = 7) -> pd.DataFrame:
    """Read a Santander-layout CSV with pyarrow: flags as numbers, every other column as text.

    The Kaggle file pads numbers with spaces (``" 35"``, ``"     NA"``); :func:`panel_from_frame`
    strips and coerces them. ``max_customers`` keeps a seeded random sample of customers (all their
    rows), for the 950k-customer real file on a small machine.
    """
    with open(path, encoding="utf-8") as handle:
        header = [h.strip().strip('"') for h in handle.readline().rstrip("\n\r").split(",")]
    flags = santander_flags(header)
    missing = set(SANTANDER_KEYS) - set(header)
    if missing or not flags:
        raise ValueError(f"{path}: not a Santander snapshot file (needs fecha_dato, ncodpers, ind_*_ult1)")
    wanted = [c for c in header if c in (*SANTANDER_KEYS, *PROFILE_NUMERIC, *PROFILE_CATEGORICAL, *flags)]
    types: dict[str, pa.DataType] = {c: pa.float32() for c in flags}
    types |= {c: pa.string() for c in wanted if c not in flags}
    table = pa_csv.read_csv(
        path,
        convert_options=pa_csv.ConvertOptions(
            column_types=types, include_columns=wanted, strings_can_be_null=False
        ),
    )
    codes = pc.cast(pc.utf8_trim_whitespace(table["ncodpers"]), pa.int64())
    table = table.set_column(table.schema.get_field_index("ncodpers"), "ncodpers", codes)
    if max_customers is not None:
        distinct = np.unique(codes.to_numpy())
        if distinct.shape[0] > max_customers:
            keep = np.random.default_rng(seed).choice(distinct, max_customers, replace=False)
            table = table.filter(pc.is_in(table["ncodpers"], pa.array(np.sort(keep))))
    for column in wanted:
        if column not in flags and column != "ncodpers":
            table = table.set_column(
                table.schema.get_field_index(column),
                column,
                pc.utf8_trim_whitespace(table[column]).dictionary_encode(),
            )
    frame: pd.DataFrame = table.to_pandas()
    return frame


def load_santander_panel(path: Path, *, max_customers: int | None = None, seed: int = 7) -> SnapshotPanel:
    """A panel from a Santander-layout CSV (Kaggle ``train_ver2.csv`` or a file in its layout)."""
    frame = read_santander_csv(path, max_customers=max_customers, seed=seed)
    flags = santander_flags(frame.columns)
    suffix = f", {max_customers:,} sampled customers" if max_customers else ""
    return panel_from_frame(frame, flags, name=f"Santander-layout snapshots {Path(path).name}{suffix}")


def _catalogue_info() -> tuple[list[str], list[str], pd.DataFrame]:
    from qianmian_bankgen.catalogue import CATALOGUE
    from qianmian_bankgen.dynamics import flag_column

    ids = [p.product_id for p in CATALOGUE]
    info = pd.DataFrame(
        {
            "product_id": ids,
            "product_type": [p.product_type for p in CATALOGUE],
            "risk_rating": [float(p.risk_rating) if p.risk_rating else np.nan for p in CATALOGUE],
        }
    )
    return ids, [flag_column(i) for i in ids], info


def _synthetic_ids(frame: pd.DataFrame) -> list[str]:
    codes = np.unique(frame["ncodpers"].to_numpy(dtype=np.int64))
    return [f"C{c:09d}" for c in codes]


def simulate(
    customers: int,
    months: int,
    seed: int,
    *,
    oracle_months: Sequence[int] | None = None,
    start: date | None = None,
) -> SnapshotPanel:
    """Simulate the synthetic bank's panel in memory (``qianmian_bankgen.dynamics.iter_panel``).

    Only the oracle of ``oracle_months`` (default: the last month) is kept: the whole oracle is
    about 60 million rows at 100,000 customers × 12 months.
    """
    from qianmian_bankgen.dynamics import DEFAULT_START, iter_panel

    keep = set(oracle_months if oracle_months is not None else [months - 1])
    snapshots: list[pa.Table] = []
    states: list[pa.Table] = []
    moments: list[pa.Table] = []
    oracle: list[pa.Table] = []
    for t, month in enumerate(iter_panel(customers, months, seed, start or DEFAULT_START)):
        snapshots.append(month.snapshot)
        states.append(month.state)
        moments.append(month.moments)
        if t in keep:
            oracle.append(month.oracle)
    ids, flags, info = _catalogue_info()
    frame = pa.concat_tables(snapshots).to_pandas()
    oracle_frame = pa.concat_tables(oracle).to_pandas() if oracle else None
    if oracle_frame is not None:
        oracle_frame["product_id"] = oracle_frame["product_id"].astype(str)
    return panel_from_frame(
        frame,
        flags,
        name=f"synthetic panel, {customers:,} customers × {months} months, seed {seed}",
        product_ids=ids,
        customer_ids=_synthetic_ids(frame),
        product_info=info,
        states=pa.concat_tables(states).to_pandas(),
        moments=pa.concat_tables(moments).to_pandas(),
        oracle=oracle_frame,
        meta={"customers": customers, "months": months, "seed": seed},
    )


def bank_snapshot_dates(until: date, months: int) -> tuple[date, ...]:
    """``months`` monthly snapshot dates ending at ``until`` (same day of month, at most the 28th)."""
    if months < 2:
        raise ValueError("a panel needs at least 2 snapshots")
    day = min(until.day, 28)
    last = until.year * 12 + until.month - 1
    return tuple(date(m // 12, m % 12 + 1, day) for m in range(last - months + 1, last + 1))


def _months_between(start: NDArray[np.datetime64], end: date) -> I64:
    """Whole months from each ``start`` day to ``end`` (0 when ``end`` is before the first month ends)."""
    parts = pd.DatetimeIndex(start)
    months = (end.year - parts.year.to_numpy()) * 12 + (end.month - parts.month.to_numpy())
    months -= (end.day < parts.day.to_numpy()).astype(np.int64)
    return np.asarray(np.maximum(months, 0), dtype=np.int64)


def panel_from_bank(path: Path, months: int = 12, *, until: date | None = None) -> SnapshotPanel:
    """The generated bank's own monthly holdings history (``qianmian-bankgen``'s directory) as a panel.

    One synthetic world: the ranker learns from, and serves with, the holdings that profile and the
    decision policies see. Snapshot ``t`` is midnight UTC of its date; a customer is present once
    created before it and holds a product opened before it (``holdings.parquet``'s ``opened_at``; the
    bank keeps no closures, so this source has additions and no drops). Demographics follow the
    Santander layout as of each snapshot: ``sexo``, ``age`` (from the birthday), ``antiguedad`` and
    ``ind_nuevo`` (from ``created_at``), ``cod_prov`` (from the region). Moments are the bank's events
    of the generator's moment types. Left out rather than leaked: what the bank knows only as of its
    ``as_of`` (lifecycle, AUM, segments, risk level), so there is no ``states`` table and no oracle.

    ``until`` (default the bank's ``as_of``, never later) is the last snapshot's date.
    """
    from qianmian_bankgen.dynamics import MOMENTS, PROVINCE_CODE

    path = Path(path)
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    as_of = date.fromisoformat(str(manifest["as_of"]))
    if until is not None and until > as_of:
        raise ValueError(f"the bank knows its holdings up to {as_of}; --until {until} is later")
    dates = bank_snapshot_dates(until or as_of, months)
    customers = pd.read_parquet(
        path / "customers.parquet",
        columns=["customer_id", "gender", "region", "created_at", "birth_month", "birth_day", "age"],
    ).sort_values("customer_id", kind="stable")
    stamps = [pd.Timestamp(datetime.combine(d, datetime.min.time(), UTC)) for d in dates]
    # Customers created since the last snapshot have no row yet (the ranker falls back for them).
    created = pd.to_datetime(customers["created_at"], utc=True)
    customers, created = customers[created < stamps[-1]], created[created < stamps[-1]]
    holdings = pd.read_parquet(path / "holdings.parquet", columns=["customer_id", "product_id", "opened_at"])
    events = pd.read_parquet(
        path / "events.parquet", columns=["customer_id", "event_type", "event_timestamp"]
    )
    ids, flags, info = _catalogue_info()
    cust = IdMap(customers["customer_id"].astype(str).tolist())
    codes = np.arange(1, len(cust) + 1, dtype=np.int64)
    created_days = created.dt.tz_localize(None).to_numpy(dtype="datetime64[D]")
    birth_month = customers["birth_month"].to_numpy(dtype=np.int64)
    birth_day = customers["birth_day"].to_numpy(dtype=np.int64)
    before_birthday = (as_of.month < birth_month) | ((as_of.month == birth_month) & (as_of.day < birth_day))
    birth_year = as_of.year - customers["age"].to_numpy(dtype=np.int64) - before_birthday
    region_code = customers["region"].map(PROVINCE_CODE).to_numpy(dtype=np.float64, na_value=np.nan)
    sexo = np.where(customers["gender"].to_numpy() == "M", "V", "H")
    i_hold = cust.indices(holdings["customer_id"].astype(str).tolist())
    j_hold = IdMap(ids).indices(holdings["product_id"].astype(str).tolist())
    opened = pd.to_datetime(holdings["opened_at"], utc=True)
    ours = (i_hold >= 0) & (j_hold >= 0)  # a panel customer's holding of a catalogue product
    frames: list[pd.DataFrame] = []
    for stamp, day in zip(stamps, dates, strict=True):
        present = (created < stamp).to_numpy()
        held = np.zeros((len(cust), len(ids)), dtype=np.int8)
        known = (opened < stamp).to_numpy() & ours
        held[i_hold[known], j_hold[known]] = 1
        rows = np.flatnonzero(present)
        birthday_ahead = (day.month < birth_month) | ((day.month == birth_month) & (day.day < birth_day))
        tenure = _months_between(created_days[rows], day)
        frame = pd.DataFrame(
            {
                "fecha_dato": np.full(rows.shape[0], day),
                "ncodpers": codes[rows],
                "sexo": sexo[rows],
                "age": (day.year - birth_year - birthday_ahead)[rows],
                "ind_nuevo": (tenure < 6).astype(np.int64),
                "antiguedad": tenure,
                "cod_prov": region_code[rows],
            }
        )
        frame = pd.concat([frame, pd.DataFrame(held[rows], columns=flags)], axis=1)
        frames.append(frame)
    frame = pd.concat(frames, ignore_index=True)
    moment_rows = events[events["event_type"].isin(MOMENTS)]
    i_moment = cust.indices(moment_rows["customer_id"].astype(str).tolist())
    keep = i_moment >= 0
    moments = pd.DataFrame(
        {
            "ncodpers": codes[i_moment[keep]],
            "moment_type": moment_rows["event_type"].astype(str).to_numpy()[keep],
            "at": pd.to_datetime(moment_rows["event_timestamp"], utc=True)
            .dt.tz_localize(None)
            .to_numpy(dtype="datetime64[ns]")[keep],
        }
    )
    return panel_from_frame(
        frame,
        flags,
        name=f"the bank's own holdings history ({path.name}, as of {as_of}), {len(cust):,} customers × "
        f"{months} months",
        product_ids=ids,
        customer_ids=list(cust.ids),
        product_info=info,
        moments=moments,
        meta={"customers": len(cust), "months": months, "as_of": str(as_of), "source": "bank"},
    )


def load_panel_dir(path: Path, *, oracle_months: Sequence[int] | None = None) -> SnapshotPanel:
    """Read what ``write_panel`` wrote (snapshots.parquet if present, else snapshots.csv)."""
    from qianmian_bankgen.dynamics import (
        MOMENTS_PARQUET,
        ORACLE_PARQUET,
        SNAPSHOTS_CSV,
        SNAPSHOTS_PARQUET,
        STATE_PARQUET,
    )

    path = Path(path)
    ids, flags, info = _catalogue_info()
    if (path / SNAPSHOTS_PARQUET).is_file():
        frame = pq.read_table(path / SNAPSHOTS_PARQUET).to_pandas()
    else:
        frame = read_santander_csv(path / SNAPSHOTS_CSV)
    dates = np.unique(_to_date(frame["fecha_dato"]))
    wanted = [len(dates) - 1] if oracle_months is None else list(oracle_months)
    oracle_frame = None
    if (path / ORACLE_PARQUET).is_file() and wanted:
        days = [pd.Timestamp(dates[t]).date() for t in wanted]
        table = pq.read_table(path / ORACLE_PARQUET, filters=[("fecha_dato", "in", days)])
        oracle_frame = table.to_pandas()
        oracle_frame["product_id"] = oracle_frame["product_id"].astype(str)

    def optional(name: str) -> pd.DataFrame | None:
        return pq.read_table(path / name).to_pandas() if (path / name).is_file() else None

    return panel_from_frame(
        frame,
        flags,
        name=f"synthetic panel {path.name}",
        product_ids=ids,
        customer_ids=_synthetic_ids(frame),
        product_info=info,
        states=optional(STATE_PARQUET),
        moments=optional(MOMENTS_PARQUET),
        oracle=oracle_frame,
    )
