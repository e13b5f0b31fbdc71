"""The LightGBM ranker: binary propensity per (customer, candidate), saved as LightGBM text.

**Why binary and not lambdarank.** The ranker's score is the *propensity* of DESIGN.md §3:
arbitration multiplies it by the moment weight and the product's value, and outbound lists rank
*customers* for one product. Both need a number comparable across customers and products, i.e. a
probability of adding the product this month; lambdarank scores are only ordered within a group
(one customer-month) and say nothing across groups. MAP@7 needs only the order within a customer,
which a calibrated probability gives as well (measured, ``reports/ranker.md``). Customer-months with
no addition carry no lambdarank gradient at all, while for a binary model they are the negatives
that set the level; to keep training affordable only a seeded share of them is kept, weighted by
the inverse share so the probabilities stay calibrated.

Deterministic for a seed: ``deterministic``, ``force_col_wise`` and fixed bagging/feature seeds, on
the threads given (``RecommenderSettings.train_threads``); the same data gives the same model text.
Saved in the issue-5 registry as ``model.txt`` (LightGBM's own text format) plus the JSON manifest
(feature list with view versions, category vocabularies, training window, metrics); no pickles.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from recommender.ml.ranker.features import FEATURE_SERVICE
from recommender.ml.ranker.rows import (
    CustomerBlock,
    FeatureLayout,
    customer_block_from_values,
    feature_rows,
    product_block_from_values,
)
from recommender.ml.registry import Manifest, ModelRegistry, RegistryError, Status, check_catalogue

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
MODEL_TYPE: Final = "lightgbm_ranker"
MODEL_FILE: Final = "model.txt"
#: Where a ranker's manifest names its companion CF models (name -> registry version, ``serving.py``).
COMPANIONS_KEY: Final = "companions"


@dataclass(frozen=True)
class RankerConfig:
    """Training window, sampling and LightGBM hyper-parameters.

    Chosen on the seed-7 synthetic panel (100,000 × 12, test month 2026-09) among variants of
    rounds/learning rate (150/0.08, 300/0.05, 500/0.03), leaves (31, 63, 127), regularisation
    (L2 1 → 10 with ≥ 300 rows a leaf), the negative row share (15 %, 30 %) and the portfolio
    columns; checked on a second panel (seed 11): MAP@7 0.01336 with the first parameters
    (150 rounds, learning rate 0.08, L2 1, ≥ 100 rows a leaf), 0.01482 with these (LightFM 0.00889).
    """

    train_months: int = 6
    cf_every: int = 3
    deterministic_cf: bool = True
    negative_rate: float = 0.05
    negative_row_rate: float = 0.15
    num_boost_round: int = 300
    learning_rate: float = 0.05
    num_leaves: int = 63
    min_data_in_leaf: int = 300
    feature_fraction: float = 0.5
    bagging_fraction: float = 0.7
    lambda_l2: float = 10.0
    max_bin: int = 63

    def lightgbm_params(self, *, threads: int, seed: int) -> dict[str, Any]:
        """LightGBM parameters: binary objective, pinned threads, deterministic for ``seed``."""
        return {
            "objective": "binary",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction,
            "bagging_freq": 1,
            "lambda_l2": self.lambda_l2,
            "max_bin": self.max_bin,
            "max_cat_to_onehot": 8,
            "cat_smooth": 10.0,
            "num_threads": threads,
            "seed": seed,
            "bagging_seed": seed,
            "feature_fraction_seed": seed,
            "data_random_seed": seed,
            "deterministic": True,
            "force_col_wise": True,
            "verbosity": -1,
        }

    def to_json(self) -> dict[str, Any]:
        """The manifest's hyper-parameters."""
        return asdict(self)


class RankerModel:
    """A trained ranker: the booster, the feature layout it was trained on, and where it came from.

    Score a batch of feature rows with one call (:meth:`score`); build the rows for one customer's
    candidates online with :meth:`rows_for` (the same code as training, see ``rows.py``).
    """

    def __init__(self, booster: Any, layout: FeatureLayout, *, manifest: Manifest | None = None) -> None:
        self.booster = booster
        self.layout = layout
        self.manifest = manifest
        names = layout.names()
        if list(booster.feature_name()) != names:
            raise RegistryError("the booster's features are not the layout's")
        self._names = names

    @property
    def version(self) -> str | None:
        """The registry version, when loaded from or saved to the registry."""
        return self.manifest.version if self.manifest else None

    @property
    def feature_names(self) -> list[str]:
        """Input columns, in order."""
        return list(self._names)

    def score(self, rows: F32, *, threads: int = 1) -> F64:
        """Propensity of each feature row, in one vectorised LightGBM call."""
        if rows.ndim != 2 or rows.shape[1] != len(self._names):
            raise ValueError(f"expected rows of {len(self._names)} features, got shape {rows.shape}")
        return np.asarray(self.booster.predict(rows, num_threads=threads), dtype=np.float64)

    def rows_for(
        self,
        customers: CustomerBlock,
        products: F32,
        candidates: NDArray[np.bool_],
        cf_scores: F32 | None = None,
    ) -> tuple[F32, NDArray[np.int64], NDArray[np.int64]]:
        """Feature rows for the customers' candidates (``recommender.ml.ranker.rows.feature_rows``)."""
        return feature_rows(self.layout, customers, products, candidates, cf_scores)

    def rows_for_customers(
        self,
        customers: Sequence[Mapping[str, Any]],
        candidates: Sequence[Sequence[str]],
        *,
        products: Mapping[str, Mapping[str, Any]],
        snapshot: date,
        cf_scores: Sequence[Mapping[str, Sequence[float]]] | None = None,
    ) -> tuple[F32, list[tuple[int, str]]]:
        """Feature rows of each customer's candidates from plain feature values, as serving has them.

        ``customers``: per customer, feature values by reference (``"ranker_profile:age"``,
        ``"ranker_holdings:held_lag1_w0"``, … as ``qianmian_features.online_features`` names them;
        absent = missing); ``candidates``: product ids per customer (held products and products the
        model does not know are skipped); ``products``: product id -> its ``ranker_product:*`` values;
        ``snapshot``: the date of the snapshot the features are from (the month after it is the
        month predicted); ``cf_scores``: per customer, model name (``als``, ``bpr``, ``lightfm``) ->
        scores over :attr:`FeatureLayout.products` in order (absent models are missing features).
        Returns the rows and, per row, (customer position, product id).
        """
        layout = self.layout
        n = len(customers)
        block = customer_block_from_values(layout, customers, np.full(n, snapshot.month % 12 + 1))
        product_values = product_block_from_values(layout, [products.get(p, {}) for p in layout.products])
        index = {p: j for j, p in enumerate(layout.products)}
        wanted = np.zeros((n, len(layout.products)), dtype=np.bool_)
        for k, ids in enumerate(candidates):
            columns = [index[p] for p in ids if p in index]
            wanted[k, columns] = True
        cf = None
        if cf_scores is not None and layout.cf_models:
            cf = np.full((n, len(layout.cf_models), len(layout.products)), np.nan, dtype=np.float32)
            for k, scores in enumerate(cf_scores):
                for m, name in enumerate(layout.cf_models):
                    if name in scores:
                        cf[k, m, :] = np.asarray(scores[name], dtype=np.float32)
        matrix, row, product = feature_rows(
            layout, block, product_values, ~block.lags[:, 0, :], cf, emit=wanted
        )
        return matrix, [(int(r), layout.products[int(p)]) for r, p in zip(row, product, strict=True)]

    def score_customers(
        self,
        customers: Sequence[Mapping[str, Any]],
        candidates: Sequence[Sequence[str]],
        *,
        products: Mapping[str, Mapping[str, Any]],
        snapshot: date,
        cf_scores: Sequence[Mapping[str, Sequence[float]]] | None = None,
        threads: int = 1,
    ) -> list[dict[str, float]]:
        """Propensity of each customer's candidates (one LightGBM call for all of them); see
        :meth:`rows_for_customers`. Held or unknown candidates are absent from the answer."""
        matrix, keys = self.rows_for_customers(
            customers, candidates, products=products, snapshot=snapshot, cf_scores=cf_scores
        )
        out: list[dict[str, float]] = [{} for _ in customers]
        if keys:
            for (k, product), value in zip(keys, self.score(matrix, threads=threads), strict=True):
                out[k][product] = float(value)
        return out

    def importance(self, kind: str = "gain") -> dict[str, float]:
        """Feature importance by name (LightGBM ``gain`` or ``split``), largest first."""
        values = self.booster.feature_importance(importance_type=kind)
        pairs = sorted(zip(self._names, (float(v) for v in values), strict=True), key=lambda p: -p[1])
        return dict(pairs)

    def model_text(self) -> str:
        """LightGBM's text model (what the registry stores)."""
        return str(self.booster.model_to_string())

    # -- registry ---------------------------------------------------------------------------------

    def register(
        self,
        registry: ModelRegistry,
        *,
        config: RankerConfig,
        data_window: Mapping[str, Any],
        metrics: Mapping[str, Any] | None = None,
        cf_models: Mapping[str, Any] | None = None,
        companions: Mapping[str, str] | None = None,
        status: Status = "candidate",
        created_at: datetime | None = None,
    ) -> Manifest:
        """Save in the model registry (``model.txt`` + manifest); returns the manifest.

        ``companions``: the registry versions of the CF models fitted at the serving snapshot
        (``serving.register_companions``); a ranker without them can be evaluated, not served."""
        manifest = registry.register_artifact(
            MODEL_TYPE,
            {MODEL_FILE: self.model_text()},
            product_ids=list(self.layout.products),
            hyper_parameters=config.to_json(),
            data_window=data_window,
            metrics=metrics,
            state={
                "feature_service": FEATURE_SERVICE,
                "features": self.layout.feature_manifest(),
                "columns": self.feature_names,
                "categorical": self.layout.categorical(),
                "layout": self.layout.to_json(),
                "cf_models": dict(cf_models or {}),
                COMPANIONS_KEY: dict(companions or {}),
            },
            status=status,
            created_at=created_at,
        )
        self.manifest = manifest
        return manifest


def load_ranker(
    registry: ModelRegistry, version: str | None = None, *, catalogue: Sequence[str] | None = None
) -> RankerModel:
    """Load a registered ranker (default: the newest approved one); ``catalogue`` refuses a model
    trained on another product axis. Raises :class:`RegistryError` when there is none."""
    if version is None:
        newest = registry.newest_approved([MODEL_TYPE])
        if newest is None:
            raise RegistryError(f"no approved {MODEL_TYPE} in registry {registry.root}")
        version = newest.version
    manifest = registry.manifest(version)
    if manifest.model_type != MODEL_TYPE:
        raise RegistryError(f"model {version} is a {manifest.model_type}, not a {MODEL_TYPE}")
    if catalogue is not None:
        check_catalogue(manifest, catalogue)
    import lightgbm

    booster = lightgbm.Booster(model_str=registry.read_artifact(version, MODEL_FILE))
    return RankerModel(booster, FeatureLayout.from_json(manifest.state["layout"]), manifest=manifest)
