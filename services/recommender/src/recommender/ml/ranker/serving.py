"""Serving the ranker: its CF companions, one customer's rows from online values, one LightGBM call.

A ranker is trained on rows whose CF columns come from ALS, BPR, LightFM and segment popularity
fitted on the panel at each cut-off (``cf.py``). To score the month after the newest snapshot the
same four models are fitted at that snapshot and registered as the ranker's *companions* (registry
status ``companion``: loaded only through the ranker that names them, never served on their own,
never approved). :class:`ServingRanker` then turns a customer's online feature values into the rows
training built (``RankerModel.rows_for_customers``, the code training uses) and scores every product
the customer did not hold at the snapshot in one vectorised call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

import numpy as np
import pandas as pd

from recommender.ml.models import Recommender
from recommender.ml.ranker.cf import FittedModels, tokens_of
from recommender.ml.ranker.model import COMPANIONS_KEY, MODEL_TYPE, RankerModel, load_ranker
from recommender.ml.registry import Manifest, ModelRegistry, RegistryError

_PROFILE: Final = "ranker_profile:"
_STATE: Final = "ranker_state:"


def register_companions(
    registry: ModelRegistry, fitted: FittedModels, names: Sequence[str], *, data_window: Mapping[str, Any]
) -> dict[str, str]:
    """Register the CF models fitted at the serving snapshot as companions; name -> version."""
    versions: dict[str, str] = {}
    for name in names:
        manifest = registry.register(fitted.models[name], data_window=data_window, status="companion")
        versions[name] = manifest.version
    return versions


@dataclass(frozen=True, slots=True)
class RankerInputs:
    """What one customer's scores are computed from: the online values of the ranker's customer
    views (``"view:feature"``; None where the store has no value) as of the snapshot ``snapshot``."""

    customer_id: str
    snapshot: date
    values: Mapping[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "snapshot": self.snapshot.isoformat(),
            "values": {k: plain_value(v) for k, v in sorted(self.values.items())},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RankerInputs:
        return cls(
            customer_id=str(data["customer_id"]),
            snapshot=date.fromisoformat(str(data["snapshot"])),
            values=dict(data["values"]),
        )


def plain_value(value: Any) -> Any:
    """A JSON-safe value: numpy scalars as Python numbers, NaN as None."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


class ServingRanker:
    """A registered ranker with its companions, ready to score one customer at a time."""

    def __init__(self, model: RankerModel, companions: Mapping[str, Recommender]) -> None:
        missing = [name for name in model.layout.cf_models if name not in companions]
        if missing:
            raise RegistryError(
                f"ranker {model.version} needs the companion models {missing}; retrain it with "
                "`recommender train-ranker`, which registers them"
            )
        axis = list(model.layout.products)
        for name, companion in companions.items():
            if companion.products.to_list() != axis:
                raise RegistryError(f"companion {name} of ranker {model.version} has another product axis")
        self.model = model
        self.companions = dict(companions)
        self.products: tuple[str, ...] = tuple(axis)
        # Each reference once (a Feast request may not name one twice).
        self.customer_refs: tuple[str, ...] = tuple(dict.fromkeys(model.layout.customer_refs()))
        self.product_refs: tuple[str, ...] = tuple(dict.fromkeys(model.layout.product_refs()))
        self._has_state = any(ref.startswith(_STATE) for ref in self.customer_refs)

    @property
    def version(self) -> str:
        version = self.model.version
        if version is None:
            raise RegistryError("a served ranker must come from the registry")
        return version

    def tokens(self, values: Mapping[str, Any]) -> list[str]:
        """The companions' feature tokens of a customer (used for customers they did not see)."""

        def frame(prefix: str) -> pd.DataFrame:
            row = {ref.removeprefix(prefix): v for ref, v in values.items() if ref.startswith(prefix)}
            return pd.DataFrame([row])

        return tokens_of(frame(_PROFILE), frame(_STATE) if self._has_state else None)[0]

    def cf_scores(self, inputs: RankerInputs) -> dict[str, list[float]]:
        """Each companion's scores of the customer over :attr:`products` (the feature tokens are
        built only when a companion did not see the customer: warm scores never read them)."""
        ids = [inputs.customer_id]
        cold = [name for name, model in self.companions.items() if model.customers.indices(ids)[0] < 0]
        tokens = [self.tokens(inputs.values)] if cold else None
        return {
            name: np.asarray(model.score(ids, tokens)[0], dtype=np.float32).tolist()
            for name, model in self.companions.items()
        }

    def score(self, inputs: RankerInputs, products: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
        """P(add next month) of every product the customer did not hold at the snapshot, from one
        LightGBM call; ``products``: product id -> its ``ranker_product`` values."""
        (scores,) = self.model.score_customers(
            [inputs.values],
            [self.products],
            products=products,
            snapshot=inputs.snapshot,
            cf_scores=[self.cf_scores(inputs)],
        )
        return scores


def companions_of(manifest: Manifest) -> dict[str, str]:
    """The companion versions a ranker's manifest names."""
    raw = manifest.state.get(COMPANIONS_KEY) or {}
    return {str(k): str(v) for k, v in dict(raw).items()}


def load_serving_ranker(
    registry: ModelRegistry, version: str | None = None, *, catalogue: Sequence[str] | None = None
) -> ServingRanker:
    """The ranker ``version`` (default: the newest approved) with its companions."""
    model = load_ranker(registry, version, catalogue=catalogue)
    assert model.manifest is not None
    companions: dict[str, Recommender] = {}
    for name, companion in companions_of(model.manifest).items():
        loaded = registry.load(companion)
        if loaded.manifest.status != "companion":
            raise RegistryError(
                f"ranker {model.version}: {companion} is {loaded.manifest.status}, not a companion"
            )
        companions[name] = loaded.model
    return ServingRanker(model, companions)


def newest_ranker_version(registry: ModelRegistry) -> str | None:
    """The newest approved ranker's version, or None."""
    newest = registry.newest_approved([MODEL_TYPE])
    return None if newest is None else newest.version
