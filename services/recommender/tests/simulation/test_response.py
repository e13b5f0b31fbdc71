"""The response model: per-impression probabilities from the planted preferences, seeded draws."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from qianmian_bankgen.catalogue import CATALOGUE
from recommender.simulation.response import Preferences, ResponseModel, ValueModel


def test_conversion_is_proportional_to_the_planted_affinity_and_falls_with_the_rank() -> None:
    model = ResponseModel(conversion_scale=0.2, examination=(1.0, 0.5))
    assert model.p_convert(0.3, 0) == pytest.approx(0.06)
    assert model.p_convert(0.3, 1) == pytest.approx(0.03)
    assert model.p_convert(0.3, 7) == pytest.approx(0.03)  # beyond the table: its last value
    assert model.p_convert(0.0, 0) == 0.0
    assert model.p_convert(0.6, 0) == pytest.approx(2 * model.p_convert(0.3, 0))


@given(
    affinity=st.floats(0, 1),
    rank=st.integers(0, 9),
    scale=st.floats(0, 10),
)
def test_probabilities_are_probabilities_and_a_conversion_is_a_click(
    affinity: float, rank: int, scale: float
) -> None:
    model = ResponseModel(conversion_scale=scale)
    convert, click = model.p_convert(affinity, rank), model.p_click(affinity, rank)
    assert 0 <= convert <= click <= 1


def test_drawn_responses_match_the_probabilities() -> None:
    model = ResponseModel(conversion_scale=0.5)
    rng = np.random.default_rng(3)
    draws = rng.random((200_000, 2))
    answers = [model.respond(0.4, 1, u, v) for u, v in draws]
    converted = np.mean([a.converted for a in answers])
    clicked = np.mean([a.clicked for a in answers])
    assert all(a.clicked for a in answers if a.converted)
    assert converted == pytest.approx(model.p_convert(0.4, 1), abs=0.003)
    assert clicked == pytest.approx(model.p_click(0.4, 1), abs=0.003)


def test_invalid_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="examination"):
        ResponseModel(examination=(1.2,))
    with pytest.raises(ValueError, match=">= 0"):
        ResponseModel(conversion_scale=-1)


def test_preferences_read_the_generators_oracle(tmp_path: Path) -> None:
    (tmp_path / "truth").mkdir()
    np.savez(
        tmp_path / "truth" / "preferences.npz",
        affinity=np.array([[0.1, 0.0], [0.5, 0.25]], dtype=np.float32),
        customer_ids=np.array(["C1", "C2"]),
        product_ids=np.array(["DEP-1Y-01", "FND-01"]),
    )
    prefs = Preferences.load(tmp_path)
    assert len(prefs) == 2
    assert prefs.of("C2", "DEP-1Y-01") == pytest.approx(0.5)
    assert prefs.of("C2", "FND-01") == pytest.approx(0.25)
    assert prefs.of("C1", "NOT-PLANTED") == 0.0


def test_aum_products_convert_with_an_amount_others_without() -> None:
    values = ValueModel({"C1": 1_000_000.0})
    amount = values.value_fen("C1", "DEP-1Y-01", 0.5)
    assert amount is not None
    assert amount == pytest.approx(1_000_000 * (0.05 + 0.35 * 0.5) * 100)
    assert values.value_fen("C1", "DEP-CD-3Y", 0.0) == 200_000 * 100  # its minimum amount
    card = next(p for p in CATALOGUE if p.product_type == "credit_card")
    assert values.value_fen("C1", card.product_id, 0.5) is None
