"""``recommender``: eval, train, approve, models, tune, migrate, downgrade, serve, replay, experiments,
eval-ranker, train-ranker.

Training and evaluation are batch jobs (a Kubernetes Job runs ``recommender train``); ``serve``
runs the API that holds the newest approved model.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from recommender.ml.threads import pin_blas_threads

if TYPE_CHECKING:
    from recommender.ml.data import InteractionWeights

pin_blas_threads()


def _bank_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--customers", type=int, default=100_000, help="synthetic bank size (default 100000)")
    parser.add_argument("--seed", type=int, default=7, help="generator and model seed (default 7)")
    parser.add_argument("--data", type=Path, default=None, help="an existing generated bank directory")
    parser.add_argument(
        "--holdings",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="train on holdings.parquet too, as holding rows at opened_at (synthetic bank; default on)",
    )
    parser.add_argument(
        "--holding-weight",
        type=float,
        default=None,
        help="confidence of a held product without a purchase row (default: InteractionWeights.holding = "
        "0, seen items only; 30 = as a purchase)",
    )


def _weights(args: argparse.Namespace) -> InteractionWeights:
    from recommender.ml.data import InteractionWeights

    if args.holding_weight is None:
        return InteractionWeights()
    return InteractionWeights(holding=args.holding_weight)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``recommender`` console script."""
    parser = argparse.ArgumentParser(prog="recommender", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    ev = commands.add_parser("eval", help="train every model and write the offline evaluation report")
    _bank_args(ev)
    ev.add_argument("--out", type=Path, default=Path("reports"), help="report folder (default reports/)")
    ev.add_argument("--k", type=int, default=10)
    ev.add_argument("--test-days", type=int, default=30)
    ev.add_argument("--splits", default="time,leave_last_out", help="comma list: time, leave_last_out")
    ev.add_argument(
        "--santander", type=Path, default=None, help="Santander-style snapshots CSV: evaluate on it"
    )
    ev.add_argument("--uci", type=Path, default=None, help="UCI bank-additional-full.csv: evaluate on it")
    ev.add_argument(
        "--variants",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run the time split on the interaction log alone and with baselines counting holdings",
    )

    tr = commands.add_parser("train", help="train one model on all interactions and register it")
    _bank_args(tr)
    tr.add_argument(
        "--model", default="als", choices=["als", "bpr", "lightfm", "popularity", "segment_popularity"]
    )
    tr.add_argument("--approve", action="store_true", help="register as approved (default: candidate)")
    tr.add_argument("--skip-eval", action="store_true", help="do not compute time-split metrics first")

    ap = commands.add_parser("approve", help="mark a registered model version approved for serving")
    ap.add_argument("version")
    commands.add_parser("models", help="list the registry's versions")

    tu = commands.add_parser("tune", help="hyper-parameter search for ALS with a fixed budget of trials")
    _bank_args(tu)
    tu.add_argument("--budget", type=int, default=12, help="number of trials (default 12)")
    tu.add_argument("--out", type=Path, default=Path("var/tune"), help="folder for tune.jsonl and tune.md")

    commands.add_parser("migrate", help="apply the database migrations (audit log, contacts) up to head")
    down = commands.add_parser("downgrade", help="revert the database migrations")
    down.add_argument("--revision", default="base", help="target revision (default: base, an empty schema)")
    commands.add_parser("serve", help="serve the API on the configured host and port (8000)")
    rp = commands.add_parser(
        "replay", help="re-run recorded decisions with their recorded inputs and model; report differences"
    )
    rp.add_argument("decision_ids", nargs="*", help="decision ids (default: the newest --last decisions)")
    rp.add_argument("--last", type=int, default=1000, help="how many of the newest decisions (default 1000)")
    rp.add_argument("--show", type=int, default=5, help="differing decisions to print in full (default 5)")
    _experiment_args(commands)
    from recommender.ml.ranker.arguments import add_arguments as _ranker_args

    _ranker_args(commands)
    args = parser.parse_args(argv)

    from qianmian_core.logging import configure_logging
    from qianmian_core.settings import load_settings

    from recommender.settings import RecommenderSettings

    settings = load_settings(RecommenderSettings)
    configure_logging(settings.service_name, settings.log_level)

    if args.command == "eval":
        return _eval(args, settings)
    if args.command == "train":
        return _train(args, settings)
    if args.command == "approve":
        from recommender.ml.registry import ModelRegistry, RegistryError

        try:
            manifest = ModelRegistry(settings.registry_dir).approve(args.version)
        except RegistryError as exc:
            print(f"recommender: {exc}", file=sys.stderr)
            return 1
        print(f"recommender: {manifest.version} approved")
        return 0
    if args.command == "models":
        from recommender.ml.registry import ModelRegistry

        for m in ModelRegistry(settings.registry_dir).versions():
            print(json.dumps(m.summary(), ensure_ascii=False))
        return 0
    if args.command == "tune":
        from recommender.ml.data import Bank
        from recommender.ml.tune import tune

        bank = _synthetic_bank(args, settings)
        assert isinstance(bank, Bank)
        tune(
            bank,
            budget=args.budget,
            out=args.out,
            threads=settings.train_threads,
            seed=args.seed,
            weights=_weights(args),
        )
        return 0
    if args.command in {"migrate", "downgrade"}:
        from recommender.database import downgrade, migrate

        if args.command == "migrate":
            migrate(settings.database_url)
            print(f"recommender: migrated {settings.database_url.split('@')[-1]} to head")
        else:
            downgrade(settings.database_url, args.revision)
            print(f"recommender: downgraded to {args.revision}")
        return 0
    if args.command == "replay":
        return _replay(args, settings)
    if args.command == "experiments":
        return _experiments(args, settings)
    if args.command in {"eval-ranker", "train-ranker"}:
        from recommender.ml.ranker import commands as ranker

        run = ranker.eval_ranker if args.command == "eval-ranker" else ranker.train_ranker_command
        return run(args, threads=settings.train_threads, registry_dir=settings.registry_dir)
    if args.command == "serve":
        import uvicorn

        from recommender.main import create_app

        uvicorn.run(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            workers=1,
            log_config=None,
            access_log=False,  # request metrics and structured logs cover it; the line costs throughput
        )
    return 0


def _replay(args: argparse.Namespace, settings: object) -> int:
    """Exit 0 when every replayed decision is reproduced exactly, 1 otherwise."""
    import time

    from recommender.database import open_database
    from recommender.ml.registry import ModelRegistry
    from recommender.service.replay import ReplayService
    from recommender.settings import RecommenderSettings

    assert isinstance(settings, RecommenderSettings)
    if args.last < 1:
        print("recommender: --last must be at least 1", file=sys.stderr)
        return 2
    database = open_database(settings.database_url)
    try:
        service = ReplayService(database, ModelRegistry(settings.registry_dir))
        started = time.perf_counter()
        records = service.records(args.decision_ids, last=None if args.decision_ids else args.last)
        missing = sorted(set(args.decision_ids) - {r.decision_id for r in records})
        summary = service.replay_many(records)
        elapsed = time.perf_counter() - started
    finally:
        database.dispose()
    for decision_id in missing:
        print(f"recommender: decision {decision_id} not found", file=sys.stderr)
    for result in summary.differing[: args.show]:
        print(f"{result.decision_id}:")
        for line in result.differences:
            print(f"  - {line}")
    print(
        f"recommender: replayed {summary.replayed} decisions in {elapsed:.1f} s: "
        f"{summary.identical} identical, {len(summary.differing)} differing"
    )
    return 0 if not summary.differing and not missing else 1


def _experiment_args(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ex = commands.add_parser("experiments", help="A/B experiments: create, list, show, status, analysis")
    sub = ex.add_subparsers(dest="experiments_command", required=True)
    create = sub.add_parser("create", help="create a draft experiment from a JSON definition")
    create.add_argument("--file", type=Path, required=True, help="the definition (as POST /v1/experiments)")
    create.add_argument("--by", required=True, help="the author (a principal, e.g. console-alice)")
    listing = sub.add_parser("list", help="list experiments, newest first")
    listing.add_argument(
        "--status", choices=["draft", "pending_approval", "approved", "running", "stopped"], default=None
    )
    show = sub.add_parser("show", help="one experiment with its arms and history")
    show.add_argument("experiment_id")
    status = sub.add_parser("status", help="submit, approve (not by the author), start or stop")
    status.add_argument("experiment_id")
    status.add_argument("action", choices=["submit", "approve", "start", "stop"])
    status.add_argument("--by", required=True, help="who does it (a principal, e.g. console-bob)")
    status.add_argument("--note", default=None, help="why (kept in the history)")
    analysis = sub.add_parser("analysis", help="the fixed-horizon analysis of an experiment")
    analysis.add_argument("experiment_id")
    analysis.add_argument("--summary", action="store_true", help="a few lines of text instead of JSON")
    analysis.add_argument(
        "--report",
        type=Path,
        default=None,
        metavar="DIR",
        help="Thompson-sampling experiments: also write the bandit report (<id>-bandit.md and .png) there",
    )


def _experiments(args: argparse.Namespace, settings: object) -> int:
    """Exit 0 on success, 1 when the service refuses (its error code is printed), 2 for a bad file."""
    from datetime import timedelta

    import orjson
    from pydantic import ValidationError
    from qianmian_core.errors import AppError
    from qianmian_core.responses import dumps

    from recommender.database import open_database
    from recommender.experiments.definition import ExperimentDefinition
    from recommender.service.experiments import ExperimentService, analysis_summary
    from recommender.settings import RecommenderSettings

    assert isinstance(settings, RecommenderSettings)
    definition = None
    if args.experiments_command == "create":
        try:
            definition = ExperimentDefinition.model_validate_json(args.file.read_bytes())
        except (OSError, ValidationError) as exc:
            print(f"recommender: {args.file}: {exc}", file=sys.stderr)
            return 2
    database = open_database(settings.database_url)
    service = ExperimentService(
        database,
        holdout=settings.experiment_holdout(),
        attribution_window=timedelta(days=settings.experiments_attribution_days),
    )
    try:
        result: object
        if definition is not None:
            result = service.create(definition, author=args.by)
        elif args.experiments_command == "list":
            result = service.list_experiments(args.status)
        elif args.experiments_command == "show":
            result = service.get(args.experiment_id)
        elif args.experiments_command == "status":
            result = service.transition(args.experiment_id, args.action, actor=args.by, note=args.note)
        else:
            result = service.analysis(args.experiment_id)
            assert isinstance(result, dict)
            if args.report is not None:
                from recommender.experiments.bandit_report import write_bandit_report

                try:
                    print(f"wrote {write_bandit_report(result, args.report)}", file=sys.stderr)
                except ValueError as exc:
                    print(f"recommender: {exc}", file=sys.stderr)
                    return 2
            if args.summary:
                print(analysis_summary(result))
                return 0
    except AppError as exc:
        print(f"recommender: {exc.error_code}: {exc.message}", file=sys.stderr)
        return 1
    finally:
        database.dispose()
    print(json.dumps(orjson.loads(dumps(result)), ensure_ascii=False, indent=2))
    return 0


def _synthetic_bank(args: argparse.Namespace, settings: object) -> object:
    from recommender.ml.data import load_bank
    from recommender.ml.evaluate import AS_OF
    from recommender.settings import RecommenderSettings

    assert isinstance(settings, RecommenderSettings)
    path = args.data or settings.eval_dir / f"bank-{args.customers}-{args.seed}"
    if not (path / "manifest.json").is_file():
        from qianmian_bankgen.generator import generate

        print(f"generating a synthetic bank of {args.customers:,} customers (seed {args.seed}) into {path}")
        generate(args.customers, args.seed, AS_OF, path)
    return load_bank(path, holdings=args.holdings)


def _catalogue_ids() -> list[str]:
    from qianmian_bankgen.catalogue import CATALOGUE

    return [p.product_id for p in CATALOGUE]


def _eval(args: argparse.Namespace, settings: object) -> int:
    from recommender.ml.data import Bank
    from recommender.ml.evaluate import Variant, evaluate, holdings_variants
    from recommender.ml.idmap import IdMap
    from recommender.ml.report import write_report
    from recommender.settings import RecommenderSettings

    assert isinstance(settings, RecommenderSettings)
    started = time.perf_counter()
    splits = [s.strip() for s in args.splits.split(",") if s.strip()]
    if args.santander or args.uci:
        from recommender.ml.loaders import load_santander, load_uci_bank

        bank = load_santander(args.santander) if args.santander else load_uci_bank(args.uci)
        products = IdMap(bank.products["product_id"].tolist())
        facts: dict[str, object] = {"data": bank.name, "seed (models)": args.seed}
        out = args.out / ("santander" if args.santander else "uci")
    else:
        t0 = time.perf_counter()
        loaded = _synthetic_bank(args, settings)
        assert isinstance(loaded, Bank)
        bank = loaded
        products = IdMap(_catalogue_ids())
        facts = {
            "data": f"synthetic bank, {args.customers:,} customers, generator seed {args.seed}, "
            f"as-of {bank.meta.get('as_of')}",
            "seeds": f"generator {args.seed}, models {args.seed}",
            "load/generate seconds": f"{time.perf_counter() - t0:.1f}",
        }
        out = args.out
    facts |= {
        "customers": f"{bank.customers.shape[0]:,}",
        "products": f"{len(products)}",
        "interactions": f"{len(bank.interactions):,} ("
        + ", ".join(f"{k} {v:,}" for k, v in bank.interactions["interaction_type"].value_counts().items())
        + ")",
        "training threads": str(settings.train_threads),
    }
    weights = _weights(args)
    holdings = int((bank.interactions["interaction_type"] == "holding").sum())
    facts["training data"] = (
        f"interaction log + {holdings:,} holdings (holding weight {weights.holding:g}"
        + (", seen items only)" if weights.holding == 0 else ")")
        if holdings
        else "interaction log only (no holdings)"
    )
    results = evaluate(
        bank,
        products,
        threads=settings.train_threads,
        seed=args.seed,
        k=args.k,
        test_days=args.test_days,
        weights=weights,
        splits=splits,
    )
    variants: list[Variant] = []
    if args.variants and holdings and "time" in splits:
        variants = holdings_variants(
            bank,
            products,
            threads=settings.train_threads,
            seed=args.seed,
            k=args.k,
            test_days=args.test_days,
            weights=weights,
        )
    facts["total seconds"] = f"{time.perf_counter() - started:.1f}"
    path = write_report(out, results, k=args.k, facts=facts, notes=_notes(weights), variants=variants)
    print(f"recommender: wrote {path} and {path.with_suffix('.png')} in {time.perf_counter() - started:.1f}s")
    return 0


def _notes(weights: InteractionWeights) -> list[str]:
    """The report's fixed notes (protocol and method); the measured conclusions are computed from the
    results by :func:`recommender.ml.report.conclusions`."""
    return [
        f"Confidence: impression {weights.impression:g}, click {weights.click:g}, purchase "
        f"{weights.purchase:g}, holding {weights.holding:g} (`InteractionWeights`); ALS uses confidence "
        "1 + alpha × weight, BPR treats pairs of weight ≥ 3 (clicks, purchases, weighted holdings) as "
        "positives, "
        "LightFM uses the weight (capped at 30) as WARP sample weight.",
        "Holdings: each position in holdings.parquet is a `holding` row at its opened_at, so the time "
        "split's cut-off applies to it like to any interaction (positions opened at or after the cut-off "
        "never reach training; positions the log's own purchases opened are not repeated). A pair with a "
        "purchase counts once. Customers with holdings are warm. A position closed before as-of is not in "
        "the file, so training sees only positions that survived to as-of (a mild look-ahead the "
        "generator does not produce: it closes nothing).",
        "Every model, baselines included, is fitted on the same training data. Products a customer bought "
        "or holds before the cut-off are removed from their list; relevance = purchases in the test data "
        "(so a top-up of a held product is relevant but unreachable, for every model alike). Every model "
        "ranks the whole catalogue (no eligibility filter), so the numbers measure the models, not the "
        "policy layer.",
        "Popularity baselines count purchases (the flow the test measures); holdings serve them as seen "
        "items and make customers warm. Popularity within segment: purchase rate of each product among "
        "members of each segment (payroll, mortgage, credit card, wealth, social security, long tail); "
        "segments overlap, so a customer's score is the mean over their segments.",
        "Cold-start customers have no interaction or holding before the cut-off; LightFM scores them from "
        "their features, ALS/BPR fall back to global (purchase) popularity, the oracle knows everyone.",
        "Novelty = mean -log2 of the share of training customers who interacted with a recommended "
        "product; popularity bias = mean of that share.",
        "Leave-last-out removes the held-out (customer, product) pair from training entirely (holding "
        "included). In this data every purchase is preceded minutes earlier by an impression and a click "
        "of the same product, so keeping the customer's earlier rows of that product gives the answer "
        "away; removing the pair has the opposite bias (the held-out product is the one whose "
        "impressions are deleted, which hurts ALS and BPR most). The time split has neither problem and "
        "is the one the done-when checks use.",
        "Why holdings are seen items only by default (`--holding-weight 30` makes them positives as "
        "strong as a purchase; the table above measures both): the generator draws prior holdings from "
        "segment, lifecycle and suitability base rates, not from the customer's planted latent taste, so "
        "as positives they teach CF the stock of what segments hold rather than what the customer buys "
        "next; the measured effect is negative for LightFM and ALS. Earlier prototype runs (interaction "
        "log only) found the interaction "
        "weights 0.5/3/30 best among 0/0/1, 0/2/20, 1/4/20 for ALS, and LightFM within ±0.003 NDCG@10 for "
        "20 epochs, 64 components or no identity features.",
    ]


def _train(args: argparse.Namespace, settings: object) -> int:
    from recommender.ml.data import Bank, training_data
    from recommender.ml.evaluate import default_models, run_split
    from recommender.ml.idmap import IdMap
    from recommender.ml.registry import ModelRegistry
    from recommender.ml.split import time_split
    from recommender.settings import RecommenderSettings

    assert isinstance(settings, RecommenderSettings)
    loaded = _synthetic_bank(args, settings)
    assert isinstance(loaded, Bank)
    bank = loaded
    products = IdMap(_catalogue_ids())
    weights = _weights(args)
    factory = default_models(settings.train_threads, args.seed)[args.model]
    metrics: dict[str, object] = {}
    if not args.skip_eval:
        split = time_split(bank.interactions)
        result = run_split(bank, split, products, {args.model: factory}, weights, 10, log=lambda _m: None)
        first = result.results[0]
        metrics = {"split": split.description, "all": first.all.as_dict(), "cold": first.cold.as_dict()}
    started = time.perf_counter()
    data = training_data(bank, products=products, weights=weights)
    model = factory().fit(data)
    window = {
        "start": data.window[0],
        "end": data.window[1],
        "interactions": len(bank.interactions),
        "customers": len(data.customers),
        "weights": weights.to_json(),
        "source": bank.name,
    }
    manifest = ModelRegistry(settings.registry_dir).register(
        model, data_window=window, metrics=metrics, status="approved" if args.approve else "candidate"
    )
    seconds = time.perf_counter() - started
    print(f"recommender: registered {manifest.version} ({manifest.status}) in {seconds:.1f}s")
    print(manifest.version)
    return 0


if __name__ == "__main__":
    sys.exit(main())
