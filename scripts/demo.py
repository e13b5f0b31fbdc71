"""What `make demo` and `make serve` run: a synthetic bank served by product-hub and profile.

Steps: generate the bank (deterministic by seed), apply and materialise the Feast repository,
migrate and seed both services' SQLite databases, start both services with uvicorn, then either
print real answers for three sample customers and stop (demo) or serve until Ctrl-C (serve).
The demo ends with a small A/B experiment (created, approved by a second principal, run on a few
customers' decisions and feedback) and its analysis summary.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from datetime import time as dtime
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PRODUCT_HUB = "http://127.0.0.1:8001"
CONTENT_HUB = "http://127.0.0.1:8002"
RIGHTS_HUB = "http://127.0.0.1:8003"
PROFILE = "http://127.0.0.1:8004"
RECOMMENDER = "http://127.0.0.1:8000"
#: (console script, base URL, database file) of every service the demo runs, in start order.
SERVICES = (
    ("profile-service", PROFILE, "profile.db"),
    ("product-hub", PRODUCT_HUB, "product-hub.db"),
    ("content-hub", CONTENT_HUB, "content-hub.db"),
    ("rights-hub", RIGHTS_HUB, "rights-hub.db"),
)


def step(message: str) -> None:
    print(f"\n\033[1m==> {message}\033[0m", flush=True)


def run(cmd: list[str], env: dict[str, str]) -> None:
    started = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)
    print(f"    ({time.perf_counter() - started:.1f} s)", flush=True)


def token(client: str) -> str:
    data = yaml.safe_load((ROOT / "config" / "dev-tokens.yaml").read_text(encoding="utf-8"))
    return str(data["clients"][client]["token"])


def environment(data_dir: Path) -> dict[str, str]:
    var = data_dir.parent
    env = dict(os.environ)
    env.update(
        {
            "QIANMIAN_DATA_DIR": str(data_dir),
            "PRODUCT_HUB_DATABASE_URL": f"sqlite:///{var / 'product-hub.db'}",
            "PROFILE_DATABASE_URL": f"sqlite:///{var / 'profile.db'}",
            "CONTENT_HUB_DATABASE_URL": f"sqlite:///{var / 'content-hub.db'}",
            "RECOMMENDER_REGISTRY_DIR": str(var / "models"),
            "RECOMMENDER_LOG_LEVEL": os.environ.get("RECOMMENDER_LOG_LEVEL", "WARNING"),
            "RIGHTS_HUB_DATABASE_URL": f"sqlite:///{var / 'rights-hub.db'}",
            "RECOMMENDER_DATABASE_URL": f"sqlite:///{var / 'recommender.db'}",
            "RECOMMENDER_RANKER_STORE": str(var / "ranker" / "repo"),
            "PRODUCT_HUB_PROFILE_URL": PROFILE,
            "CONTENT_HUB_PROFILE_URL": PROFILE,
            # Keep the demo's output to the answers; the services log JSON at INFO by default.
            "PRODUCT_HUB_LOG_LEVEL": os.environ.get("PRODUCT_HUB_LOG_LEVEL", "WARNING"),
            "PROFILE_LOG_LEVEL": os.environ.get("PROFILE_LOG_LEVEL", "WARNING"),
            "CONTENT_HUB_LOG_LEVEL": os.environ.get("CONTENT_HUB_LOG_LEVEL", "WARNING"),
            "RIGHTS_HUB_LOG_LEVEL": os.environ.get("RIGHTS_HUB_LOG_LEVEL", "WARNING"),
        }
    )
    return env


def prepare(customers: int, seed: int, data_dir: Path, env: dict[str, str]) -> date:
    as_of = datetime.now(UTC).date()
    manifest = data_dir / "manifest.json"
    current = json.loads(manifest.read_text()) if manifest.is_file() else {}
    if (
        current.get("customers") == customers
        and current.get("seed") == seed
        and current.get("as_of") == str(as_of)
    ):
        step(
            f"synthetic bank already in {data_dir.relative_to(ROOT)} ({customers:,} customers, as of {as_of})"
        )
    else:
        step(f"generating a synthetic bank of {customers:,} customers (seed {seed}, as of {as_of})")
        run(
            [
                str(BIN / "qianmian-bankgen"),
                "generate",
                "--customers",
                str(customers),
                "--seed",
                str(seed),
                "--as-of",
                str(as_of),
                "--out",
                str(data_dir),
            ],
            env,
        )
    for _, _, var_db in SERVICES:
        for suffix in ("", "-wal", "-shm"):
            (data_dir.parent / f"{var_db}{suffix}").unlink(missing_ok=True)
    step("feast apply + materialize (SQLite online store, parquet offline store)")
    run([str(BIN / "qianmian-features"), "apply"], env)
    end = datetime.combine(as_of, dtime(23, 59, 59), tzinfo=UTC).isoformat()
    run([str(BIN / "qianmian-features"), "materialize", "--end", end], env)
    step("training the LightFM hybrid on the bank's interactions and registering it as approved")
    shutil.rmtree(data_dir.parent / "models", ignore_errors=True)
    run([str(BIN / "recommender"), "train", "--data", str(data_dir), "--model", "lightfm", "--approve"], env)
    step("training the LightGBM next-product ranker on 12 monthly snapshots of the bank's own holdings")
    print("    history (the holdings profile serves), with CF companions and its Feast store")
    shutil.rmtree(data_dir.parent / "ranker", ignore_errors=True)
    run(
        [
            str(BIN / "recommender"),
            "train-ranker",
            "--bank",
            str(data_dir),
            "--months",
            "12",
            "--seed",
            str(seed),
            "--workdir",
            str(data_dir.parent / "ranker"),
            "--approve",
        ],
        env,
    )
    run([str(BIN / "recommender"), "models"], env)
    step("migrating and seeding profile (customers, consent, moments), product-hub (catalogue),")
    print("    content-hub (content approved through maker-checker review) and rights-hub (rights, budgets)")
    run([str(BIN / "profile-service"), "migrate"], env)
    run([str(BIN / "profile-service"), "seed", "--data", str(data_dir)], env)
    for script in ("product-hub", "content-hub", "rights-hub"):
        run([str(BIN / script), "migrate"], env)
        run([str(BIN / script), "seed"], env)
    return as_of


def wait_ready(bases: list[str], procs: list[subprocess.Popen[bytes]], timeout_s: float) -> None:
    """Poll each base URL's /readyz until it answers 200; stop ``procs`` and exit on timeout or a crash."""
    deadline = time.monotonic() + timeout_s
    for base in bases:
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                stop(procs)
                raise SystemExit(f"{base} did not become ready")
            time.sleep(0.2)


def start(env: dict[str, str]) -> list[subprocess.Popen[bytes]]:
    step("starting profile :8004, product-hub :8001, content-hub :8002, rights-hub :8003")
    procs = [subprocess.Popen([str(BIN / script), "serve"], env=env, cwd=ROOT) for script, _, _ in SERVICES]
    wait_ready([base for _, base, _ in SERVICES], procs, 90)
    print("    all services ready", flush=True)
    return procs


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def sample_customers(data_dir: Path, as_of: date) -> list[tuple[str, str]]:
    customers = pd.read_parquet(data_dir / "customers.parquet")
    cutoff = pd.Timestamp(as_of, tz="UTC")
    valid = customers["risk_expires_at"].notna() & (customers["risk_expires_at"] > cutoff)
    picks = [
        (
            "wealth customer, valid C4+ assessment",
            customers[customers["seg_wealth"] & valid & (customers["risk_level"] >= 4)],
        ),
        (
            "payroll customer whose risk assessment has expired",
            customers[customers["seg_payroll"] & customers["risk_level"].notna() & ~valid],
        ),
        (
            "long-tail customer, opted out of personalised recommendation",
            customers[customers["seg_long_tail"] & customers["personalised_opt_out"]],
        ),
    ]
    chosen = []
    for label, frame in picks:
        frame = frame if len(frame) else customers
        chosen.append((str(frame.sort_values("customer_id").iloc[0]["customer_id"]), label))
    return chosen


def show(customer_id: str, label: str) -> list[dict[str, Any]]:
    step(f"{customer_id}: {label}")
    profile = httpx.get(
        f"{PROFILE}/v1/customers/{customer_id}",
        headers={"Authorization": f"Bearer {token('app-gateway')}"},
        timeout=5,
    )
    profile.raise_for_status()
    print("  masked profile (GET /v1/customers/{id}):")
    print("   ", json.dumps(_summary(profile.json()), ensure_ascii=False, indent=2).replace("\n", "\n    "))
    listing = httpx.get(
        f"{PRODUCT_HUB}/v1/products",
        params={"eligible_for": customer_id, "limit": 100},
        headers={"Authorization": f"Bearer {token('recommender')}"},
        timeout=5,
    )
    listing.raise_for_status()
    items = listing.json()["items"]
    print(f"  eligible and suitable products (GET /v1/products?eligible_for=): {len(items)}")
    for item in items:
        risk = f"R{item['risk_rating']}" if item.get("risk_rating") else "--"
        print(f"    {item['product_id']:<14} {risk:<3} {item['product_type']:<18} {item['name']}")
    return list(items)


def show_rights(customer_id: str, segments: list[str]) -> None:
    """The rights this customer's segments could still be granted, with their remaining budget."""
    headers = {"Authorization": f"Bearer {token('recommender')}"}
    step(f"{customer_id}: affordable rights (GET /v1/rights?affordable=true&segment=…)")
    seen: set[str] = set()
    for segment in segments:
        listing = httpx.get(
            f"{RIGHTS_HUB}/v1/rights",
            params={"affordable": "true", "segment": segment},
            headers=headers,
            timeout=5,
        )
        listing.raise_for_status()
        for right in listing.json()["items"]:
            if right["right_id"] in seen:
                continue
            seen.add(right["right_id"])
            budget = httpx.get(
                f"{RIGHTS_HUB}/v1/rights/{right['right_id']}/budget", headers=headers, timeout=5
            )
            budget.raise_for_status()
            left = budget.json()
            print(
                f"    {right['right_id']:<18} {right['right_type']:<18} {right['name']:<16}"
                f" remaining {left['remaining_count']:,} grants / ¥{left['remaining_money_fen'] / 100:,.0f}"
            )
    if not seen:
        print("    none affordable for this customer's segments")


def show_content(customer_id: str, eligible: list[dict[str, Any]]) -> None:
    """Render approved content of an eligible product as a push text and a remote-banking call script."""
    headers = {"Authorization": f"Bearer {token('recommender')}"}
    for product in eligible:
        found = httpx.get(
            f"{CONTENT_HUB}/v1/content",
            params={"product_id": product["product_id"], "channel": "push"},
            headers=headers,
            timeout=5,
        )
        found.raise_for_status()
        items = found.json()["items"]
        if not items:
            continue
        content_id = items[0]["content_id"]
        step(f"{customer_id}: content for {product['product_id']} {product['name']} ({content_id})")
        for channel, title in (("push", "push text"), ("remote_agent", "remote-banking call script (话术)")):
            rendered = httpx.get(
                f"{CONTENT_HUB}/v1/content/render",
                params={"content_id": content_id, "channel": channel, "customer_id": customer_id},
                headers=headers,
                timeout=5,
            )
            rendered.raise_for_status()
            body = rendered.json()
            print(f"  {title}, version {body['version']} (GET /v1/content/render?channel={channel}):")
            print("    " + body["text"].replace("\n", "\n    "))
        return
    print("  no approved content for any of this customer's eligible products")


def start_recommender(env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Migrate the recommender's SQLite database and serve it (the audit log, contact history)."""
    step("starting the recommender :8000 (Feast online features, the LightFM model, the four services)")
    database = Path(env["RECOMMENDER_DATABASE_URL"].removeprefix("sqlite:///"))
    for stale in (
        database,
        database.with_name(database.name + "-wal"),
        database.with_name(database.name + "-shm"),
    ):
        stale.unlink(missing_ok=True)  # a fresh audit log and contact history: earlier runs' caps are gone
    run([str(BIN / "recommender"), "migrate"], env)
    proc = subprocess.Popen([str(BIN / "recommender"), "serve"], env=env, cwd=ROOT)
    wait_ready([RECOMMENDER], [proc], 120)
    print("    recommender ready", flush=True)
    return proc


def decision_customers(data_dir: Path) -> list[tuple[str, str, str]]:
    """Five customers of different segments, each with consent for the channel they are asked in."""
    customers = pd.read_parquet(data_dir / "customers.parquet").sort_values("customer_id")
    personal = customers[~customers["personalised_opt_out"]]
    wanted = (
        ("wealth", "app", "wealth customer in the app"),
        ("payroll", "mini_program", "payroll customer in the mini-program"),
        ("mortgage", "app", "mortgage customer in the app"),
        ("credit_card", "mini_program", "credit-card customer in the mini-program"),
        ("social_security", "remote_agent", "social-security customer on a remote-banking agent's screen"),
    )
    chosen: list[tuple[str, str, str]] = []
    for segment, channel, label in wanted:
        frame = personal[personal[f"seg_{segment}"] & personal[f"consent_{channel}"]]
        frame = frame[~frame["customer_id"].isin([c for c, _, _ in chosen])]
        if len(frame):
            chosen.append((str(frame.iloc[0]["customer_id"]), channel, label))
    return chosen


def decide(customer_id: str, channel: str, placement: str = "home_banner") -> dict[str, Any]:
    resp = httpx.post(
        f"{RECOMMENDER}/v1/decisions",
        json={"customer_id": customer_id, "channel": channel, "placement": placement, "limit": 3},
        headers={"Authorization": f"Bearer {token('app-gateway')}"},
        timeout=10,
    )
    resp.raise_for_status()
    body: dict[str, Any] = resp.json()
    return body


def print_decision(body: dict[str, Any]) -> None:
    print(
        f"  decision {body['decision_id']}: mode {body['mode']}, model {body['model_version']}"
        + (f", degraded {body['degraded_reasons']}" if body["degraded_reasons"] else "")
    )
    if not body["bundles"]:
        print(f"    no bundle: {', '.join(body['reason_codes']) or 'nothing eligible'}")
    elif body["reason_codes"]:
        print(f"    reason codes: {', '.join(body['reason_codes'])}")
    for n, bundle in enumerate(body["bundles"], 1):
        product = bundle["product"]
        risk = f"R{product['risk_rating']}" if product["risk_rating"] else "--"
        content = bundle["content"]
        right = bundle["right"]
        print(f"    {n}. {product['id']:<14} {risk:<3} {product['type']:<18} {product['name']}")
        print(f"       priority {bundle['score']:.4g}  reasons {', '.join(bundle['reason_codes'])}")
        print(f"       {bundle['explanation']['zh']}")
        print(f"       {bundle['explanation']['en']}")
        if content is not None:
            text = content["fields"].get("title") or content["fields"].get("script") or ""
            print(
                f"       content {content['id']} v{content['version']} ({content['channel']}): "
                f"{str(text)[:60]}"
            )
        print(f"       right {right['id']} ({right['type']})" if right else "       right: none")


def show_decisions(customers: list[tuple[str, str, str]]) -> None:
    for customer_id, channel, label in customers:
        step(f"{customer_id}: {label} (POST /v1/decisions, channel {channel})")
        print_decision(decide(customer_id, channel))


def show_dismiss(customer_id: str, channel: str) -> None:
    """Dismiss the top bundle; the next decision leaves that product out for the 7-day cool-down."""
    first = decide(customer_id, channel)
    if not first["bundles"]:
        return
    product_id = first["bundles"][0]["product"]["id"]
    step(f"{customer_id}: the customer dismisses {product_id} (POST /v1/feedback event=dismiss)")
    resp = httpx.post(
        f"{RECOMMENDER}/v1/feedback",
        json={"decision_id": first["decision_id"], "product_id": product_id, "event": "dismiss"},
        headers={
            "Authorization": f"Bearer {token('app-gateway')}",
            "Idempotency-Key": f"demo-dismiss-{first['decision_id']}",
        },
        timeout=10,
    )
    resp.raise_for_status()
    print(f"  cool-down until {resp.json().get('cooldown_until')}")
    after = decide(customer_id, channel)
    print_decision(after)
    ids = [b["product"]["id"] for b in after["bundles"]]
    audit = httpx.get(
        f"{RECOMMENDER}/v1/decisions/{after['decision_id']}",
        headers={"Authorization": f"Bearer {token('console-alice')}"},
        timeout=10,
    ).json()
    blocked = next(
        (
            [code for o in c["outcomes"] if not o["passed"] for code in o["codes"]]
            for c in audit["candidates"]
            if c["product_id"] == product_id
        ),
        None,
    )
    print(f"  {product_id} offered again: {product_id in ids}; rules that removed it (audit): {blocked}")


def show_opt_out(customer_id: str, channel: str) -> None:
    """The customer switches personalised recommendation off in profile; the next answer is generic."""
    step(f"{customer_id}: the customer opts out of personalised recommendation (PUT profile consents)")
    resp = httpx.put(
        f"{PROFILE}/v1/customers/{customer_id}/consents",
        json={"personalised": False, "reason": "customer asked in the app"},
        headers={"Authorization": f"Bearer {token('console-alice')}"},
        timeout=10,
    )
    resp.raise_for_status()
    time.sleep(2.0)  # the recommender follows profile's change feed, polled every second
    print_decision(decide(customer_id, channel))


def show_experiment(data_dir: Path, skip: set[str], customers: int = 30) -> None:
    """A small A/B experiment end to end: a marketer's lever that puts wealth management first."""
    from recommender.service.experiments import analysis_summary

    alice = {"Authorization": f"Bearer {token('console-alice')}"}
    bob = {"Authorization": f"Bearer {token('console-bob')}"}
    gateway = {"Authorization": f"Bearer {token('app-gateway')}"}
    step("an A/B experiment: production arbitration against a 3x lever on wealth management")
    created = httpx.post(
        f"{RECOMMENDER}/v1/experiments",
        json={
            "name": "理财优先：运营杠杆 3 倍 (demo)",
            "hypothesis": "Putting wealth management first in the app raises the conversion rate",
            "primary_metric": "conversion_rate",
            "layer": "arbitration",
            "population": {"channels": ["app"]},
            "arms": [
                {"name": "control", "weight": 50},
                {
                    "name": "wealth_x3",
                    "weight": 50,
                    "changes": {"arbitration": {"levers": {"product_types": {"wealth_management": 3}}}},
                },
            ],
        },
        headers=alice,
        timeout=10,
    )
    created.raise_for_status()
    experiment_id = created.json()["experiment_id"]

    def act(action: str, headers: dict[str, str]) -> httpx.Response:
        return httpx.post(
            f"{RECOMMENDER}/v1/experiments/{experiment_id}/status",
            json={"action": action},
            headers=headers,
            timeout=10,
        )

    act("submit", alice).raise_for_status()
    refused = act("approve", alice)
    print(
        f"  console-alice authored {experiment_id}; her own approval: {refused.status_code} "
        f"{refused.json()['error']['code']}"
    )
    act("approve", bob).raise_for_status()
    act("start", alice).raise_for_status()
    print("  console-bob approved it, console-alice started it")
    frame = pd.read_parquet(data_dir / "customers.parquet").sort_values("customer_id")
    frame = frame[~frame["personalised_opt_out"] & frame["consent_app"] & ~frame["customer_id"].isin(skip)]
    served = 0
    for n, customer_id in enumerate(frame["customer_id"].head(customers)):
        body = decide(str(customer_id), "app")
        for rank, bundle in enumerate(body["bundles"]):
            # A deterministic sample of responses: some clicks, fewer conversions (first bundles only).
            events = ["impression"] + (["click"] if (n + rank) % 3 == 0 else [])
            events += ["convert"] if rank == 0 and n % 5 == 0 else []
            for event in events:
                httpx.post(
                    f"{RECOMMENDER}/v1/feedback",
                    json={
                        "decision_id": body["decision_id"],
                        "product_id": bundle["product"]["id"],
                        "event": event,
                    },
                    headers={**gateway, "Idempotency-Key": f"demo-exp-{body['decision_id']}-{rank}-{event}"},
                    timeout=10,
                ).raise_for_status()
        served += bool(body["bundles"])
    print(
        f"  {customers} customers asked in the app ({served} served), impressions and some conversions posted"
    )
    act("stop", alice).raise_for_status()
    analysis = httpx.get(f"{RECOMMENDER}/v1/experiments/{experiment_id}/analysis", headers=alice, timeout=30)
    analysis.raise_for_status()
    print("  " + analysis_summary(analysis.json()).replace("\n", "\n  "))
    print("  (the simulated 50,000-customer A/B of CF against segment popularity: reports/experiments.md)")


def segments_of(data_dir: Path, customer_id: str) -> list[str]:
    customers = pd.read_parquet(data_dir / "customers.parquet", columns=["customer_id", "segments"])
    row = customers[customers["customer_id"] == customer_id].iloc[0]
    return [s for s in str(row["segments"]).split(",") if s]


def _summary(profile: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "customer_id",
        "pii",
        "age",
        "region",
        "segments",
        "lifecycle_stage",
        "tags",
        "aum",
        "value",
        "risk_assessment",
        "consents",
    )
    return {k: profile[k] for k in keys if k in profile}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data", type=Path, default=ROOT / "var" / "demo" / "bank")
    parser.add_argument("--serve", action="store_true", help="keep serving until Ctrl-C")
    args = parser.parse_args()
    data_dir = args.data if args.data.is_absolute() else ROOT / args.data
    env = environment(data_dir)
    as_of = prepare(args.customers, args.seed, data_dir, env)
    procs = start(env)
    try:
        if args.serve:
            step("serving; Ctrl-C stops both services")
            while all(p.poll() is None for p in procs):
                time.sleep(0.5)
        else:
            for n, (customer_id, label) in enumerate(sample_customers(data_dir, as_of)):
                eligible = show(customer_id, label)
                if n == 0:
                    show_content(customer_id, eligible)
                    show_rights(customer_id, segments_of(data_dir, customer_id))
            procs.append(start_recommender(env))
            chosen = decision_customers(data_dir)
            show_decisions(chosen)
            if len(chosen) >= 3:
                show_dismiss(*chosen[0][:2])
                show_opt_out(*chosen[2][:2])  # a customer with contact slots left today
            show_experiment(data_dir, skip={c for c, _, _ in chosen})
    except KeyboardInterrupt:
        pass
    finally:
        step("stopping the services")
        stop(procs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
