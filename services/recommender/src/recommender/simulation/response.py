"""How a simulated customer answers a bundle: the synthetic bank's planted preferences, made per impression.

The generator (``qianmian_bankgen.generator``) plants, for every customer *i* and product *j*, the
probability ``a[i, j]`` that *i* buys *j* over its 180-day window, zeroed where *j* is not offerable at
as-of (``truth/preferences.npz``, the oracle). The response model turns it into per-impression
probabilities:

- the customer **examines** the bundle at rank *r* (0 = first) with probability ``examination[r]``
  (1.0, 0.6, 0.45, 0.35, 0.3, then the last value): lower slots are looked at less;
- an examined bundle **converts** with probability ``min(1, conversion_scale × a)``
  (``conversion_scale`` 0.2 by default: one impression at the moment the bank chose turns a fifth of
  the customer's 180-day propensity for that product into a purchase);
- a conversion is always preceded by a **click**; an examined bundle that does not convert is clicked
  with probability ``min(1, click_base + click_slope × a)`` (0.01 + 0.15 a, the generator's own model
  of non-converting clicks);
- a customer buys a product **once**: after a conversion the product's propensity is 0 for the rest of
  the simulation;
- the converted **value** (fen) of an AUM product (deposit, structured deposit, wealth management,
  fund, insurance) is the generator's position size ``max(min_amount, AUM × U(0.05, 0.4))`` rounded to
  100 yuan; other products (cards, loans, services) convert without an amount.

So ``P(convert | shown at rank r) = examination[r] × min(1, conversion_scale × a)``: a model that
serves products of higher planted affinity converts more, in exact proportion, which is what the
implied uplift (:mod:`recommender.simulation.implied`) computes without sampling.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from qianmian_bankgen.catalogue import CATALOGUE

#: Product types whose conversion moves money into the bank (AUM): they carry a converted amount.
AUM_TYPES: Final[frozenset[str]] = frozenset(
    {"deposit", "structured_deposit", "wealth_management", "fund", "insurance"}
)


@dataclass(frozen=True)
class Preferences:
    """The planted purchase propensities ``affinity[customer, product]`` of a generated bank."""

    customer_ids: tuple[str, ...]
    product_ids: tuple[str, ...]
    affinity: npt.NDArray[np.float64]
    _customers: Mapping[str, int] = field(init=False, repr=False, compare=False)
    _products: Mapping[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.affinity.shape != (len(self.customer_ids), len(self.product_ids)):
            raise ValueError("affinity must be customers × products")
        object.__setattr__(self, "_customers", {c: i for i, c in enumerate(self.customer_ids)})
        object.__setattr__(self, "_products", {p: j for j, p in enumerate(self.product_ids)})

    @classmethod
    def load(cls, bank: Path) -> Preferences:
        """Read ``truth/preferences.npz`` of a bank written by ``qianmian-bankgen generate``."""
        with np.load(bank / "truth" / "preferences.npz") as data:
            return cls(
                customer_ids=tuple(str(c) for c in data["customer_ids"]),
                product_ids=tuple(str(p) for p in data["product_ids"]),
                affinity=np.asarray(data["affinity"], dtype=np.float64),
            )

    def __len__(self) -> int:
        return len(self.customer_ids)

    def of(self, customer_id: str, product_id: str) -> float:
        """``a[i, j]``; 0 for a product the generator did not plant (not in the seed catalogue)."""
        j = self._products.get(product_id)
        if j is None:
            return 0.0
        return float(self.affinity[self._customers[customer_id], j])


@dataclass(frozen=True)
class Response:
    """What the customer did with one bundle."""

    clicked: bool
    converted: bool


@dataclass(frozen=True)
class ResponseModel:
    """Per-impression click and conversion probabilities from a planted propensity (module docstring)."""

    conversion_scale: float = 0.2
    click_base: float = 0.01
    click_slope: float = 0.15
    examination: tuple[float, ...] = (1.0, 0.6, 0.45, 0.35, 0.3)

    def __post_init__(self) -> None:
        if not self.examination or any(not 0 <= e <= 1 for e in self.examination):
            raise ValueError("examination probabilities must be in [0, 1]")
        if self.conversion_scale < 0 or self.click_base < 0 or self.click_slope < 0:
            raise ValueError("response parameters must be >= 0")

    def examined(self, rank: int) -> float:
        """Probability that the bundle at ``rank`` (0 = first) is looked at."""
        return self.examination[min(rank, len(self.examination) - 1)]

    def p_convert(self, affinity: float, rank: int) -> float:
        """P(convert | shown at ``rank``)."""
        return self.examined(rank) * min(1.0, self.conversion_scale * affinity)

    def p_click(self, affinity: float, rank: int) -> float:
        """P(click | shown at ``rank``), conversions included (a conversion is always clicked)."""
        convert = self.p_convert(affinity, rank)
        other = self.examined(rank) * min(1.0, self.click_base + self.click_slope * affinity)
        return convert + (1.0 - convert) * other

    def respond(self, affinity: float, rank: int, u_convert: float, u_click: float) -> Response:
        """The response drawn with two uniforms in [0, 1) (drawn by the caller, so runs are seeded)."""
        convert = self.p_convert(affinity, rank)
        if u_convert < convert:
            return Response(clicked=True, converted=True)
        # Given no conversion, the click probability of the remaining examined-but-not-bought mass.
        other = self.examined(rank) * min(1.0, self.click_base + self.click_slope * affinity)
        return Response(clicked=u_click < other, converted=False)

    def describe(self) -> dict[str, Any]:
        """The parameters, for the report."""
        return {
            "conversion_scale": self.conversion_scale,
            "click_base": self.click_base,
            "click_slope": self.click_slope,
            "examination": list(self.examination),
        }


class ValueModel:
    """Converted amounts (fen) as the generator sizes positions: ``max(min_amount, AUM × U(0.05, 0.4))``."""

    def __init__(self, aum_yuan: Mapping[str, float]) -> None:
        self.aum_yuan = aum_yuan
        self._products = {p.product_id: p for p in CATALOGUE}

    def value_fen(self, customer_id: str, product_id: str, u: float) -> int | None:
        """The amount of one conversion with the uniform ``u``; None for a non-AUM product."""
        product = self._products.get(product_id)
        if product is None or product.product_type not in AUM_TYPES:
            return None
        raw = product.attributes.get("min_amount", 0)
        minimum = float(raw) if isinstance(raw, int | float) else 0.0
        amount = max(minimum, round(self.aum_yuan.get(customer_id, 0.0) * (0.05 + 0.35 * u), -2))
        return round(amount * 100)


def aum_by_customer(customer_ids: Sequence[str], aum: Sequence[float]) -> dict[str, float]:
    """``{customer_id: AUM in yuan}`` from two aligned columns (``customers.parquet``)."""
    return {str(c): float(a) for c, a in zip(customer_ids, aum, strict=True)}
