"""Offline evaluation of the "next product added" task, and its report.

Protocol: the test month ``M`` is the panel's last month unless told otherwise. Everything is
trained on what was known at the cut-off snapshot ``M - 1``: the ranker on the label months before
``M`` (each example with features as of its own cut-off), the CF models and popularity baselines on
the holdings at ``M - 1`` and the additions of every month up to it. The test population is every
customer present at ``M - 1`` and ``M``; each model ranks the products the customer did not hold at
``M - 1``; the relevant products are those added during ``M``. MAP@7 as in the Santander
competition counts customers with no addition as 0; MAP@7 over adders, NDCG@7 and recall@7 are over
the customers who added something (lists of the others cannot change any of the numbers, so only
adders are scored). The oracle ranks by the simulator's true ``p_add`` of month ``M``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from recommender.ml.metrics import NextProductMetrics, next_product_metrics, top_k
from recommender.ml.ranker.cf import BASELINES, CF_MODELS, cutoff_data, fit_models
from recommender.ml.ranker.model import RankerConfig
from recommender.ml.ranker.panel import SnapshotPanel
from recommender.ml.ranker.training import (
    PanelFeatures,
    TrainedRanker,
    score_customers,
    train_ranker,
    training_months,
)

F32 = NDArray[np.float32]
Log = Callable[[str], None]
K: Final = 7
LABELS: Final = {
    "popularity": "global popularity of past additions",
    "segment_popularity": "popularity of past additions within segment",
    "als": "implicit ALS",
    "bpr": "implicit BPR",
    "lightfm": "LightFM WARP hybrid",
    "ranker": "LightGBM ranker (this issue)",
    "oracle": "oracle (true p_add)",
}


@dataclass(frozen=True)
class ModelRow:
    """One model's metrics on the test month and its training time."""

    model: str
    metrics: NextProductMetrics
    fit_seconds: float
    score_seconds: float


@dataclass
class NextProductEvaluation:
    """Everything the report shows."""

    panel: SnapshotPanel
    test_month: int
    rows: list[ModelRow]
    trained: TrainedRanker
    seconds: dict[str, float]
    facts: dict[str, Any] = field(default_factory=dict)

    def by_model(self) -> dict[str, ModelRow]:
        """Rows by model name."""
        return {r.model: r for r in self.rows}

    def metrics_json(self) -> dict[str, Any]:
        """Metrics for the registry manifest."""
        return {
            "task": "next product added",
            "test_month": str(self.panel.dates[self.test_month]),
            "k": K,
            "models": {r.model: r.metrics.as_dict() for r in self.rows},
        }


def evaluate_next_product(
    panel: SnapshotPanel,
    *,
    workdir: Path,
    threads: int,
    seed: int,
    config: RankerConfig | None = None,
    test_month: int | None = None,
    log: Log = print,
) -> NextProductEvaluation:
    """Train on the months before ``test_month`` (default: the last), measure on it."""
    config = config or RankerConfig()
    month = panel.months - 1 if test_month is None else test_month
    if month < 2:
        raise ValueError("the panel needs at least three snapshots (two months to learn from, one to test)")
    started = time.perf_counter()
    log(f"next product added: test month {panel.dates[month]} (cut-off {panel.dates[month - 1]})")
    features = PanelFeatures(panel, workdir, log=log)
    months = training_months(panel, month, config.train_months)
    trained = train_ranker(features, months=months, config=config, threads=threads, seed=seed, log=log)

    cutoff = month - 1
    fit_started = time.perf_counter()
    test_fit = fit_models(
        cutoff_data(panel, cutoff),
        (*BASELINES, *CF_MODELS),
        threads=threads,
        seed=seed,
        deterministic=config.deterministic_cf,
        log=log,
    )
    cf_fit_seconds = time.perf_counter() - fit_started
    eligible = panel.continuing(month)
    added = panel.added(month)
    rows = np.flatnonzero(eligible & added.any(axis=1)).astype(np.int64)
    relevant = added[rows]
    exclude = panel.held[cutoff][rows]
    population = int(eligible.sum())
    results: list[ModelRow] = []

    def measure(name: str, scores: F32, fit_seconds: float, score_started: float) -> None:
        lists = top_k(scores, K, exclude=exclude)
        metrics = next_product_metrics(lists, relevant, K, customers=population)
        row = ModelRow(name, metrics, fit_seconds, time.perf_counter() - score_started)
        results.append(row)
        log(
            f"  {name:>18}: MAP@{K} {metrics.map:.5f} (adders {metrics.map_adders:.4f}) "
            f"NDCG@{K} {metrics.ndcg:.4f} recall@{K} {metrics.recall:.4f}"
        )

    for name in (*BASELINES, *CF_MODELS):
        t0 = time.perf_counter()
        measure(name, test_fit.scores(name, panel, rows), test_fit.seconds[name], t0)
    t0 = time.perf_counter()
    ranker_scores = score_customers(features, trained.model, rows, month, test_fit, threads=threads)
    measure("ranker", ranker_scores, trained.seconds["total"], t0)
    oracle = panel.oracle.get(month)
    if oracle is not None:
        t0 = time.perf_counter()
        measure("oracle", np.nan_to_num(oracle[rows], nan=-np.inf), 0.0, t0)
    seconds = {
        "feature sources + Feast apply": features.seconds["sources + feast apply"],
        "Feast historical retrieval (train + test)": features.seconds["feast retrieval"],
        "ranker training (examples, CF per cut-off, LightGBM)": trained.seconds["total"],
        "baselines and CF at the test cut-off": cf_fit_seconds,
        "evaluation total": time.perf_counter() - started,
    }
    return NextProductEvaluation(
        panel=panel, test_month=month, rows=results, trained=trained, seconds=seconds
    )


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------


def done_when(evaluation: NextProductEvaluation) -> list[tuple[str, bool, str]]:
    """The issue's checks: ranker ≥ 1.25 × popularity of past additions, ≥ 1.5 × the best pure CF."""
    by = evaluation.by_model()
    if "ranker" not in by:
        return []
    ranker = by["ranker"].metrics.map
    checks: list[tuple[str, bool, str]] = []
    if "popularity" in by:
        base = by["popularity"].metrics.map
        ratio = ranker / base if base else float("inf")
        checks.append(
            (
                f"ranker MAP@{K} ≥ 1.25 × global popularity of past additions",
                ratio >= 1.25,
                f"{ranker:.5f} / {base:.5f} = {ratio:.2f}×",
            )
        )
    cf = [by[m] for m in CF_MODELS if m in by]
    if cf:
        best = max(cf, key=lambda r: r.metrics.map)
        ratio = ranker / best.metrics.map if best.metrics.map else float("inf")
        checks.append(
            (
                f"ranker MAP@{K} ≥ 1.5 × the best pure CF model",
                ratio >= 1.5,
                f"{ranker:.5f} / {LABELS[best.model]} {best.metrics.map:.5f} = {ratio:.2f}×",
            )
        )
    return checks


def write_report(
    out_dir: Path,
    evaluation: NextProductEvaluation,
    *,
    facts: Mapping[str, Any],
    name: str = "ranker",
    notes: Sequence[str] = (),
) -> Path:
    """Write ``<name>.md`` and ``<name>_importance.png`` into ``out_dir``; returns the markdown path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    chart = out_dir / f"{name}_importance.png"
    importance = evaluation.trained.model.importance("gain")
    _importance_chart(chart, importance)
    panel = evaluation.panel
    month = evaluation.test_month
    ex = evaluation.trained.examples
    lines = [
        "# Next product added: the learned ranker against CF, popularity and the oracle",
        "",
        "Generated by `make eval` (`recommender eval-ranker`); do not edit by hand.",
        "",
        "| | |",
        "|---|---|",
    ]
    lines += [f"| {key} | {value} |" for key, value in facts.items()]
    lines += [f"| {key} | {value} |" for key, value in panel.describe().items()]
    lines += [
        f"| test month | {panel.dates[month]} (cut-off snapshot {panel.dates[month - 1]}) |",
        f"| ranker training months | {', '.join(str(panel.dates[t]) for t in evaluation.trained.months)} |",
        f"| ranker examples | {ex.matrix.shape[0]:,} rows × {ex.matrix.shape[1]} features, "
        f"{ex.customer_months:,} customer-months ({ex.adders:,} with an addition, the others a "
        f"{evaluation.trained.config.negative_rate:.0%} sample weighted back), "
        f"{int(ex.labels.sum()):,} positive rows |",
    ]
    lines += [f"| seconds: {key} | {value:.1f} |" for key, value in evaluation.seconds.items()]
    lines += [
        "| seconds: ranker training, by step | "
        + ", ".join(f"{k} {v:.1f}" for k, v in evaluation.trained.seconds.items())
        + " |",
        "",
    ]
    checks = done_when(evaluation)
    if checks:
        lines += ["| done-when check | met | numbers |", "|---|---|---|"]
        lines += [f"| {s} | {'yes' if ok else '**no**'} | {n} |" for s, ok, n in checks]
        lines.append("")
    by = evaluation.by_model()
    first = evaluation.rows[0].metrics
    pop = by["popularity"].metrics.map if "popularity" in by else 0.0
    oracle = by["oracle"].metrics.map if "oracle" in by else 0.0
    lines += [
        f"Test month: {first.customers:,} customers present at the cut-off and in the test month, of "
        f"whom {first.adders:,} added at least one product.",
        "",
        f"| model | MAP@{K} (Santander: all customers, no addition = 0) | MAP@{K} adders | NDCG@{K} "
        f"| recall@{K} | × popularity |" + (" share of oracle |" if oracle else "") + " fit s |",
        "|---|---|---|---|---|---|" + ("---|" if oracle else "") + "---|",
    ]
    for r in evaluation.rows:
        m = r.metrics
        ratio = f"{m.map / pop:.2f}×" if pop else "–"
        share = f" {m.map / oracle:.0%} |" if oracle else ""
        label = LABELS.get(r.model, r.model)
        lines.append(
            f"| {label} | **{m.map:.5f}** | {m.map_adders:.4f} | {m.ndcg:.4f} | {m.recall:.4f} | {ratio} |"
            f"{share} {r.fit_seconds:.1f} |"
        )
    lines.append("")
    if "ranker" in by and oracle:
        gap = oracle - by["ranker"].metrics.map
        lines += [
            f"Gap to the oracle: the ranker reaches {by['ranker'].metrics.map / oracle:.0%} of the oracle's "
            f"MAP@{K} ({gap:.5f} below it). The oracle ranks by the simulator's true chance of each "
            "addition, the best any model can expect to do on average.",
            "",
        ]
    lines += [f"![feature importance (gain)]({chart.name})", "", "Top features by gain:", ""]
    total = sum(importance.values()) or 1.0
    lines += ["| feature | share of gain |", "|---|---|"]
    lines += [f"| `{n}` | {v / total:.1%} |" for n, v in list(importance.items())[:20]]
    lines.append("")
    if notes:
        lines += ["## Notes", "", *(f"- {n}" for n in notes), ""]
    path = out_dir / f"{name}.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _importance_chart(path: Path, importance: Mapping[str, float], top: int = 25) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = list(importance.items())[:top][::-1]
    total = sum(importance.values()) or 1.0
    fig, ax = plt.subplots(figsize=(8, 0.28 * len(items) + 1.2))
    ax.barh([n for n, _ in items], [v / total for _, v in items], color="tab:blue")
    ax.set_xlabel("share of total gain")
    ax.set_title(f"LightGBM ranker: top {len(items)} features by gain")
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
