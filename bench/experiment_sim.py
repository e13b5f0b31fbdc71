"""A simulated A/B experiment through the real decision API: the CF model against segment popularity, or
(``--compare ranker``, ``make experiment-report-ranker``) production with the learned ranker against
``changes.ranker: off`` (reports/experiments-ranker.md; no baseline version is registered then, so
production serves the approved LightFM).

Run: ``make experiment-report`` (= ``uv run --frozen --no-sync python bench/experiment_sim.py
--customers 50000 --days 14 --seed 7 --out reports``); writes ``reports/experiments.md`` and
``reports/experiments.png``. Not part of ``make test`` (tests/test_experiment_simulation.py runs a small
one). What one run does:

1. builds the demo's stack on embedded defaults with the functions of scripts/demo.py in its own
   directory (``var/experiments/``, own Feast repository copy and free ports, as bench/outbound_bench.py
   does): a synthetic bank (deterministic by seed, as of today), Feast applied and materialised, the
   LightFM hybrid trained and approved, profile, product-hub, content-hub and rights-hub migrated,
   seeded and started as processes; then registers the **segment-popularity** baseline as a second
   approved registry version (``recommender train --model segment_popularity --approve``);
2. builds the recommender in this process (``recommender.main.create_app``, a fresh SQLite database,
   the global holdout off) and talks to it through ``httpx.ASGITransport``; its decisions, feedback and
   experiments read a simulated clock that starts at midnight of the bank's as-of date;
3. creates the experiment through the API (``console-alice`` authors and submits, ``console-bob``
   approves, alice starts it): arms ``control`` = the segment-popularity version, ``cf`` = the LightFM
   version (``changes.model_version``), 50/50, primary metric ``conversion_rate``, guardrails opt-out
   and complaint rates;
4. simulates the days (:mod:`recommender.simulation.runner`): each day a share of the customers asks
   for one decision on the app's home banner and answers it by the planted preferences through
   ``POST /v1/feedback`` (impressions, clicks, conversions with amounts);
5. stops the experiment, reads ``GET /v1/experiments/{id}/analysis`` and writes the report with the
   implied uplift (:mod:`recommender.simulation.implied`) next to the detected one.

The simulated days must stay within the customer-activity features' 14-day TTL after as-of (stale
features would switch decisions to the fallback path): at most 14 days.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(BENCH))

import demo  # noqa: E402  (scripts/demo.py: environment, prepare, start, stop, token)
from outbound_bench import isolate  # noqa: E402  (own ports and Feast repository)

MAX_DAYS = 14
#: Per comparison (``--compare``): the treatment arm, the arms' labels, the report's name (also the
#: default stack folder under var/), title and make target.
COMPARISONS: dict[str, dict[str, Any]] = {
    "cf": {
        "treatment": "cf",
        "labels": {"control": "segment popularity", "cf": "CF (LightFM hybrid)"},
        "report": "experiments",
        "title": "CF against segment popularity",
        "command": "make experiment-report",
    },
    "ranker": {
        "treatment": "ranker",
        "labels": {"control": "CF scores (ranker off)", "ranker": "CF + LightGBM ranker"},
        "report": "experiments-ranker",
        "title": "the learned ranker against CF scores",
        "command": "make experiment-report-ranker",
    },
}


def step(message: str) -> None:
    print(f"\n\033[1m==> {message}\033[0m", flush=True)


def register_baseline(env: dict[str, str], data_dir: Path) -> None:
    """The segment-popularity baseline as a second approved version, trained on the same bank."""
    subprocess.run(
        [
            str(demo.BIN / "recommender"),
            "train",
            "--data",
            str(data_dir),
            "--model",
            "segment_popularity",
            "--approve",
            "--skip-eval",
        ],
        check=True,
        env=env,
        cwd=ROOT,
    )


def versions(registry: Path) -> dict[str, str]:
    """The newest approved version of each model type in the registry."""
    from recommender.ml.registry import ModelRegistry

    out: dict[str, str] = {}
    for m in ModelRegistry(str(registry)).versions():
        if m.status == "approved":
            out[m.model_type] = m.version  # versions() is oldest first: the newest wins
    return out


async def simulate(args: argparse.Namespace, env: dict[str, str], var: Path, as_of: date) -> dict[str, Any]:
    """Steps 2–5 against the running services; returns what the report needs."""
    os.environ.update(env)  # Feast repository, registry, peer URLs: read by the settings and Feast
    from qianmian_core.logging import configure_logging
    from qianmian_core.settings import load_settings
    from recommender.database import migrate
    from recommender.main import create_app
    from recommender.settings import RecommenderSettings
    from recommender.simulation.response import Preferences, ResponseModel, ValueModel, aum_by_customer
    from recommender.simulation.runner import (
        SimClock,
        SimulationConfig,
        Simulator,
        ab_definition,
        conclude,
        install_clock,
        launch,
        ranker_ab_definition,
        result_to_json,
    )

    data_dir = var / "bank"
    database = var / "recommender.db"
    for suffix in ("", "-wal", "-shm"):
        database.with_name(database.name + suffix).unlink(missing_ok=True)
    url = f"sqlite:///{database}"
    migrate(url)
    base = load_settings(RecommenderSettings)
    configure_logging(base.service_name, base.log_level)
    settings = base.model_copy(
        update={"database_url": url, "experiments_holdout_share": 0.0, "require_model": True}
    )
    found = versions(Path(settings.registry_dir))
    if args.compare == "ranker":
        # Production serves the approved LightFM and re-scores its candidates with the approved ranker
        # (trained by demo.prepare on this bank's own holdings history); control switches the ranker off.
        production, ranker = found["lightfm"], found["lightgbm_ranker"]
        definition = ranker_ab_definition(days=args.days)
        arm_versions = {"control": f"{production}, ranker off", "ranker": f"{production} + {ranker}"}
    else:
        control, treatment = found["segment_popularity"], found["lightfm"]
        definition = ab_definition(control, treatment, days=args.days)
        arm_versions = {"control": control, "cf": treatment}
    start = datetime.combine(as_of, dtime(0), tzinfo=UTC)
    clock = SimClock(start)
    app = create_app(settings, install_signal=False)
    install_clock(app, clock)
    customers = pd.read_parquet(data_dir / "customers.parquet", columns=["customer_id", "aum"])
    preferences = Preferences.load(data_dir)
    response = ResponseModel()
    config = SimulationConfig(
        days=args.days,
        active_share=args.active_share,
        seed=args.sim_seed,
        limit=args.limit,
        concurrency=args.concurrency,
    )
    alice, bob = demo.token("console-alice"), demo.token("console-bob")
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://recommender.sim", timeout=120
        ) as client,
    ):
        shown = ", ".join(f"{arm} = {version}" for arm, version in arm_versions.items())
        step(f"experiment: {shown} (alice authors, bob approves)")
        running = await launch(client, definition, author_token=alice, approver_token=bob)
        experiment_id = running["experiment_id"]
        print(f"    {experiment_id} running since {running['started_at']} (simulated)", flush=True)
        simulator = Simulator(
            client,
            token=demo.token("app-gateway"),
            preferences=preferences,
            customers=customers["customer_id"].tolist(),
            clock=clock,
            start=start,
            config=config,
            response=response,
            values=ValueModel(aum_by_customer(customers["customer_id"], customers["aum"])),
        )
        step(
            f"simulating {args.days} days × {len(customers):,} customers, "
            f"{args.active_share:.0%} active a day"
        )

        def progress(day: Any) -> None:
            rate = day.decisions / day.seconds if day.seconds else 0.0
            print(
                f"    day {day.day + 1:>2}: {day.active:,} active, {day.decisions:,} decisions "
                f"({day.with_bundles:,} with bundles, {day.exposed:,} exposures), {day.clicks:,} clicks, "
                f"{day.conversions:,} conversions, errors {day.errors or 0} — {day.seconds:.0f} s "
                f"({rate:.1f} decisions/s); waited "
                + ", ".join(f"{k} {1000 * v / max(day.decisions, 1):.0f} ms" for k, v in day.waited.items())
                + " per decision",
                flush=True,
            )

        result = await simulator.run(progress)
        clock.base = start + timedelta(days=args.days)
        analysis = await conclude(
            client, experiment_id, token=alice, note=f"fixed horizon of {args.days} days reached"
        )
    return {
        "analysis": analysis,
        "result": result_to_json(result),
        "versions": arm_versions,
        "compare": args.compare,
        "experiment_id": experiment_id,
        "response": response.describe(),
        "customers": len(customers),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=14, help=f"simulated days (at most {MAX_DAYS})")
    parser.add_argument("--seed", type=int, default=7, help="bank generator seed")
    parser.add_argument("--sim-seed", type=int, default=None, help="simulation seed (default: --seed)")
    parser.add_argument("--active-share", type=float, default=0.10, help="customers active per day")
    parser.add_argument("--limit", type=int, default=1, help="bundles per decision (the home banner: 1)")
    parser.add_argument("--concurrency", type=int, default=8, help="customers in flight at once")
    parser.add_argument(
        "--compare",
        choices=sorted(COMPARISONS),
        default="cf",
        help="cf: the LightFM version against the segment-popularity version (reports/experiments.md); "
        "ranker: production (LightFM + the LightGBM ranker) against `ranker: off` "
        "(reports/experiments-ranker.md)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "reports")
    parser.add_argument(
        "--var", type=Path, default=None, help="the stack's folder (default var/experiments[-ranker])"
    )
    parser.add_argument(
        "--reuse", action="store_true", help="keep a stack prepared earlier with the same bank"
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="write the report again from the run kept in VAR/simulation.json (no simulation)",
    )
    args = parser.parse_args()
    if not 1 <= args.days <= MAX_DAYS:
        parser.error(f"--days must be 1..{MAX_DAYS} (the activity features' TTL after as-of)")
    args.sim_seed = args.seed if args.sim_seed is None else args.sim_seed
    if args.var is None:
        args.var = ROOT / "var" / COMPARISONS[args.compare]["report"]
    var = args.var if args.var.is_absolute() else ROOT / args.var
    out = args.out if args.out.is_absolute() else ROOT / args.out
    saved = var / "simulation.json"
    if args.report_only:
        write(out, json.loads(saved.read_text(encoding="utf-8")), var)
        return 0
    data_dir = var / "bank"
    env = isolate(demo.environment(data_dir), var)
    env["RECOMMENDER_LOG_LEVEL"] = os.environ.get("RECOMMENDER_LOG_LEVEL", "WARNING")
    started = time.perf_counter()
    marker = var / "prepared.json"
    wanted = {
        "customers": args.customers,
        "seed": args.seed,
        "date": f"{datetime.now(UTC):%Y-%m-%d}",
        "compare": args.compare,
    }
    reused = args.reuse and marker.is_file() and json.loads(marker.read_text()) == wanted
    if reused:
        step(f"reusing the stack prepared in {var}")
        as_of = date.fromisoformat(json.loads((data_dir / "manifest.json").read_text())["as_of"])
    else:
        marker.unlink(missing_ok=True)
        as_of = demo.prepare(args.customers, args.seed, data_dir, env)
        if args.compare == "cf":
            # (The newest approved CF version is production: the ranker comparison keeps LightFM.)
            step("registering the segment-popularity baseline as a second approved version")
            register_baseline(env, data_dir)
        marker.write_text(json.dumps(wanted))
    procs = demo.start(env)
    try:
        setup_s = time.perf_counter() - started
        t0 = time.perf_counter()
        load_before = os.getloadavg()
        got = asyncio.run(simulate(args, env, var, as_of))
        sim_s = time.perf_counter() - t0
        load_after = os.getloadavg()
    finally:
        step("stopping the services")
        demo.stop(procs)
    got["run"] = {
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "as_of": str(as_of),
        "date": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "setup_s": setup_s,
        "sim_s": sim_s,
        "reused": reused,
        "loads": [load_before[0], load_after[0]],
        "revision": revision(),
        "machine": f"{os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}",
    }
    saved.write_text(json.dumps(got), encoding="utf-8")
    write(out, got, var)
    return 0


def revision() -> str:
    """The checkout's commit (``+dirty`` when it has uncommitted changes), for the report."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def audited_first_choices(var: Path, experiment_id: str, response_model: dict[str, Any]) -> dict[str, Any]:
    """Served against each arm's model's first choice, from the run's audit records (empty when the
    run's database or bank is gone)."""
    import sqlite3

    from recommender.simulation.implied import first_choices
    from recommender.simulation.response import Preferences, ResponseModel

    database, bank = var / "recommender.db", var / "bank"
    if not database.is_file() or not (bank / "truth" / "preferences.npz").is_file():
        return {}
    preferences = Preferences.load(bank)
    model = ResponseModel(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in response_model.items()})

    def p_convert(customer: str, product: str) -> float:
        return model.p_convert(preferences.of(customer, product), 0)

    def records() -> Any:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
            rows = db.execute(
                "SELECT experiment_arm, customer_id, features, response, candidates FROM decisions "
                "WHERE experiment_id = ? AND mode = 'personalised'",
                (experiment_id,),
            )
            for arm, customer, features, response, candidates in rows:
                if (json.loads(features).get("experiment") or {}).get("exposed"):
                    yield arm, customer, json.loads(response), json.loads(candidates)

    return first_choices(records(), p_convert)


def write(out: Path, got: dict[str, Any], var: Path) -> None:
    """The report of a kept run (``simulate``'s answer plus the run's facts; ``var``: its stack, for
    the audit records)."""
    from recommender.simulation.implied import (
        arm_outcomes,
        daily_uplift,
        differing_answers,
        paired_implied_rates,
        uplift,
    )
    from recommender.simulation.report import ReportInput, conclusion, write_report
    from recommender.simulation.runner import result_from_json

    run, args = got["run"], got["run"]["args"]
    comparison = COMPARISONS[got.get("compare", "cf")]
    treatment = comparison["treatment"]
    result = result_from_json(got["result"])
    analysis, experiment_id = got["analysis"], got["experiment_id"]
    window = timedelta(days=float(analysis["attribution_window_days"]))
    from qianmian_bankgen.catalogue import CATALOGUE

    product_values = {p.product_id: float(p.value) for p in CATALOGUE}
    outcomes = arm_outcomes(result.decisions, experiment_id, window=window, values=product_values)
    decisions = sum(d.decisions for d in result.days)
    errors: dict[str, int] = {}
    for d in result.days:
        for k, v in d.errors.items():
            errors[k] = errors.get(k, 0) + v
    waited: dict[str, float] = {}
    for d in result.days:
        for k, v in d.waited.items():
            waited[k] = waited.get(k, 0.0) + v
    sim_s = float(run["sim_s"])
    facts = {
        "date": run["date"],
        "bank": f"{got['customers']:,} customers, generator seed {args['seed']}, as of {run['as_of']}",
        "simulated days": str(args["days"]),
        "simulation seed": str(args["sim_seed"]),
        "active customers per day": f"{args['active_share']:.0%} (each asks for one decision)",
        "request": f"channel app, placement home_banner, limit {args['limit']}",
        "experiment": f"`{experiment_id}`, layer ranking, traffic 100 %, population channel app, "
        "weights 50/50, global holdout off",
        "arms": ", ".join(
            f"{arm} = `{version}` ({comparison['labels'][arm]})" for arm, version in got["versions"].items()
        ),
        "decisions": f"{decisions:,} ({sum(d.with_bundles for d in result.days):,} with bundles, "
        f"{sum(d.exposed for d in result.days):,} exposures)",
        "feedback posted": f"{sum(d.impressions for d in result.days):,} impressions, "
        f"{sum(d.clicks for d in result.days):,} clicks, "
        f"{sum(d.conversions for d in result.days):,} conversions",
        "errors": ", ".join(f"{k}: {v}" for k, v in errors.items()) or "none",
        "setup (bank, Feast, training, seeding, start-up)": f"{run['setup_s']:.0f} s"
        + (" (stack reused from an earlier run)" if run["reused"] else ""),
        "simulation (wall)": f"{sim_s:.0f} s = {sim_s / max(decisions, 1) * 1000:.1f} ms per decision "
        f"with its feedback and audit read ({decisions / sim_s:.1f} decisions/s, {args['concurrency']} "
        "customers in flight)",
        "request latency (mean per decision)": ", ".join(
            f"{k} {1000 * v / max(decisions, 1):.0f} ms" for k, v in waited.items()
        ),
        "code": f"`{run.get('revision', 'not recorded')}`",
        "machine": f"{run['machine']}; load average {run['loads'][0]:.2f} before, {run['loads'][1]:.2f} "
        "after (a shared machine: other work ran at the same time)",
        "command": f"`python bench/experiment_sim.py --compare {args.get('compare', 'cf')} --customers "
        f"{args['customers']} --days {args['days']} --seed {args['seed']} --active-share "
        f"{args['active_share']} --limit {args['limit']}`",
    }
    notes = RANKER_NOTES if treatment == "ranker" else CF_NOTES
    data = ReportInput(
        analysis=analysis,
        outcomes=outcomes,
        uplift=uplift(outcomes, treatment, "control"),
        paired_rates=paired_implied_rates(
            result.decisions, result.counterfactual, experiment_id, window=window
        ),
        daily=daily_uplift(
            result.decisions,
            experiment_id,
            treatment=treatment,
            control="control",
            window=window,
            days=int(args["days"]),
        ),
        facts=facts,
        labels=comparison["labels"],
        response_model=got["response"],
        notes=notes,
        differing=differing_answers(result.decisions, result.counterfactual, experiment_id),
        first_choices=audited_first_choices(var, experiment_id, got["response"]),
    )
    path = write_report(
        out, data, name=comparison["report"], title=comparison["title"], command=comparison["command"]
    )
    ok, sentence = conclusion(data)
    step(f"wrote {path} and {path.with_suffix('.png')}")
    print(f"    {'DETECTED' if ok else 'NOT DETECTED'}: {sentence}")


_GUARDRAILS_NOTE = (
    "The simulator posts no opt-outs or complaints (the response model has none), so the guardrails "
    "hold trivially here; they are exercised by the analysis's own tests."
)
#: Notes of the CF-against-segment-popularity report.
CF_NOTES = [
    _GUARDRAILS_NOTE,
    "Both arms pin a registry version (`changes.model_version`), so which version production serves "
    "by default does not matter to the experiment; every other part of the decision (policies, "
    "contact caps, no-repeat window, content, rights, arbitration) is the production path.",
    "What this run says about the product, not the experiment machinery: the CF arm converts far "
    "less because of arbitration, not its model's ranking (offline the model beats segment "
    "popularity, reports/evaluation.md; the section 'Did arbitration keep the model's ranking?' "
    "shows it decision by decision where the audit records were still there). Its propensity "
    "is the model's score min-max scaled over its top-k, so a product well down its list keeps a "
    "propensity near the best one's, and "
    "propensity × value then puts the consumer loan (value 700) or medical insurance first where "
    "their planted P(convert) is low; segment popularity's propensities keep the ratios of real "
    "purchase rates. On the bank's margin (what arbitration maximises) the arms are not "
    "distinguishable here. The fix is a calibrated propensity: the learned ranker's P(add) "
    "(reports/ranker.md) scores production's candidates in the decision path, but both arms "
    "here pin a model version, which the ranker leaves alone; `--compare ranker` measures it "
    "(reports/experiments-ranker.md).",
    "Why the arms agree on most answers and what decides where they differ: the "
    "banner shows the bundle of highest priority = propensity × moment weight × value × lever (DESIGN §3) "
    "among the candidates that pass every policy (only products with content approved for the app can "
    "be shown). An arm's propensity is its model's score min-max scaled over the model's own top-k "
    "(`recommender.service.candidates`), not a calibrated probability, so a product of high value "
    "ranked well below the customer's best match can still come first; the section 'Where the arms "
    "differed' shows what each arm put first there and how likely it was to convert.",
]
#: Notes of the ranker-against-CF-scores report.
RANKER_NOTES = [
    _GUARDRAILS_NOTE,
    "Neither arm pins a model version: both serve production's approved LightFM hybrid and its "
    "candidates; the `ranker` arm re-scores them with the approved LightGBM ranker (P(add next month), "
    "trained by `make demo`'s steps on 12 monthly snapshots of this bank's own holdings history, "
    "`recommender train-ranker --bank`), the control arm switches it off (`changes.ranker: off`) and "
    "ranks by the CF scores. Every other part of the decision (policies, contact caps, no-repeat "
    "window, content, rights, arbitration) is the production path in both.",
    "The simulated customers respond with the bank's planted affinity (`truth/preferences.npz`), the "
    "same world whose purchases made the holdings history the ranker learned from; the ranker never "
    "sees the planted preferences themselves.",
    "Arbitration multiplies the propensity by product value in both arms: the ranker's P(add) is a "
    "calibrated probability, the CF score min-max scaled over the model's top-k is not.",
]


if __name__ == "__main__":
    sys.exit(main())
