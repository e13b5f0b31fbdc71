"""Feature rows: (customer, candidate product) pairs as one float32 matrix, the same way offline and
online.

A customer's feature values (the Feast views of :mod:`recommender.ml.ranker.features`, as of the
cut-off) are expanded over their candidates: products not held at the cut-off. Each row is

1. the customer's numeric features and coded categories (profile, holdings counts, state, moments);
2. the month of year being predicted;
3. the portfolio: ``held__<product>`` at the cut-off for every product, so trees can follow the
   product ladder (per-product "added last month" flags were measured to add nothing on top of the
   rest, and cost a third of the training time);
4. the candidate: its product code (a LightGBM category), whether it was held 2..5 snapshots back
   (recently closed), how many products of its type the customer holds, added and closed over the
   lags (taste for a kind of product), its product-view features;
5. the candidate's scores from the CF models (ALS, BPR, LightFM) and popularity within segment, and
   their rank among the customer's candidates.

:class:`FeatureLayout` fixes the columns, their order and the category vocabularies; it is saved in
the model's manifest and rebuilt from it, so serving builds exactly the columns the model learnt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from recommender.ml.ranker.features import LAGS, ViewSpec, mask_words, unpack_masks

F32 = NDArray[np.float32]
I64 = NDArray[np.int64]
Bool = NDArray[np.bool_]

_MASK_PREFIX = "held_lag"
#: Categories seen fewer times than this in training share the "unknown" code (NaN).
_MIN_CATEGORY_COUNT = 20
_MAX_CATEGORIES = 60


def column_name(ref: str) -> str:
    """A feature reference as a LightGBM column name (``view:feature`` -> ``view__feature``)."""
    return ref.replace(":", "__")


@dataclass(frozen=True)
class FeatureLayout:
    """The model's input columns: which features, in which order, with which category codes."""

    products: tuple[str, ...]
    product_types: tuple[str, ...]
    views: tuple[tuple[str, int], ...]
    customer_numeric: tuple[str, ...]
    customer_categorical: tuple[tuple[str, tuple[str, ...]], ...]
    product_numeric: tuple[str, ...]
    product_categorical: tuple[tuple[str, tuple[str, ...]], ...]
    cf_models: tuple[str, ...]

    @classmethod
    def build(
        cls,
        specs: Sequence[ViewSpec],
        products: Sequence[str],
        product_types: Sequence[str],
        customers: pd.DataFrame,
        product_frame: pd.DataFrame,
        cf_models: Sequence[str],
    ) -> FeatureLayout:
        """The layout of these views, with vocabularies learnt from training values
        (``customers``/``product_frame``: Feast answers, columns ``view__feature``)."""

        def vocabulary(values: pd.Series) -> tuple[str, ...]:
            counts = values.dropna().astype(str).value_counts()
            kept = counts[counts >= _MIN_CATEGORY_COUNT].index[:_MAX_CATEGORIES]
            return tuple(sorted(kept))

        c_num: list[str] = []
        c_cat: list[tuple[str, tuple[str, ...]]] = []
        p_num: list[str] = []
        p_cat: list[tuple[str, tuple[str, ...]]] = []
        for spec in specs:
            for name, dtype in spec.fields:
                ref = f"{spec.name}:{name}"
                if spec.name == "ranker_holdings" and name.startswith(_MASK_PREFIX):
                    continue
                text = str(dtype) == "String"
                frame = customers if spec.entity == "customer" else product_frame
                if text:
                    codes = vocabulary(frame[column_name(ref)]) if column_name(ref) in frame else ()
                    (c_cat if spec.entity == "customer" else p_cat).append((ref, codes))
                else:
                    (c_num if spec.entity == "customer" else p_num).append(ref)
        return cls(
            products=tuple(products),
            product_types=tuple(product_types),
            views=tuple((s.name, s.version) for s in specs),
            customer_numeric=tuple(c_num),
            customer_categorical=tuple(c_cat),
            product_numeric=tuple(p_num),
            product_categorical=tuple(p_cat),
            cf_models=tuple(cf_models),
        )

    # -- names -----------------------------------------------------------------------------------

    @property
    def words(self) -> int:
        """Int64 words of each holdings mask."""
        return mask_words(len(self.products))

    def customer_columns(self) -> list[str]:
        """Names of the customer block (numeric then categorical)."""
        return [column_name(r) for r in self.customer_numeric] + [
            column_name(r) for r, _ in self.customer_categorical
        ]

    def product_columns(self) -> list[str]:
        """Names of the product block (numeric then categorical)."""
        return [column_name(r) for r in self.product_numeric] + [
            column_name(r) for r, _ in self.product_categorical
        ]

    def names(self) -> list[str]:
        """Every column of a feature row, in order."""
        return [
            *self.customer_columns(),
            "month_of_year",
            *(f"held__{p}" for p in self.products),
            "candidate",
            *(f"candidate_held_lag{k}" for k in range(2, LAGS + 1)),
            "candidate_type_held",
            "candidate_type_added_5m",
            "candidate_type_closed_5m",
            *self.product_columns(),
            *(f"cf__{m}" for m in self.cf_models),
            *(f"cf_rank__{m}" for m in self.cf_models),
        ]

    def categorical(self) -> list[str]:
        """Columns LightGBM treats as categories."""
        return [
            *(column_name(r) for r, _ in self.customer_categorical),
            "candidate",
            *(column_name(r) for r, _ in self.product_categorical),
        ]

    def mask_refs(self) -> list[str]:
        """The holdings-mask references the rows need (``ranker_holdings:held_lag{k}_w{w}``)."""
        return [f"ranker_holdings:held_lag{k}_w{w}" for k in range(1, LAGS + 1) for w in range(self.words)]

    def customer_refs(self) -> list[str]:
        """Every customer feature reference the rows read from Feast."""
        return [
            *self.customer_numeric,
            *(r for r, _ in self.customer_categorical),
            *self.mask_refs(),
            "ranker_holdings:snapshots_observed",
        ]

    def product_refs(self) -> list[str]:
        """Every product feature reference the rows read from Feast."""
        return [*self.product_numeric, *(r for r, _ in self.product_categorical)]

    def feature_manifest(self) -> list[dict[str, Any]]:
        """The manifest's feature list: each input column with where it comes from and its version."""
        versions = dict(self.views)
        out: list[dict[str, Any]] = []
        for ref in self.customer_refs() + self.product_refs():
            view = ref.partition(":")[0]
            out.append({"feature": ref, "view": view, "version": versions[view]})
        out.append({"feature": "month_of_year", "view": "request", "version": 1})
        out += [{"feature": f"cf:{m}", "view": "candidate model score", "version": 1} for m in self.cf_models]
        return out

    # -- persistence -----------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (the manifest's ``state.layout``)."""
        return {
            "products": list(self.products),
            "product_types": list(self.product_types),
            "views": [list(v) for v in self.views],
            "customer_numeric": list(self.customer_numeric),
            "customer_categorical": [[r, list(v)] for r, v in self.customer_categorical],
            "product_numeric": list(self.product_numeric),
            "product_categorical": [[r, list(v)] for r, v in self.product_categorical],
            "cf_models": list(self.cf_models),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FeatureLayout:
        """Inverse of :meth:`to_json`."""
        return cls(
            products=tuple(data["products"]),
            product_types=tuple(data["product_types"]),
            views=tuple((str(n), int(v)) for n, v in data["views"]),
            customer_numeric=tuple(data["customer_numeric"]),
            customer_categorical=tuple((str(r), tuple(v)) for r, v in data["customer_categorical"]),
            product_numeric=tuple(data["product_numeric"]),
            product_categorical=tuple((str(r), tuple(v)) for r, v in data["product_categorical"]),
            cf_models=tuple(data["cf_models"]),
        )


# ---------------------------------------------------------------------------------------------
# blocks: Feast answers as arrays
# ---------------------------------------------------------------------------------------------


def _coded(values: pd.Series, vocabulary: Sequence[str]) -> F32:
    codes = pd.Categorical(values.astype("string").astype(object), categories=list(vocabulary)).codes
    return np.where(codes >= 0, codes, np.nan).astype(np.float32)


def _numbers(values: pd.Series) -> F32:
    return np.asarray(
        pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float32
    )


@dataclass(frozen=True)
class CustomerBlock:
    """Customer-level inputs of ``n`` customer-months: the values, holdings lags and observed count."""

    values: F32  # [n × customer columns]
    lags: Bool  # [n × LAGS × P], lag 1 = the cut-off snapshot
    observed: F32  # [n] snapshots observed up to the cut-off
    month_of_year: F32  # [n] month being predicted (1..12)

    def __len__(self) -> int:
        return int(self.values.shape[0])


def customer_block(layout: FeatureLayout, frame: pd.DataFrame, month_of_year: NDArray[Any]) -> CustomerBlock:
    """Arrays of a Feast answer (columns ``view__feature``; absent columns and nulls are missing)."""
    n = len(frame)

    def column(ref: str) -> pd.Series:
        name = column_name(ref)
        return frame[name] if name in frame else pd.Series([None] * n, index=frame.index, dtype=object)

    parts = [_numbers(column(r)) for r in layout.customer_numeric]
    parts += [_coded(column(r), vocab) for r, vocab in layout.customer_categorical]
    values = np.column_stack(parts).astype(np.float32) if parts else np.zeros((n, 0), dtype=np.float32)
    masks = np.zeros((n, LAGS, layout.words), dtype=np.int64)
    for k in range(1, LAGS + 1):
        for w in range(layout.words):
            raw = column(f"ranker_holdings:held_lag{k}_w{w}")
            if pd.api.types.is_integer_dtype(raw.dtype):
                masks[:, k - 1, w] = raw.to_numpy(dtype=np.int64)
            else:  # object or float (a missing row): word by word, never through a float
                masks[:, k - 1, w] = np.fromiter((_mask(v) for v in raw.to_numpy(dtype=object)), np.int64, n)
    observed = _numbers(column("ranker_holdings:snapshots_observed"))
    return CustomerBlock(
        values=values,
        lags=unpack_masks(masks, len(layout.products)),
        observed=observed,
        month_of_year=np.asarray(month_of_year, dtype=np.float32),
    )


def _number(value: Any) -> float:
    """``pd.to_numeric(errors="coerce")`` of one value (Feast answers numbers; anything else goes
    through pandas itself, so the two paths cannot disagree)."""
    if value is None:
        return float("nan")
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value)
    return float(pd.to_numeric(pd.Series([value], dtype=object), errors="coerce").iloc[0])


def _mask(value: Any) -> int:
    """One holdings mask word: an exact integer (up to 63 bits: never through a float), 0 if missing."""
    if isinstance(value, int | np.integer):
        return int(value)
    number = _number(value)
    return 0 if number != number else int(number)


def _code(value: Any, vocabulary: Sequence[str]) -> float:
    """:func:`_coded` of one value: its position in ``vocabulary``, NaN when missing or unknown."""
    if value is None or (isinstance(value, float) and value != value):
        return float("nan")
    if not isinstance(value, str):
        value = str(pd.Series([value]).astype("string").iloc[0])
    try:
        return float(vocabulary.index(value))
    except ValueError:
        return float("nan")


def customer_block_from_values(
    layout: FeatureLayout, customers: Sequence[Mapping[str, Any]], month_of_year: NDArray[Any]
) -> CustomerBlock:
    """:func:`customer_block` of plain values keyed ``"view:feature"`` (absent = missing), without
    pandas: what serving builds one customer at a time (equal arrays, tested)."""
    n = len(customers)
    columns = len(layout.customer_numeric) + len(layout.customer_categorical)
    values = np.empty((n, columns), dtype=np.float32)
    masks = np.zeros((n, LAGS, layout.words), dtype=np.int64)
    observed = np.empty(n, dtype=np.float32)
    for i, row in enumerate(customers):
        numbers = [_number(row.get(r)) for r in layout.customer_numeric]
        codes = [_code(row.get(r), vocab) for r, vocab in layout.customer_categorical]
        values[i, :] = numbers + codes
        for k in range(1, LAGS + 1):
            for w in range(layout.words):
                masks[i, k - 1, w] = _mask(row.get(f"ranker_holdings:held_lag{k}_w{w}"))
        observed[i] = _number(row.get("ranker_holdings:snapshots_observed"))
    return CustomerBlock(
        values=values,
        lags=unpack_masks(masks, len(layout.products)),
        observed=observed,
        month_of_year=np.asarray(month_of_year, dtype=np.float32),
    )


def product_block_from_values(layout: FeatureLayout, products: Sequence[Mapping[str, Any]]) -> F32:
    """:func:`product_block` of plain values keyed ``"view:feature"``, one mapping per product."""
    out = np.empty((len(products), len(layout.product_numeric) + len(layout.product_categorical)), np.float32)
    for j, row in enumerate(products):
        out[j, :] = [_number(row.get(r)) for r in layout.product_numeric] + [
            _code(row.get(r), vocab) for r, vocab in layout.product_categorical
        ]
    return out


def product_block(layout: FeatureLayout, frame: pd.DataFrame) -> F32:
    """``[rows × product columns]`` of a Feast answer on the product view."""
    n = len(frame)

    def column(ref: str) -> pd.Series:
        name = column_name(ref)
        return frame[name] if name in frame else pd.Series([None] * n, index=frame.index, dtype=object)

    parts = [_numbers(column(r)) for r in layout.product_numeric]
    parts += [_coded(column(r), vocab) for r, vocab in layout.product_categorical]
    return np.column_stack(parts).astype(np.float32) if parts else np.zeros((n, 0), dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# expansion over candidates
# ---------------------------------------------------------------------------------------------


def candidate_ranks(scores: F32, candidates: Bool) -> F32:
    """Rank (1 = best) of each candidate's score among the customer's candidates; NaN elsewhere."""
    masked = np.where(candidates, scores, -np.inf)
    order = np.argsort(-masked, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(1, scores.shape[1] + 1)[None, :], axis=1)
    return np.where(candidates, ranks, np.nan).astype(np.float32)


def _type_history(layout: FeatureLayout, customers: CustomerBlock, row: I64, product: I64) -> F32:
    """Per row: products of the candidate's type held at the cut-off, added and closed over the
    lags (a customer's taste for a kind of product; on a Santander file each product is its own type)."""
    kinds = sorted(set(layout.product_types))
    of_type = np.zeros((len(layout.products), len(kinds)), dtype=np.float32)
    of_type[np.arange(len(layout.products)), [kinds.index(k) for k in layout.product_types]] = 1.0
    lags = customers.lags
    seen = np.arange(1, LAGS)[None, :] < customers.observed[:, None]  # lag k+1 was observed
    newer, older = lags[:, :-1, :], lags[:, 1:, :]
    added = (newer & ~older & seen[:, :, None]).any(axis=1).astype(np.float32)
    closed = (~newer & older & seen[:, :, None]).any(axis=1).astype(np.float32)
    held = lags[:, 0, :].astype(np.float32)
    column = np.asarray([kinds.index(layout.product_types[int(p)]) for p in range(len(layout.products))])[
        product
    ]
    return np.stack([(m @ of_type)[row, column] for m in (held, added, closed)], axis=1).astype(np.float32)


def feature_rows(
    layout: FeatureLayout,
    customers: CustomerBlock,
    products: F32,
    candidates: Bool,
    cf_scores: F32 | None = None,
    *,
    emit: Bool | None = None,
) -> tuple[F32, I64, I64]:
    """Expand ``n`` customers over their candidates.

    ``products``: ``[P × Q]`` (the same product features for every customer) or ``[n × P × Q]``
    (each customer's cut-off); ``candidates``: ``[n × P]``; ``cf_scores``: ``[n × K × P]`` in
    ``layout.cf_models`` order (None: missing); ``emit``: the candidates to build rows for (default
    all; CF ranks are always among all candidates). Returns the ``[rows × F]`` matrix and, per row,
    the customer (0..n-1) and product (0..P-1) it is for, customers in order, products ascending.
    """
    row, product = np.nonzero(candidates if emit is None else candidates & emit)
    row = row.astype(np.int64)
    product = product.astype(np.int64)
    n_products = len(layout.products)
    blocks: list[F32] = [customers.values[row], customers.month_of_year[row, None]]
    blocks.append(customers.lags[row, 0, :].astype(np.float32))
    blocks.append(product[:, None].astype(np.float32))
    blocks.append(customers.lags[row, 1:, product].astype(np.float32))
    blocks.append(_type_history(layout, customers, row, product))
    if products.ndim == 2:
        blocks.append(products[product])
    else:
        blocks.append(products[row, product])
    k = len(layout.cf_models)
    if k:
        if cf_scores is None:
            blocks.append(np.full((row.shape[0], 2 * k), np.nan, dtype=np.float32))
        else:
            score_cols = cf_scores[row, :, product].astype(np.float32)
            ranks = np.stack([candidate_ranks(cf_scores[:, m, :], candidates) for m in range(k)], axis=1)
            blocks.append(score_cols)
            blocks.append(ranks[row, :, product].astype(np.float32))
    matrix = np.concatenate(blocks, axis=1, dtype=np.float32)
    assert matrix.shape[1] == len(layout.names()), (matrix.shape, len(layout.names()), n_products)
    return matrix, row, product
