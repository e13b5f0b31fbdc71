"""``recommender eval-ranker`` and ``recommender train-ranker`` (wired in ``recommender.cli``).

Plain arguments in, exit code out; the CLI passes the settings' thread count and registry.
"""

from __future__ import annotations

import argparse
import logging
import platform
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import date
from pathlib import Path
from typing import Any

from recommender.ml.ranker.cf import HOGWILD, PANEL_WEIGHTS, SCORE_FEATURES, cutoff_data, fit_models
from recommender.ml.ranker.evaluation import K, done_when, evaluate_next_product, write_report
from recommender.ml.ranker.features import materialize_snapshot
from recommender.ml.ranker.model import RankerConfig
from recommender.ml.ranker.panel import (
    SnapshotPanel,
    load_panel_dir,
    load_santander_panel,
    panel_from_bank,
    simulate,
)
from recommender.ml.ranker.serving import register_companions
from recommender.ml.ranker.training import PanelFeatures, train_ranker, training_months
from recommender.ml.registry import ModelRegistry

Log = Callable[[str], None]


def _quiet_feast() -> None:
    # Feast logs "Registry cache expired, so refreshing" at INFO on every retrieval of a run.
    logging.getLogger("feast").setLevel(logging.WARNING)


def _panel(args: argparse.Namespace, log: Log) -> tuple[SnapshotPanel, dict[str, Any]]:
    _quiet_feast()
    started = time.perf_counter()
    if args.santander is not None:
        panel = load_santander_panel(args.santander, max_customers=args.max_customers, seed=args.seed)
        facts: dict[str, Any] = {"data": panel.name, "seed (sampling, models)": args.seed}
    elif args.panel is not None:
        panel = load_panel_dir(args.panel)
        facts = {"data": panel.name, "seed (sampling, models)": args.seed}
    elif args.bank is not None:
        panel = panel_from_bank(args.bank, args.months, until=args.until)
        facts = {"data": panel.name, "seed (sampling, models)": args.seed}
    else:
        log(f"simulating {args.customers:,} customers × {args.months} months (seed {args.seed})")
        until = args.until
        panel = simulate(
            args.customers,
            args.months,
            args.seed,
            start=None if until is None else first_snapshot(until, args.months),
        )
        facts = {
            "data": f"synthetic adoption dynamics (qianmian_bankgen.dynamics), {args.customers:,} initial "
            f"customers × {args.months} monthly snapshots",
            "seeds": f"generator {args.seed}, sampling {args.seed}, models {args.seed}",
        }
    facts["load/simulate seconds"] = f"{time.perf_counter() - started:.1f}"
    return panel, facts


def first_snapshot(until: date, months: int) -> date:
    """The first of ``months`` monthly snapshots (the 28th) whose last is the last 28th on or before
    ``until``."""
    from qianmian_bankgen.dynamics import SNAPSHOT_DAY

    last = until.year * 12 + until.month - 1 - (1 if until.day < SNAPSHOT_DAY else 0)
    first = last - (months - 1)
    return date(first // 12, first % 12 + 1, SNAPSHOT_DAY)


def _config(args: argparse.Namespace) -> RankerConfig:
    return RankerConfig(train_months=args.train_months)


def _workdir(args: argparse.Namespace, stack: ExitStack) -> Path:
    if args.workdir is not None:
        return Path(args.workdir)
    return Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ranker-")))


def _cf_description(threads: int, deterministic: bool) -> dict[str, Any]:
    return {
        "models": list(SCORE_FEATURES),
        "hyper_parameters": "recommender.ml.evaluate.default_models",
        "training data": "holdings at the cut-off and additions up to it",
        "weights": PANEL_WEIGHTS.to_json(),
        "threads": {m: (1 if deterministic and m in HOGWILD else threads) for m in SCORE_FEATURES},
    }


def eval_ranker(args: argparse.Namespace, *, threads: int, registry_dir: str, log: Log = print) -> int:
    """Evaluate, write the report, optionally register the evaluated model."""
    started = time.perf_counter()
    panel, facts = _panel(args, log)
    config = _config(args)
    with ExitStack() as stack:
        evaluation = evaluate_next_product(
            panel, workdir=_workdir(args, stack), threads=threads, seed=args.seed, config=config, log=log
        )
    facts |= {
        "training threads": f"{threads} (LightGBM, ALS; BPR and LightFM on 1 for reproducibility)"
        if config.deterministic_cf
        else str(threads),
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
        "total seconds": f"{time.perf_counter() - started:.1f}",
    }
    out = args.out / "santander" if args.santander is not None else args.out
    path = write_report(out, evaluation, facts=facts, notes=notes(evaluation.trained.config))
    log(f"recommender: wrote {path} and {path.with_name(path.stem + '_importance.png')}")
    if args.register:
        manifest = evaluation.trained.model.register(
            ModelRegistry(registry_dir),
            config=config,
            data_window=_window(panel, evaluation.trained.months, args),
            metrics=evaluation.metrics_json(),
            cf_models=_cf_description(threads, config.deterministic_cf),
            status="approved" if args.approve else "candidate",
        )
        log(f"recommender: registered {manifest.version} ({manifest.status})")
    for statement, met, numbers in done_when(evaluation):
        log(f"  {'met' if met else 'NOT met'}: {statement} ({numbers})")
    return 0


def _window(panel: SnapshotPanel, months: list[int], args: argparse.Namespace) -> dict[str, Any]:
    return {
        "source": panel.name,
        "label_months": [str(panel.dates[t]) for t in months],
        "feature_cutoffs": [str(panel.dates[t - 1]) for t in months],
        "customers": len(panel.customers),
        "seed": args.seed,
    }


def train_ranker_command(
    args: argparse.Namespace, *, threads: int, registry_dir: str, log: Log = print
) -> int:
    """Train on the newest ``--train-months`` label months (up to the last snapshot) and register it,
    with its companion CF models fitted at the last snapshot (what serving scores the next month
    with). With ``--workdir`` the feature store stays there, its online store loaded with the last
    snapshot: point the recommender's ``RECOMMENDER_RANKER_STORE`` at ``<workdir>/repo``."""
    panel, _ = _panel(args, log)
    config = _config(args)
    months = training_months(panel, panel.months, config.train_months)
    registry = ModelRegistry(registry_dir)
    last = panel.months - 1
    with ExitStack() as stack:
        workdir = _workdir(args, stack)
        features = PanelFeatures(panel, workdir, log=log)
        trained = train_ranker(
            features, months=months, config=config, threads=threads, seed=args.seed, log=log
        )
        started = time.perf_counter()
        names = list(trained.model.layout.cf_models)
        serving_fit = fit_models(
            cutoff_data(panel, last),
            names,
            threads=threads,
            seed=args.seed,
            deterministic=config.deterministic_cf,
            log=log,
        )
        companions = register_companions(
            registry,
            serving_fit,
            names,
            data_window={"source": panel.name, "cutoff": str(panel.dates[last]), "role": "ranker companion"},
        )
        companion_seconds = time.perf_counter() - started
        if args.workdir is not None:
            started = time.perf_counter()
            materialize_snapshot(features.store, panel.timestamp(last).to_pydatetime())
            log(
                f"  online store {workdir / 'repo'} loaded with snapshot {panel.dates[last]} "
                f"({time.perf_counter() - started:.1f}s)"
            )
    ex = trained.examples
    manifest = trained.model.register(
        registry,
        config=config,
        data_window={**_window(panel, months, args), "serving_snapshot": str(panel.dates[last])},
        metrics={
            "training rows": int(ex.matrix.shape[0]),
            "positive rows": int(ex.labels.sum()),
            "customer_months": ex.customer_months,
            "seconds": {
                **{k: round(v, 1) for k, v in trained.seconds.items()},
                "companions": round(companion_seconds, 1),
            },
        },
        cf_models=_cf_description(threads, config.deterministic_cf),
        companions=companions,
        status="approved" if args.approve else "candidate",
    )
    log(f"recommender: registered {manifest.version} ({manifest.status}) in {trained.seconds['total']:.1f}s")
    print(manifest.version)
    return 0


def notes(config: RankerConfig) -> list[str]:
    """The report's fixed notes: protocol and method (the numbers are in the tables above)."""
    return [
        "Protocol: everything is trained on what was known at the cut-off snapshot that opens the test "
        "month. Test population = customers present at the cut-off and in the test month; each model "
        "ranks the products the customer did not hold at the cut-off; relevant = products added during "
        f"the month. MAP@{K} as in the Santander competition: mean over every test customer of AP@{K} "
        f"(denominator min(additions, {K})), a customer with no addition scoring 0; the adders-only "
        f"MAP@{K}, NDCG@{K} and recall@{K} are over customers with an addition.",
        "Training examples (customer, month, candidate not held at the month's cut-off, label = added "
        "during the month) of the last "
        f"{config.train_months} label months before the test month: every customer-month with an "
        f"addition and a seeded {config.negative_rate:.0%} of the others, then a seeded "
        f"{config.negative_row_rate:.0%} of the negative rows; sampled rows are weighted by the inverse "
        "share so the binary model's probabilities stay calibrated.",
        "Features are read with Feast's get_historical_features from a file offline store whose parquet "
        "sources are computed from the panel, with event_timestamp = each month's cut-off snapshot "
        "(views ranker_profile, ranker_holdings, ranker_state, ranker_moments, ranker_product; feature "
        "service ranker_v1): demographics, holdings 1..5 snapshots back, additions and closures in the "
        "last 1 and 3 months, lifecycle, AUM band, risk level, segments, moment counts and recency, "
        "product addition rates and attributes, and the month of year predicted.",
        "Score features: ALS, BPR and LightFM (the issue-5 hyper-parameters) and popularity within "
        "segment, fitted on the holdings at a "
        "cut-off (confidence as a purchase) plus every addition up to it; refitted every "
        f"{config.cf_every} months of the training window, each month using the newest fit at or before "
        "its own cut-off, and once at the test cut-off; score and rank among the customer's candidates. "
        "The same fits at the test cut-off are the CF rows of the table.",
        "Why binary and not lambdarank: the ranker's output is the propensity that arbitration "
        "multiplies by value and moment weight and that outbound lists compare across customers, so it "
        "must be a probability; lambdarank scores are ordered only within one customer-month. "
        f"LightGBM: {config.num_boost_round} rounds, learning rate {config.learning_rate}, "
        f"{config.num_leaves} leaves, at least {config.min_data_in_leaf} rows a leaf, L2 "
        f"{config.lambda_l2:g}, feature fraction {config.feature_fraction}, deterministic. These "
        "values were picked among a handful of variants (rounds, learning rate, leaves, regularisation, "
        "sampling, portfolio columns) measured on the seed-7 synthetic test month, i.e. on the data "
        "of this report; a second seed checks that the choice carries over (see RankerConfig).",
        "The Feast repo of these views is built next to their sources for each run, not in "
        "feature_repo/: its sources come from the panel evaluated (synthetic or a Santander file), not "
        "from the bank's feature files the shared repo materialises (feature_repo/README.md).",
        "Popularity baselines count the additions of every month up to the cut-off (global, and within "
        "the customer's segments: the bank's segment flags on the synthetic panel, segmento on a "
        "Santander file).",
    ]
