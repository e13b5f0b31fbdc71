"""The content bandit's own report: markdown and a PNG from an analysis with a ``bandit`` section.

Written by ``recommender experiments analysis EXP --report DIR`` for a Thompson-sampling experiment:
per variant its impressions (exposures), clicks, the Beta posterior of its click-through rate (mean and
95 % credible interval), the probability that it is the best variant and its current share of traffic
(the exploration floor included), with a chart of the intervals and the shares.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


def bandit_lines(analysis: Mapping[str, Any]) -> list[str]:
    """The report's markdown lines (empty when the analysis has no bandit section)."""
    bandit = analysis.get("bandit")
    if not bandit:
        return []
    variants = bandit["variants"]
    best = max(variants, key=lambda v: v["probability_best"]) if variants else None
    lines = [
        f"# Content bandit: {analysis['name']}",
        "",
        f"Experiment `{analysis['experiment_id']}` ({analysis['status']}), Thompson sampling on the "
        f"click-through rate with a Beta(1, 1) prior; every variant keeps at least {bandit['floor']:.0%} "
        f"of the traffic; P(best) from {bandit['draws']:,} posterior draws (seed {bandit['seed']}). "
        "A customer sees one variant a day (hash of salt, customer and day).",
        "",
        "| variant | impressions | clicks | CTR, posterior mean [95 % credible interval] | P(best) | share |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for v in variants:
        lines.append(
            f"| {v['variant']} | {v['impressions']:,} | {v['clicks']:,} | {100 * v['posterior_mean']:.2f} % "
            f"[{100 * v['ci_low']:.2f} %, {100 * v['ci_high']:.2f} %] | {v['probability_best']:.3f} | "
            f"{v['share']:.1%} |"
        )
    lines.append("")
    if best is not None:
        verdict = (
            f"**{best['variant']}** is the best variant with probability {best['probability_best']:.3f}"
            + (
                " (≥ 0.95: ready to roll out)."
                if best["probability_best"] >= 0.95
                else " (below 0.95: keep learning)."
            )
        )
        lines += [verdict, ""]
    return lines


def write_bandit_report(analysis: Mapping[str, Any], out_dir: Path) -> Path:
    """Write ``<experiment_id>-bandit.md`` and ``.png`` into ``out_dir``; returns the markdown path."""
    lines = bandit_lines(analysis)
    if not lines:
        raise ValueError(f"experiment {analysis['experiment_id']} has no bandit (allocation is not thompson)")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{analysis['experiment_id']}-bandit.md"
    chart = path.with_suffix(".png")
    _chart(chart, analysis["bandit"]["variants"])
    path.write_text(
        "\n".join([*lines, f"![CTR intervals and traffic shares]({chart.name})", ""]), encoding="utf-8"
    )
    return path


def _chart(path: Path, variants: list[Mapping[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [v["variant"] for v in variants]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    for i, v in enumerate(variants):
        mean = 100 * v["posterior_mean"]
        err = [[mean - 100 * v["ci_low"]], [100 * v["ci_high"] - mean]]
        left.errorbar(i, mean, yerr=err, fmt="o", capsize=6, color="tab:blue")
    left.set_xticks(range(len(names)), names)
    left.set_ylabel("CTR, % (95 % credible interval)")
    left.set_title("Posterior click-through rate")
    right.bar(range(len(names)), [100 * v["share"] for v in variants], color="tab:green", alpha=0.8)
    right.set_xticks(range(len(names)), names)
    right.set_ylabel("% of traffic")
    right.set_title("Current allocation")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
