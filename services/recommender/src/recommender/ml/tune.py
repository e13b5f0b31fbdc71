"""Hyper-parameter search for ALS with a fixed budget of trials, measured on the time split.

Trials are drawn deterministically (seeded) from a grid of factors, regularisation, iterations and
alpha; the first trial is always the current default. Every trial is appended to ``tune.jsonl`` as
it finishes and ``tune.md`` ranks them by NDCG@10, so a cut-short search still leaves its log.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from recommender.ml.data import Bank, InteractionWeights
from recommender.ml.evaluate import run_split
from recommender.ml.idmap import IdMap
from recommender.ml.models import ALSRecommender
from recommender.ml.split import time_split

GRID: dict[str, tuple[Any, ...]] = {
    "factors": (16, 32, 64),
    "regularization": (0.01, 0.05, 0.1, 0.5),
    "iterations": (10, 15, 25),
    "alpha": (1.0, 2.0, 5.0, 10.0, 20.0),
}
DEFAULT = {"factors": 32, "regularization": 0.1, "iterations": 15, "alpha": 5.0}


def trials(budget: int, seed: int) -> list[dict[str, Any]]:
    """``budget`` distinct parameter sets: the default first, then seeded random grid points."""
    rng = np.random.default_rng(seed)
    chosen = [dict(DEFAULT)]
    keys = set()
    keys.add(tuple(sorted(DEFAULT.items())))
    total = int(np.prod([len(v) for v in GRID.values()]))
    while len(chosen) < min(budget, total):
        candidate = {name: values[int(rng.integers(len(values)))] for name, values in GRID.items()}
        key = tuple(sorted(candidate.items()))
        if key not in keys:
            keys.add(key)
            chosen.append(candidate)
    return chosen[:budget]


def tune(
    bank: Bank,
    *,
    budget: int,
    out: Path,
    threads: int,
    seed: int,
    k: int = 10,
    weights: InteractionWeights | None = None,
) -> list[dict[str, Any]]:
    """Run the search; returns the trial records, best first."""
    weights = weights or InteractionWeights()
    from qianmian_bankgen.catalogue import CATALOGUE

    out.mkdir(parents=True, exist_ok=True)
    products = (
        IdMap(p.product_id for p in CATALOGUE)
        if bank.affinity is not None
        else IdMap(bank.products["product_id"])
    )
    split = time_split(bank.interactions)
    log_path = out / "tune.jsonl"
    records: list[dict[str, Any]] = []
    for i, params in enumerate(trials(budget, seed)):
        started = time.perf_counter()

        def factory(params: dict[str, Any] = params) -> ALSRecommender:
            return ALSRecommender(**params, random_state=seed, num_threads=threads)

        result = run_split(bank, split, products, {"als": factory}, weights, k, log=lambda _m: None)
        metrics = next(r for r in result.results if r.model == "als")
        record = {
            "trial": i,
            "model": "als",
            "params": params,
            f"ndcg@{k}": round(metrics.all.ndcg, 5),
            f"map@{k}": round(metrics.all.map, 5),
            f"recall@{k}": round(metrics.all.recall, 5),
            "seconds": round(time.perf_counter() - started, 2),
        }
        records.append(record)
        with log_path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        print(json.dumps(record))
    records.sort(key=lambda r: -float(r[f"ndcg@{k}"]))
    lines = [
        "# ALS hyper-parameter search",
        "",
        f"{len(records)} trials on the time split of {bank.name}; seed {seed}; best first.",
        "",
        f"| trial | factors | regularization | iterations | alpha | NDCG@{k} | MAP@{k} | recall@{k} | s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        p = r["params"]
        lines.append(
            f"| {r['trial']} | {p['factors']} | {p['regularization']} | {p['iterations']} | {p['alpha']} "
            f"| {r[f'ndcg@{k}']} | {r[f'map@{k}']} | {r[f'recall@{k}']} | {r['seconds']} |"
        )
    (out / "tune.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return records
