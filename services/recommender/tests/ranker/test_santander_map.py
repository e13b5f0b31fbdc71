"""MAP@7 with the Santander convention, against an example computed by hand."""

from __future__ import annotations

import numpy as np
import pytest
from recommender.ml.metrics import average_precision, next_product_metrics


def test_map_at_7_counts_customers_without_an_addition_as_zero() -> None:
    # Four test customers over 9 products; customers 2 and 3 added nothing.
    # Customer 0 added {4, 7}: list [4, 1, 7, ...] hits at ranks 1 and 3 -> AP = (1/1 + 2/3) / 2.
    # Customer 1 added {0, 1, 2, 3, 5, 6, 8}: 7 additions, denominator min(7, 7) = 7;
    #   list [8, 4, 5, 7, 0, 3, 2] hits at 1, 3, 5, 6, 7 -> AP = (1 + 2/3 + 3/5 + 4/6 + 5/7) / 7.
    relevant = np.zeros((4, 9), dtype=bool)
    relevant[0, [4, 7]] = True
    relevant[1, [0, 1, 2, 3, 5, 6, 8]] = True
    recommended = np.array(
        [
            [4, 1, 7, 0, 2, 3, 5],
            [8, 4, 5, 7, 0, 3, 2],
            [0, 1, 2, 3, 4, 5, 6],
            [6, 5, 4, 3, 2, 1, 0],
        ]
    )
    ap0 = (1 + 2 / 3) / 2
    ap1 = (1 + 2 / 3 + 3 / 5 + 4 / 6 + 5 / 7) / 7
    np.testing.assert_allclose(average_precision(recommended, relevant, 7), [ap0, ap1, 0.0, 0.0])

    m = next_product_metrics(recommended, relevant, 7)
    assert m.customers == 4
    assert m.adders == 2
    assert m.map == pytest.approx((ap0 + ap1) / 4)  # the competition's number
    assert m.map_adders == pytest.approx((ap0 + ap1) / 2)
    assert m.recall == pytest.approx((2 / 2 + 5 / 7) / 2)


def test_only_adders_may_be_scored_when_the_population_is_given() -> None:
    relevant = np.zeros((2, 5), dtype=bool)
    relevant[0, 3] = True
    relevant[1, 0] = True
    recommended = np.array([[3, 1, 2], [1, 0, 2]])
    # 2 adders among 10 test customers: the 8 others score 0 whatever their lists.
    m = next_product_metrics(recommended, relevant, 7, customers=10)
    assert m.map == pytest.approx((1.0 + 0.5) / 10)
    assert m.map_adders == pytest.approx(0.75)
    with pytest.raises(ValueError, match="every row"):
        next_product_metrics(recommended, relevant, 7, customers=1)
