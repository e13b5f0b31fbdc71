"""Loaders on tiny files written in the real formats."""
# ruff: noqa: E501 - the fixtures are verbatim lines of the real file formats

from __future__ import annotations

from pathlib import Path

from recommender.ml.data import InteractionWeights, training_data
from recommender.ml.idmap import IdMap
from recommender.ml.loaders import load_santander, load_uci_bank
from recommender.ml.models import PopularityRecommender

SANTANDER = """fecha_dato,ncodpers,ind_empleado,pais_residencia,sexo,age,fecha_alta,segmento,renta,ind_actividad_cliente,ind_ahor_fin_ult1,ind_cco_fin_ult1,ind_tjcr_fin_ult1
2015-01-28,1001,N,ES,H, 35,2012-08-10,02 - PARTICULARES,87218.1,1,0,1,0
2015-01-28,1002,N,ES,V, 23,2014-01-02,03 - UNIVERSITARIO,35548.74,0,0,1,0
2015-02-28,1001,N,ES,H, 35,2012-08-10,02 - PARTICULARES,87218.1,1,0,1,1
2015-02-28,1002,N,ES,V, 23,2014-01-02,03 - UNIVERSITARIO,35548.74,0,0,1,0
2015-03-28,1001,N,ES,H, 35,2012-08-10,02 - PARTICULARES,87218.1,1,1,1,1
2015-03-28,1002,N,ES,V, 23,2014-01-02,03 - UNIVERSITARIO,35548.74,1,0,0,1
2015-03-28,1003,N,ES,H, 51,2015-03-01,01 - TOP,,1,0,1,0
"""

UCI = """"age";"job";"marital";"education";"default";"housing";"loan";"contact";"month";"day_of_week";"duration";"campaign";"pdays";"previous";"poutcome";"emp.var.rate";"cons.price.idx";"cons.conf.idx";"euribor3m";"nr.employed";"y"
56;"housemaid";"married";"basic.4y";"no";"no";"no";"telephone";"may";"mon";261;1;999;0;"nonexistent";1.1;93.994;-36.4;4.857;5191;"no"
57;"services";"married";"high.school";"unknown";"no";"no";"telephone";"may";"mon";149;1;999;0;"nonexistent";1.1;93.994;-36.4;4.857;5191;"no"
37;"services";"married";"high.school";"no";"yes";"no";"telephone";"may";"mon";226;1;999;0;"nonexistent";1.1;93.994;-36.4;4.857;5191;"yes"
40;"admin.";"married";"basic.6y";"no";"no";"yes";"telephone";"may";"mon";151;1;999;0;"nonexistent";1.1;93.994;-36.4;4.857;5191;"no"
"""


def test_santander_additions_between_months_become_purchases(tmp_path: Path) -> None:
    path = tmp_path / "train_ver2.csv"
    path.write_text(SANTANDER, encoding="utf-8")
    bank = load_santander(path)
    purchases = bank.interactions[bank.interactions["interaction_type"] == "purchase"]
    got = sorted(
        zip(
            purchases["customer_id"],
            purchases["product_id"],
            purchases["event_timestamp"].dt.strftime("%Y-%m-%d"),
            strict=True,
        )
    )
    assert got == [
        ("S1001", "ind_ahor_fin_ult1", "2015-03-28"),
        ("S1001", "ind_tjcr_fin_ult1", "2015-02-28"),
        ("S1002", "ind_tjcr_fin_ult1", "2015-03-28"),
    ]
    # What a customer holds in their first snapshot is a holding, never a purchase.
    holdings = bank.interactions[bank.interactions["interaction_type"] == "holding"]
    assert set(zip(holdings["customer_id"], holdings["product_id"], strict=True)) == {
        ("S1001", "ind_cco_fin_ult1"),
        ("S1002", "ind_cco_fin_ult1"),
        ("S1003", "ind_cco_fin_ult1"),
    }
    tokens = dict(zip(bank.customers["customer_id"], bank.customers["feature_tokens"], strict=True))
    assert "age_band=26-35" in tokens["S1001"]
    assert "segment=02 - PARTICULARES" in tokens["S1001"]
    assert list(bank.products["product_id"]) == ["ind_ahor_fin_ult1", "ind_cco_fin_ult1", "ind_tjcr_fin_ult1"]
    # It trains: held products count as seen and are never recommended again.
    data = training_data(bank, products=IdMap(bank.products["product_id"]), weights=InteractionWeights())
    model = PopularityRecommender().fit(data)
    recs = model.recommend(["S1001"], k=3)[0]
    assert [p for p, _ in recs] == []  # S1001 holds all three products


def test_uci_yes_is_a_term_deposit_conversion(tmp_path: Path) -> None:
    path = tmp_path / "bank-additional-full.csv"
    path.write_text(UCI, encoding="utf-8")
    bank = load_uci_bank(path)
    assert len(bank.customers) == 4
    counts = bank.interactions.groupby(["product_id", "interaction_type"]).size().to_dict()
    assert counts == {
        ("TERM-DEPOSIT", "impression"): 4,
        ("TERM-DEPOSIT", "purchase"): 1,
        ("HOUSING-LOAN", "holding"): 1,
        ("PERSONAL-LOAN", "holding"): 1,
    }
    bought = bank.interactions[bank.interactions["interaction_type"] == "purchase"]["customer_id"].tolist()
    assert bought == ["U00000002"]
    tokens = bank.customers.set_index("customer_id")["feature_tokens"]
    assert tokens["U00000000"].split(",") == [
        "age_band=56-65",
        "job=housemaid",
        "marital=married",
        "education=basic.4y",
        "default=no",
        "contact=telephone",
    ]
