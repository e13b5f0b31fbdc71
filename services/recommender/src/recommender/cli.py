"""``recommender``: eval, train, approve, models, tune, serve.

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

from recommender.ml.threads import pin_blas_threads

pin_blas_threads()


def _bank_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--customers", type=int, default=100_000, help="synthetic bank size (default 100000)")
    parser.add_argument("--seed", type=int, default=7, help="generator and model seed (default 7)")
    parser.add_argument("--data", type=Path, default=None, help="an existing generated bank directory")


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

    commands.add_parser("serve", help="serve the API on the configured host and port (8000)")
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
        tune(bank, budget=args.budget, out=args.out, threads=settings.train_threads, seed=args.seed)
        return 0
    if args.command == "serve":
        import uvicorn

        from recommender.main import create_app

        uvicorn.run(create_app(settings), host=settings.host, port=settings.port, workers=1, log_config=None)
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
    return load_bank(path)


def _catalogue_ids() -> list[str]:
    from qianmian_bankgen.catalogue import CATALOGUE

    return [p.product_id for p in CATALOGUE]


def _eval(args: argparse.Namespace, settings: object) -> int:
    from recommender.ml.data import Bank
    from recommender.ml.evaluate import evaluate
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
    results = evaluate(
        bank,
        products,
        threads=settings.train_threads,
        seed=args.seed,
        k=args.k,
        test_days=args.test_days,
        splits=splits,
    )
    facts["total seconds"] = f"{time.perf_counter() - started:.1f}"
    path = write_report(out, results, k=args.k, facts=facts, notes=_NOTES)
    print(f"recommender: wrote {path} and {path.with_suffix('.png')} in {time.perf_counter() - started:.1f}s")
    return 0


_NOTES = (
    "Interaction confidence: impression 0.5, click 3, purchase 30 (`InteractionWeights`); ALS uses "
    "confidence 1 + alpha × weight, BPR treats clicks and purchases as positives, LightFM uses the "
    "weight (capped at 30) as WARP sample weight.",
    "Products a customer bought in the training data are removed from their list; relevance = purchases "
    "in the test data. Every model ranks the whole catalogue (no eligibility filter), so the numbers "
    "measure the models, not the policy layer.",
    "Popularity within segment: purchase rate of each product among members of each segment "
    "(payroll, mortgage, credit card, wealth, social security, long tail); segments overlap, so a "
    "customer's score is the mean over their segments.",
    "Cold-start customers have no interaction before the cut-off; LightFM scores them from their "
    "features, ALS/BPR fall back to global popularity, the oracle knows everyone.",
    "Novelty = mean -log2 of the share of training customers who interacted with a recommended "
    "product; popularity bias = mean of that share.",
    "Leave-last-out removes the held-out (customer, product) pair from training entirely. In this data "
    "every purchase is preceded minutes earlier by an impression and a click of the same product, so "
    "keeping the customer's earlier rows of that product gives the answer away (a prototype run did "
    "that: ALS 0.76 and BPR 0.85 NDCG@10, above the oracle's 0.57). Removing the pair has the opposite "
    "bias: the held-out product is the one product whose impressions are deleted, which hurts ALS and "
    "BPR most. The time split has neither problem and is the one the done-when checks use.",
    "Investigation of the 1.5× target (prototype runs on this data, seed 7, time split, NDCG@10): "
    "interaction weights impression/click/purchase 0/0/1 → ALS 0.30, 0/2/20 → 0.27, 1/4/20 → 0.42, "
    "0.5/3/30 → 0.43 (kept): non-converting impressions are targeted by the bank's affinity-tilted "
    "policy and carry signal. LightFM without identity features 0.530, 20 epochs 0.533, 64 components "
    "0.532: it sits at ~86 % of the oracle whatever the setting. Popularity within segment using the "
    "exact segment combination instead of the mean over segments scores 0.415 (LightFM 1.28× that). "
    "With the eligibility/suitability filter applied to every model (as the decision pipeline does) "
    "the baselines gain most: oracle 0.619, popularity within segment 0.431, LightFM 0.544 (1.26×).",
    "Conclusion: the planted affinity is largely a function of the customer attributes segments "
    "already encode, so the oracle is only ~1.6× the segment baseline; CF reaches 86 % of the oracle "
    "but not 1.5× the baseline (which would need ~92 % of the oracle). The numbers are reported as measured.",
)


def _train(args: argparse.Namespace, settings: object) -> int:
    from recommender.ml.data import Bank, InteractionWeights, training_data
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
    weights = InteractionWeights()
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
