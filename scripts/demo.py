"""What `make demo` and `make serve` run: a synthetic bank served by product-hub and profile.

Steps: generate the bank (deterministic by seed), apply and materialise the Feast repository,
migrate and seed both services' SQLite databases, start both services with uvicorn, then either
print real answers for three sample customers and stop (demo) or serve until Ctrl-C (serve).
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
    run([str(BIN / "recommender"), "models"], env)
    step("migrating and seeding profile (customers, consent, moments), product-hub (catalogue),")
    print("    content-hub (content approved through maker-checker review) and rights-hub (rights, budgets)")
    run([str(BIN / "profile-service"), "migrate"], env)
    run([str(BIN / "profile-service"), "seed", "--data", str(data_dir)], env)
    for script in ("product-hub", "content-hub", "rights-hub"):
        run([str(BIN / script), "migrate"], env)
        run([str(BIN / script), "seed"], env)
    return as_of


def start(env: dict[str, str]) -> list[subprocess.Popen[bytes]]:
    step("starting profile :8004, product-hub :8001, content-hub :8002, rights-hub :8003")
    procs = [subprocess.Popen([str(BIN / script), "serve"], env=env, cwd=ROOT) for script, _, _ in SERVICES]
    deadline = time.monotonic() + 90
    for _, base, _ in SERVICES:
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
    except KeyboardInterrupt:
        pass
    finally:
        step("stopping the services")
        stop(procs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
