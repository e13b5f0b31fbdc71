"""`recommender eval-ranker --santander FILE` end to end on a small file in the Kaggle layout."""
# ruff: noqa: E501 - the header is the verbatim first line of the Kaggle file

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from recommender.cli import main
from recommender.ml.ranker.panel import load_santander_panel

from ..conftest import DEV_TOKENS

HEADER = "fecha_dato,ncodpers,ind_empleado,pais_residencia,sexo,age,fecha_alta,ind_nuevo,antiguedad,indrel,ult_fec_cli_1t,indrel_1mes,tiprel_1mes,indresi,indext,conyuemp,canal_entrada,indfall,tipodom,cod_prov,nomprov,ind_actividad_cliente,renta,segmento,ind_ahor_fin_ult1,ind_aval_fin_ult1,ind_cco_fin_ult1,ind_cder_fin_ult1,ind_cno_fin_ult1,ind_ctju_fin_ult1,ind_ctma_fin_ult1,ind_ctop_fin_ult1,ind_ctpp_fin_ult1,ind_deco_fin_ult1,ind_deme_fin_ult1,ind_dela_fin_ult1,ind_ecue_fin_ult1,ind_fond_fin_ult1,ind_hip_fin_ult1,ind_plan_fin_ult1,ind_pres_fin_ult1,ind_reca_fin_ult1,ind_tjcr_fin_ult1,ind_valo_fin_ult1,ind_viv_fin_ult1,ind_nomina_ult1,ind_nom_pens_ult1,ind_recibo_ult1"
FLAGS = HEADER.split(",")[24:]
DATES = ["2015-01-28", "2015-02-28", "2015-03-28", "2015-04-28", "2015-05-28", "2015-06-28", "2015-07-28"]
SEGMENTS = ["01 - TOP", "02 - PARTICULARES", "03 - UNIVERSITARIO"]
PROVINCES = ["29,MALAGA", "28,MADRID", '15,"CORUÑA, A"', ",", "8,BARCELONA"]


def write_kaggle_layout(path: Path, customers: int = 700, seed: int = 3) -> None:
    """A small panel in train_ver2.csv's layout and quirks (padded numbers, NA, quoted commas, a
    flag column with gaps, customers joining late), with a planted ladder: a current account
    (cco) leads to a card (tjcr), payroll (nomina) to a pension payroll (nom_pens) and direct debits."""
    rng = np.random.default_rng(seed)
    col = {f: k for k, f in enumerate(FLAGS)}
    held = np.zeros((customers, len(FLAGS)), dtype=bool)
    held[:, col["ind_cco_fin_ult1"]] = rng.random(customers) < 0.7
    held[:, col["ind_nomina_ult1"]] = rng.random(customers) < 0.3
    held[:, col["ind_recibo_ult1"]] = rng.random(customers) < 0.2
    age = rng.integers(18, 80, customers)
    segment = rng.integers(0, 3, customers)
    joined = np.where(rng.random(customers) < 0.1, rng.integers(1, 4, customers), 0)
    lines = [HEADER]
    for t, day in enumerate(DATES):
        if t:
            p = np.full(held.shape, 0.002)
            p[:, col["ind_tjcr_fin_ult1"]] += 0.25 * held[:, col["ind_cco_fin_ult1"]]
            p[:, col["ind_nom_pens_ult1"]] += 0.3 * held[:, col["ind_nomina_ult1"]]
            p[:, col["ind_recibo_ult1"]] += 0.15 * held[:, col["ind_nomina_ult1"]]
            p[:, col["ind_ecue_fin_ult1"]] += 0.08 * (segment == 2)
            held |= rng.random(held.shape) < p
            held &= rng.random(held.shape) > 0.01
        for i in range(customers):
            if joined[i] > t:
                continue
            renta = "         NA" if i % 7 == 0 else f"{50_000 + 300 * i:.2f}"
            seniority = "     NA" if i % 11 == 0 else f"{6 + t + i % 90:>7}"
            flags = [str(int(v)) for v in held[i]]
            if i % 13 == 0:
                flags[col["ind_nomina_ult1"]] = "NA"
                flags[col["ind_nom_pens_ult1"]] = "NA"
            lines.append(
                f"{day},{10_000 + i},N,ES,{'HV'[i % 2]},{age[i]:>3},2012-08-10,{int(t < 2):>2},{seniority},"
                f"{1:>2},,1.0,{'AI'[i % 2]},S,N,,KHL,N,{1:>2},{PROVINCES[i % len(PROVINCES)]},"
                f"{int(i % 3 != 0)},{renta},{SEGMENTS[segment[i]]}," + ",".join(flags)
            )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_the_loader_reads_the_kaggle_layout(tmp_path: Path) -> None:
    path = tmp_path / "train_ver2.csv"
    write_kaggle_layout(path, customers=60)
    panel = load_santander_panel(path)
    assert list(panel.products.ids) == FLAGS
    assert panel.months == len(DATES)
    assert panel.customers.ids[0] == "S10000"
    profile = panel.profile
    assert profile["renta"].isna().any()
    assert profile["antiguedad"].isna().any()
    assert set(profile["segmento"].dropna()) <= set(SEGMENTS)
    # the quoted comma of "CORUÑA, A" stayed inside nomprov: cod_prov is still parsed
    assert {15.0, 28.0, 29.0} <= set(profile["cod_prov"].dropna())
    assert profile["cod_prov"].isna().any()
    assert panel.profile["age"].between(18, 80).all()


def test_eval_ranker_runs_end_to_end_on_a_santander_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "train_ver2.csv"
    write_kaggle_layout(path)
    registry = tmp_path / "models"
    monkeypatch.setenv("RECOMMENDER_REGISTRY_DIR", str(registry))
    monkeypatch.setenv("RECOMMENDER_AUTH_TOKENS_FILE", str(DEV_TOKENS))
    monkeypatch.setenv("RECOMMENDER_TRAIN_THREADS", "2")
    out = tmp_path / "reports"

    code = main(
        ["eval-ranker", "--santander", str(path), "--out", str(out), "--train-months", "3", "--register"]
    )

    assert code == 0
    report = (out / "santander" / "ranker.md").read_text(encoding="utf-8")
    assert (out / "santander" / "ranker_importance.png").stat().st_size > 1_000
    for label in (
        "global popularity",
        "popularity of past additions within",
        "implicit ALS",
        "implicit BPR",
        "LightFM",
        "LightGBM",
    ):
        assert f"| {label}" in report
    assert "oracle" not in report.split("Test month:")[1].split("Gap")[0]  # a real file has no oracle
    assert "2015-07-28" in report
    assert "Santander-layout snapshots train_ver2.csv" in report
    manifests = [json.loads(p.read_text(encoding="utf-8")) for p in registry.glob("*/manifest.json")]
    assert [m["model_type"] for m in manifests] == ["lightgbm_ranker"]
    assert manifests[0]["catalogue"]["product_ids"] == FLAGS
    assert manifests[0]["metrics"]["models"]["ranker"]["map"] > 0
    # The planted ladder is learnable: the ranker beats global popularity on this file.
    models = manifests[0]["metrics"]["models"]
    assert models["ranker"]["map"] > models["popularity"]["map"]
