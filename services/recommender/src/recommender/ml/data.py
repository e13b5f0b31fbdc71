"""Training data: confidence-weighted customer × product interactions and feature matrices.

The generator's files (``docs/data-contract.md``) are the offline store: ``interactions.parquet``
and ``holdings.parquet`` for behaviour, ``customers.parquet`` and ``products.parquet`` for the
features that let LightFM serve cold-start customers and new products, and
``truth/preferences.npz`` for the oracle.

Holdings are behaviour too: a position the customer opened is an acquisition at ``opened_at``,
usually long before the interaction log begins (the Santander competition's data is nothing but
holdings). They enter the training data as ``holding`` rows timestamped ``opened_at``, so every
cut-off applies to them as to any other row (a position opened at or after a time split's cut-off
never reaches training), with their own confidence (``InteractionWeights.holding``; 0 by default,
i.e. seen items only, see there). A pair counts as acquired once: a holding adds nothing where the
training rows already have a purchase of the pair. Every model, the popularity baselines
included, is fitted on the same :class:`TrainingData`: held products count as seen (never
recommended again) and a customer with holdings is warm; what the baselines *count* is their own
choice (``holding_share``, see ``models/popularity.py``).
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import NDArray

from recommender.ml.idmap import IdMap

F32 = NDArray[np.float32]
INTERACTION_TYPES: Final = ("impression", "click", "purchase", "holding")
_AUM_EDGES: Final = (10_000.0, 50_000.0, 200_000.0, 1_000_000.0)
_SEGMENTS: Final = ("payroll", "mortgage", "credit_card", "wealth", "social_security", "long_tail")


@dataclass(frozen=True)
class InteractionWeights:
    """Confidence of one interaction by type: a purchase says far more than an impression.

    ``holding`` is a held product the training rows show no purchase of (opened before the log, or a
    loader's snapshot). 0 (the default) makes holdings seen items only (and their customers warm);
    ``purchase``'s 30 makes them positives as strong as a purchase. On the synthetic bank the
    positive signal lowered LightFM and ALS (``reports/evaluation.md`` measures both), because its
    prior holdings follow segment base rates rather than the customer's taste.
    """

    impression: float = 0.5
    click: float = 3.0
    purchase: float = 30.0
    holding: float = 0.0

    def of(self, types: NDArray[np.object_] | pd.Series) -> NDArray[np.float32]:
        """The weight of each interaction type in ``types`` (unknown types weigh 0)."""
        values = np.asarray(types, dtype=object)
        out = np.zeros(values.shape[0], dtype=np.float32)
        for name in INTERACTION_TYPES:
            out[values == name] = getattr(self, name)
        return out

    def to_json(self) -> dict[str, float]:
        """JSON-ready form for manifests."""
        return {name: float(getattr(self, name)) for name in INTERACTION_TYPES}


@dataclass(frozen=True)
class Bank:
    """One data set in the shape the recommender trains on, whatever its source.

    ``interactions``: customer_id, product_id, interaction_type, event_timestamp (UTC).
    ``customers``: customer_id plus whichever feature columns the source has.
    ``products``: product_id plus product_type / risk_rating / attributes where known.
    ``affinity``: the planted preference oracle, ``[customers × products]`` aligned with
    ``oracle_customers`` / ``oracle_products`` (synthetic data only).
    """

    name: str
    interactions: pd.DataFrame
    customers: pd.DataFrame
    products: pd.DataFrame
    affinity: NDArray[np.float32] | None = None
    oracle_customers: IdMap | None = None
    oracle_products: IdMap | None = None
    meta: dict[str, object] = field(default_factory=dict)


def load_bank(path: Path, *, holdings: bool = True) -> Bank:
    """Read a generated bank (``qianmian-bankgen generate`` output).

    With ``holdings`` (the default) the positions of ``holdings.parquet`` are appended as ``holding``
    rows at their ``opened_at``, except those a logged purchase opened (same pair, same time): the
    purchase row already says it.
    """
    path = Path(path)
    interactions = pd.read_parquet(
        path / "interactions.parquet",
        columns=["customer_id", "product_id", "interaction_type", "event_timestamp"],
    )
    holdings_file = path / "holdings.parquet"
    if holdings and holdings_file.is_file():
        interactions = with_holdings(
            interactions, pd.read_parquet(holdings_file, columns=["customer_id", "product_id", "opened_at"])
        )
    customers = pd.read_parquet(path / "customers.parquet")
    products = pd.read_parquet(path / "products.parquet")
    truth_file = path / "truth" / "preferences.npz"
    affinity = oracle_customers = oracle_products = None
    if truth_file.is_file():
        with np.load(truth_file, allow_pickle=False) as truth:
            affinity = np.asarray(truth["affinity"], dtype=np.float32)
            oracle_customers = IdMap(str(c) for c in truth["customer_ids"])
            oracle_products = IdMap(str(p) for p in truth["product_ids"])
    meta: dict[str, object] = {}
    manifest = path / "manifest.json"
    if manifest.is_file():
        meta = json.loads(manifest.read_text(encoding="utf-8"))
    return Bank(
        name=f"synthetic bank {path.name}",
        interactions=interactions,
        customers=customers,
        products=products,
        affinity=affinity,
        oracle_customers=oracle_customers,
        oracle_products=oracle_products,
        meta=meta,
    )


def with_holdings(interactions: pd.DataFrame, holdings: pd.DataFrame) -> pd.DataFrame:
    """``interactions`` plus one ``holding`` row per position (customer_id, product_id, opened_at).

    Positions whose pair has a purchase at exactly ``opened_at`` were opened by that purchase and are
    left out; the rest (earlier positions, including ones a later purchase topped up) are kept.
    """
    rows = pd.DataFrame(
        {
            "customer_id": holdings["customer_id"].to_numpy(),
            "product_id": holdings["product_id"].to_numpy(),
            "interaction_type": "holding",
            "event_timestamp": holdings["opened_at"].to_numpy(),
        }
    )
    purchases = interactions.loc[
        interactions["interaction_type"] == "purchase", ["customer_id", "product_id", "event_timestamp"]
    ]
    opened_by_purchase = pd.MultiIndex.from_frame(purchases).unique()
    mask = pd.MultiIndex.from_frame(rows[["customer_id", "product_id", "event_timestamp"]]).isin(
        opened_by_purchase
    )
    rows = rows[~mask]
    rows["event_timestamp"] = pd.to_datetime(rows["event_timestamp"], utc=True).astype(
        interactions["event_timestamp"].dtype
    )
    return pd.concat([interactions, rows], ignore_index=True)


def _pair_keys(rows: NDArray[np.int64], cols: NDArray[np.int64], width: int) -> NDArray[np.int64]:
    return rows.astype(np.int64) * max(width, 1) + cols.astype(np.int64)


def interaction_matrix(
    interactions: pd.DataFrame, customers: IdMap, products: IdMap, weights: InteractionWeights
) -> sp.csr_matrix:
    """``[customers × products]`` float32 confidence: the sum of the weights of each pair's rows.

    A ``holding`` row adds nothing to a pair that also has a ``purchase`` row (acquired once).
    Rows whose customer or product is not in the maps are dropped.
    """
    rows = customers.indices(interactions["customer_id"].tolist())
    cols = products.indices(interactions["product_id"].tolist())
    types = interactions["interaction_type"].to_numpy()
    values = weights.of(types)
    holding = types == "holding"
    if holding.any():
        keys = _pair_keys(rows, cols, len(products))
        values[holding & np.isin(keys, keys[types == "purchase"])] = 0.0
    keep = (rows >= 0) & (cols >= 0) & (values > 0)
    matrix = sp.csr_matrix(
        (values[keep], (rows[keep], cols[keep])), shape=(len(customers), len(products)), dtype=np.float32
    )
    matrix.sum_duplicates()
    matrix.sort_indices()
    return matrix


def purchase_matrix(interactions: pd.DataFrame, customers: IdMap, products: IdMap) -> sp.csr_matrix:
    """``[customers × products]`` 0/1: pairs with a purchase or a ``holding`` row (the seen items)."""
    bought = interactions[interactions["interaction_type"].isin(("purchase", "holding"))]
    bought = bought.assign(interaction_type="purchase")
    matrix = interaction_matrix(bought, customers, products, InteractionWeights(0.0, 0.0, 1.0, 0.0))
    matrix.data[:] = 1.0
    return matrix


def engaged_matrix(
    interactions: pd.DataFrame, customers: IdMap, products: IdMap, weights: InteractionWeights
) -> sp.csr_matrix:
    """``[customers × products]`` 0/1: pairs with a click or a purchase, or with a holding row when
    ``weights.holding`` makes holdings positives. An impression alone is exposure, not interest."""
    kinds = InteractionWeights(0.0, 1.0, 1.0, 1.0 if weights.holding > 0 else 0.0)
    matrix = interaction_matrix(interactions, customers, products, kinds)
    matrix.data[:] = 1.0
    return matrix


def held_only_matrix(interactions: pd.DataFrame, customers: IdMap, products: IdMap) -> sp.csr_matrix:
    """``[customers × products]`` 0/1: pairs with a ``holding`` row and no ``purchase`` row."""
    held = interactions[interactions["interaction_type"].isin(("purchase", "holding"))]
    matrix = interaction_matrix(held, customers, products, InteractionWeights(0.0, 0.0, 0.0, 1.0))
    matrix.data[:] = 1.0
    return matrix


# ---------------------------------------------------------------------------------------------
# features: readable tokens ("segment=payroll", "type=deposit") -> sparse rows
# ---------------------------------------------------------------------------------------------


def customer_feature_tokens(customers: pd.DataFrame) -> list[list[str]]:
    """Feature tokens per customer: segments, lifecycle, age band, AUM band, risk level, city tier.

    Uses the columns that exist, so loaders of other formats may provide fewer; a
    ``feature_tokens`` column (comma list) is appended verbatim.
    """
    n = len(customers)
    parts: list[list[str]] = [[] for _ in range(n)]

    def add(tokens: Sequence[str | None]) -> None:
        for row, token in zip(parts, tokens, strict=True):
            if token:
                row.append(token)

    for segment in _SEGMENTS:
        column = f"seg_{segment}"
        if column in customers:
            add([f"segment={segment}" if v else None for v in customers[column].astype(bool)])
    if "lifecycle_stage" in customers:
        add([f"lifecycle={v}" for v in customers["lifecycle_stage"].astype(str)])
    if "age_band" in customers:
        add([f"age_band={v}" for v in customers["age_band"].astype(str)])
    if "aum" in customers:
        bands = np.digitize(customers["aum"].fillna(0).to_numpy(dtype=np.float64), _AUM_EDGES)
        add([f"aum_band={b}" for b in bands])
    if "risk_level" in customers:
        levels = customers["risk_level"].fillna(0).to_numpy(dtype=np.int64)
        add([f"risk={level}" if level else "risk=none" for level in levels])
    if "city_tier" in customers:
        add([f"city_tier={v}" for v in customers["city_tier"].astype(str)])
    if "feature_tokens" in customers:
        for row, value in zip(parts, customers["feature_tokens"].fillna("").astype(str), strict=True):
            row.extend(t for t in value.split(",") if t)
    return parts


def serving_feature_tokens(profile: Mapping[str, Any]) -> list[str]:
    """The tokens of :func:`customer_feature_tokens` for one customer at serving time.

    ``profile`` holds the ``customer_profile`` feature values by column name (``seg_payroll``,
    ``lifecycle_stage``, ``age_band``, ``aum``, ``risk_level``, ``city_tier``); absent or None
    values give no token, as absent columns do in training. Same rules, no pandas per request.
    """
    tokens: list[str] = []
    for segment in _SEGMENTS:
        if profile.get(f"seg_{segment}"):
            tokens.append(f"segment={segment}")
    if profile.get("lifecycle_stage") is not None:
        tokens.append(f"lifecycle={profile['lifecycle_stage']}")
    if profile.get("age_band") is not None:
        tokens.append(f"age_band={profile['age_band']}")
    if profile.get("aum") is not None:
        tokens.append(f"aum_band={bisect.bisect_right(_AUM_EDGES, float(profile['aum']))}")
    if profile.get("risk_level") is not None:
        level = int(profile["risk_level"])
        tokens.append(f"risk={level}" if level else "risk=none")
    if profile.get("city_tier") is not None:
        tokens.append(f"city_tier={profile['city_tier']}")
    return tokens


def product_feature_tokens(products: pd.DataFrame) -> list[list[str]]:
    """Feature tokens per product: type, risk rating and the marketing tags of its attributes."""
    out: list[list[str]] = []
    for _, row in products.iterrows():
        tokens: list[str] = []
        if "product_type" in row and pd.notna(row["product_type"]):
            tokens.append(f"type={row['product_type']}")
        if "risk_rating" in row:
            rating = row["risk_rating"]
            tokens.append(f"risk=R{int(rating)}" if pd.notna(rating) else "risk=none")
        attributes = row.get("attributes")
        if isinstance(attributes, str) and attributes:
            tags = json.loads(attributes).get("tags", [])
            tokens.extend(f"tag={t}" for t in tags)
        out.append(tokens)
    return out


class FeatureVocabulary:
    """The known feature tokens in column order; encodes token lists as row-normalised sparse rows.

    Row normalisation keeps a customer with many tokens from getting a larger embedding norm
    (LightFM's own advice for feature matrices).
    """

    def __init__(self, names: Sequence[str]) -> None:
        self.ids = IdMap(names)

    @classmethod
    def fit(cls, token_lists: Sequence[Sequence[str]]) -> FeatureVocabulary:
        """All tokens seen, sorted."""
        return cls(sorted({t for tokens in token_lists for t in tokens}))

    def __len__(self) -> int:
        return len(self.ids)

    def encode(
        self, token_lists: Sequence[Sequence[str]], *, prefix: sp.csr_matrix | None = None
    ) -> sp.csr_matrix:
        """``[rows × (prefix columns + vocabulary)]``, each row scaled to sum 1 (an empty row stays
        empty); unknown tokens are ignored.

        A few rows (a decision encodes one customer) are built in one pass; many (training, a batch)
        by stacking and rescaling whole matrices. scipy's per-call overhead of the stacking was a
        seventh of a first decision (580 µs against 77 µs for one row); the two give the same bits.
        """
        if len(token_lists) <= FEW_ROWS:
            return self._encode_rows(token_lists, prefix)
        return self._encode_matrix(token_lists, prefix)

    def _encode_rows(
        self, token_lists: Sequence[Sequence[str]], prefix: sp.csr_matrix | None
    ) -> sp.csr_matrix:
        width = 0 if prefix is None else int(prefix.shape[1])
        if prefix is not None:
            prefix = sp.csr_matrix(prefix, dtype=np.float32)
            prefix.sum_duplicates()  # canonical: sorted columns, one entry each
            if prefix.shape[0] != len(token_lists):
                raise ValueError(f"prefix has {prefix.shape[0]} rows for {len(token_lists)} token lists")
        indptr = [0]
        indices: list[int] = []
        data: list[np.float32] = []
        one = np.float32(1.0)
        for row, tokens in enumerate(token_lists):
            known = sorted({i for t in tokens if (i := self.ids.get(t)) is not None})
            values: list[np.float32] = [one] * len(known)
            columns = [width + i for i in known]
            if prefix is not None:
                start, end = prefix.indptr[row], prefix.indptr[row + 1]
                columns = [int(c) for c in prefix.indices[start:end]] + columns
                values = [np.float32(v) for v in prefix.data[start:end]] + values
            total = np.float32(sum(values, np.float32(0.0))) if values else np.float32(0.0)
            scale = one / total if total > 0 else np.float32(0.0)
            indices.extend(columns)
            data.extend(np.float32(v * scale) for v in values)
            indptr.append(len(indices))
        return sp.csr_matrix(
            (
                np.asarray(data, dtype=np.float32),
                np.asarray(indices, dtype=np.int64),
                np.asarray(indptr, dtype=np.int64),
            ),
            shape=(len(token_lists), width + len(self)),
            dtype=np.float32,
        )

    def _encode_matrix(
        self, token_lists: Sequence[Sequence[str]], prefix: sp.csr_matrix | None
    ) -> sp.csr_matrix:
        indptr = [0]
        indices: list[int] = []
        for tokens in token_lists:
            known = sorted({i for t in tokens if (i := self.ids.get(t)) is not None})
            indices.extend(known)
            indptr.append(len(indices))
        matrix = sp.csr_matrix(
            (
                np.ones(len(indices), dtype=np.float32),
                np.asarray(indices, dtype=np.int64),
                np.asarray(indptr),
            ),
            shape=(len(token_lists), len(self)),
            dtype=np.float32,
        )
        if prefix is not None:
            matrix = sp.hstack([prefix, matrix], format="csr", dtype=np.float32)
        sums = np.asarray(matrix.sum(axis=1)).ravel()
        scale = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0).astype(np.float32)
        return sp.csr_matrix(sp.diags(scale) @ matrix, dtype=np.float32)


#: Up to this many rows, :meth:`FeatureVocabulary.encode` builds them one by one.
FEW_ROWS: Final = 64


@dataclass(frozen=True)
class TrainingData:
    """What a model is fitted on: id maps, confidence matrix, seen items and feature tokens.

    ``interactions``: confidence (interaction and holding weights); ``seen``: 0/1 purchased or held
    (excluded from recommendations); ``purchased``: 0/1 purchased; ``held``: 0/1 held without a
    purchase row. The last two are what the popularity baselines count.
    """

    customers: IdMap
    products: IdMap
    interactions: sp.csr_matrix
    seen: sp.csr_matrix
    purchased: sp.csr_matrix
    held: sp.csr_matrix
    customer_tokens: list[list[str]]
    product_tokens: list[list[str]]
    weights: InteractionWeights
    window: tuple[str, str]
    #: 0/1 pairs that show interest rather than exposure (a click, a purchase, or a holding row when
    #: holdings carry weight); None where the builder could not tell (every pair then counts).
    engaged: sp.csr_matrix | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """``(customers, products)``."""
        return len(self.customers), len(self.products)


def training_data(
    bank: Bank,
    *,
    products: IdMap,
    weights: InteractionWeights,
    until: pd.Timestamp | None = None,
    interactions: pd.DataFrame | None = None,
) -> TrainingData:
    """Build the training set: rows (interactions and holdings) before ``until`` (all if None),
    customers with any such row.

    ``products`` fixes the product axis (the catalogue), so every model of one run shares it.
    """
    frame = bank.interactions if interactions is None else interactions
    if until is not None:
        frame = frame[frame["event_timestamp"] < until]
    customers = IdMap.from_values(frame["customer_id"].unique().tolist())
    matrix = interaction_matrix(frame, customers, products, weights)
    seen = purchase_matrix(frame, customers, products)
    purchased = purchase_matrix(frame[frame["interaction_type"] != "holding"], customers, products)
    held = held_only_matrix(frame, customers, products)
    features = bank.customers.set_index("customer_id").reindex(list(customers.ids)).reset_index()
    product_frame = bank.products.set_index("product_id").reindex(list(products.ids)).reset_index()
    timestamps = frame["event_timestamp"]
    window = (str(timestamps.min()), str(timestamps.max())) if len(frame) else ("", "")
    return TrainingData(
        customers=customers,
        products=products,
        interactions=matrix,
        seen=seen,
        purchased=purchased,
        held=held,
        customer_tokens=customer_feature_tokens(features),
        product_tokens=product_feature_tokens(product_frame),
        weights=weights,
        window=window,
        engaged=engaged_matrix(frame, customers, products, weights),
    )
