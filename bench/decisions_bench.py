"""Throughput and latency of POST /v1/decisions against a floor and a naive variant, in one run.

Run: ``make bench`` or ``uv run --frozen --no-sync python bench/decisions_bench.py``; writes
bench/results/decisions.md (``--json PATH`` adds the figures as JSON). Takes about 10 minutes on 2 cores,
most of it warming and measuring the recommender variants while they are slow.

What one run does:

1. builds the demo's stack on embedded defaults in a fresh directory under var/bench/ with the
   functions of scripts/demo.py (a 10k-customer bank, Feast applied and materialised, the LightFM
   hybrid and the LightGBM ranker trained and approved, profile, product-hub, content-hub and
   rights-hub migrated, seeded and started on their demo ports);
2. picks 5,000 customers of the bank (seeded sample) and builds one request body per customer and
   channel (``app`` and ``mini_program``, the channels without quiet hours), shuffled;
3. measures, one after the other and each with 32 keep-alive connections from bench/loadgen.py:
   - ``floor``: bench/floor_app.py, a FastAPI ``async def`` returning a pre-encoded ~1 KB JSON body,
     served like the recommender (uvicorn, 1 worker);
   - ``naive``: the recommender (``recommender serve``, 1 worker) with
     ``RECOMMENDER_FEATURE_CACHE_TTL_S=0`` and ``RECOMMENDER_FEATURE_READS=sdk``: the same code path,
     features read with the Feast SDK's
     ``get_online_features`` on every request, nothing cached (the ranker's features neither);
   - ``real``: the recommender with its defaults (audit on) and the demo's LightGBM ranker on
     (``RECOMMENDER_RANKER_STORE``): the targets are checked on this one;
   - ``real, ranker off``: the same without the ranker (candidates ranked by their base scores);
   - ``floor (end)``: the floor again, to show how much the machine drifted during the run.
   Each recommender variant gets its own migrated SQLite database and is warmed first with one
   decision per customer and channel of the load (``app`` for every customer, then
   ``mini_program``). Contact caps are raised (``RECOMMENDER_CONTACT_POLICY``) and the
   no-repeat window is 0 (``RECOMMENDER_ARBITRATION``) so that repeated decisions for a customer
   keep returning bundles instead of turning into cheap empty answers.

The benchmark reports PASS/FAIL per target and exits 0 either way (it is a report); it exits
non-zero only when the stack cannot be built or started.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT / "scripts"))

import demo  # noqa: E402  (scripts/demo.py: prepare, environment, start, stop, token)

RESULTS = BENCH / "results" / "decisions.md"
CHANNELS = ("app", "mini_program")  # no quiet hours: every hour of the day gives real answers
PLACEMENT = "home_banner"
CLIENT = "app-gateway"  # the dev client of the app gateway; has decisions:write
CONTACT_POLICY = {
    "daily_per_channel": 1_000_000,
    "weekly_all_channels": 1_000_000,
    "weekly_push": 1_000_000,
    "agent_calls_30d": 1_000_000,
}
ARBITRATION = {"no_repeat_window": "PT0S"}
#: Targets of the issue: real ≥ 30 % of the floor's req/s, ≥ 2 × naive's, p99 ≤ 4 × the floor's, 0 errors.
MIN_SHARE_OF_FLOOR = 0.30
MIN_TIMES_NAIVE = 2.0
MAX_P99_TIMES_FLOOR = 4.0
#: Other work on the machine above this (cores) during a window marks the run noisy.
NOISY_OTHER_CPU = 0.25


def step(message: str) -> None:
    print(f"\n\033[1m==> {message}\033[0m", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_in_use(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, int(port))) == 0


def wait_ready(url: str, proc: subprocess.Popen[bytes], method: str = "GET", timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: the server exited with {proc.returncode} before it was ready")
        try:
            if httpx.request(method, url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not become ready in {timeout_s:.0f} s")


def busy_cores(seconds: float = 1.0) -> float:
    """Cores the whole machine kept busy over the next ``seconds`` (/proc/stat; idle and iowait excluded)."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:8]]
        return sum(fields) - fields[3] - fields[4], sum(fields)

    busy0, _ = sample()
    time.sleep(seconds)
    busy1, _ = sample()
    return (busy1 - busy0) / os.sysconf("SC_CLK_TCK") / seconds


def wait_quiet(max_wait_s: float, threshold: float = 0.25) -> str:
    """Wait (at most ``max_wait_s``) until the machine is idle apart from our idle servers; other work
    on a shared machine would otherwise take CPU from the variant being measured. Says what it saw."""
    if max_wait_s <= 0 or not Path("/proc/stat").is_file():
        return "not checked"
    deadline = time.monotonic() + max_wait_s
    waited = 0.0
    while True:
        busy = busy_cores(1.0)
        if busy < threshold:
            return f"quiet ({busy:.2f} cores busy) after {waited:.0f} s"
        if time.monotonic() >= deadline:
            print(f"    the machine stayed busy ({busy:.2f} cores) for {max_wait_s:.0f} s: measuring anyway")
            return f"still busy ({busy:.2f} cores) after {waited:.0f} s"
        if waited == 0:
            print(f"    other work keeps {busy:.2f} cores busy: waiting up to {max_wait_s:.0f} s", flush=True)
        waited += 1.0


@contextmanager
def server(
    cmd: list[str], env: dict[str, str], ready_url: str, method: str = "GET"
) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT)
    try:
        wait_ready(ready_url, proc, method)
        yield proc
    finally:
        demo.stop([proc])


@dataclass
class Measured:
    variant: str
    result: dict[str, Any]
    warm: dict[str, Any] | None = None  # each customer's first decision (channel app)
    warm_other: dict[str, Any] | None = None  # then each customer's first on the other channels
    nonempty: float | None = None  # share of sampled answers with at least one bundle
    quiet: str = ""  # what wait_quiet saw before the measured load


def loadgen(
    url: str,
    bodies_file: Path,
    headers: list[str],
    out: Path,
    *,
    args: argparse.Namespace,
    watch: dict[str, int],
    once: bool = False,
) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(BENCH / "loadgen.py"),
        url,
        "--bodies",
        str(bodies_file),
        "-c",
        str(args.connections),
        "-w",
        str(args.warmup),
        "-d",
        str(args.duration),
        "--json",
        str(out),
        "--sample-every",
        "7",
        "--max-samples",
        "500",
    ]
    for header in headers:
        cmd += ["-H", header]
    for name, pid in watch.items():
        cmd += ["--watch", f"{name}={pid}"]
    if once:
        cmd.append("--once")
    subprocess.run(cmd, check=True, cwd=ROOT)
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def nonempty_share(samples: list[str]) -> float | None:
    answers = []
    for text in samples:
        try:
            answers.append(bool(json.loads(text).get("bundles")))
        except (ValueError, AttributeError):
            answers.append(False)
    return sum(answers) / len(answers) if answers else None


def pick_customers(data_dir: Path, count: int, seed: int) -> list[str]:
    ids = sorted(pd.read_parquet(data_dir / "customers.parquet", columns=["customer_id"])["customer_id"])
    if len(ids) < count:
        raise SystemExit(f"the bank has {len(ids):,} customers, fewer than --warm-customers {count:,}")
    return sorted(random.Random(seed).sample(ids, count))


def write_bodies(path: Path, customers: list[str], channels: tuple[str, ...], seed: int) -> int:
    bodies = [
        json.dumps(
            {"customer_id": c, "channel": ch, "placement": PLACEMENT, "limit": 3}, separators=(",", ":")
        )
        for c in customers
        for ch in channels
    ]
    random.Random(seed).shuffle(bodies)
    path.write_text("\n".join(bodies) + "\n")
    return len(bodies)


def machine() -> dict[str, str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus (nproc)": str(os.cpu_count()),
        "cpu": model,
        "memory": _memory(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def recommender_env(
    base: dict[str, str], var: Path, variant: str, port: int, extra: dict[str, str | None]
) -> dict[str, str]:
    """The variant's environment; an ``extra`` value of None unsets that variable."""
    slug = "-".join("".join(c if c.isalnum() else " " for c in variant).split())
    env = dict(base)
    env.update(
        {
            "RECOMMENDER_DATABASE_URL": f"sqlite:///{var / f'recommender-{slug}.db'}",
            "RECOMMENDER_REGISTRY_DIR": str(var / "models"),
            "RECOMMENDER_PORT": str(port),
            "RECOMMENDER_CONTACT_POLICY": json.dumps(CONTACT_POLICY),
            "RECOMMENDER_ARBITRATION": json.dumps(ARBITRATION),
            "RECOMMENDER_PROFILE_URL": demo.PROFILE,
            "RECOMMENDER_PRODUCT_HUB_URL": demo.PRODUCT_HUB,
            "RECOMMENDER_CONTENT_HUB_URL": demo.CONTENT_HUB,
            "RECOMMENDER_RIGHTS_HUB_URL": demo.RIGHTS_HUB,
            "RECOMMENDER_LOG_LEVEL": os.environ.get("RECOMMENDER_LOG_LEVEL", "WARNING"),
        }
    )
    env.pop("RECOMMENDER_FEATURE_CACHE_TTL_S", None)
    env.pop("RECOMMENDER_FEATURE_READS", None)
    for key, value in extra.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def measure_floor(
    name: str, bodies: Path, out_dir: Path, args: argparse.Namespace, env: dict[str, str]
) -> Measured:
    port = free_port()
    step(f"{name}: bench/floor_app.py on :{port}, {args.connections} connections")
    cmd = [sys.executable, str(BENCH / "floor_app.py"), "--port", str(port)]
    # The floor has no /readyz: it is up when the endpoint answers.
    with server(cmd, env, f"http://127.0.0.1:{port}/floor", method="POST") as proc:
        quiet = wait_quiet(args.quiet_wait)
        result = loadgen(
            f"http://127.0.0.1:{port}/floor",
            bodies,
            [],
            out_dir / f"{name.replace(' ', '-')}.json",
            args=args,
            watch={"server": proc.pid},
        )
    return Measured(name, result, quiet=quiet)


def measure_recommender(
    name: str,
    extra_env: dict[str, str | None],
    bodies: Path,
    warm_bodies: list[Path],
    out_dir: Path,
    args: argparse.Namespace,
    env: dict[str, str],
    var: Path,
    backing: dict[str, int],
) -> Measured:
    port = free_port()
    renv = recommender_env(env, var, name, port, extra_env)
    shown = " ".join(f"{k}={'(unset)' if v is None else v}" for k, v in extra_env.items()) or "defaults"
    step(f"{name}: recommender serve on :{port} ({shown}), {args.connections} connections")
    subprocess.run([str(demo.BIN / "recommender"), "migrate"], check=True, env=renv, cwd=ROOT)
    headers = [f"Authorization: Bearer {demo.token(CLIENT)}"]
    url = f"http://127.0.0.1:{port}/v1/decisions"
    with server([str(demo.BIN / "recommender"), "serve"], renv, f"http://127.0.0.1:{port}/readyz") as proc:
        passes = []
        for i, (channel, path) in enumerate(zip(CHANNELS, warm_bodies, strict=True)):
            print(
                f"    warming: one decision for each of {args.warm_customers:,} customers on {channel}",
                flush=True,
            )
            warm = loadgen(
                url, path, headers, out_dir / f"{name}-warm{i}.json", args=args, watch={}, once=True
            )
            if warm["errors"]:
                print(
                    f"    warning: {warm['errors']} errors warming: {warm['statuses']} {warm['error_kinds']}"
                )
            passes.append(warm)
        quiet = wait_quiet(args.quiet_wait)
        print("    measuring", flush=True)
        watch = {"server": proc.pid, **backing}
        writer = audit_writer_pid(proc.pid)
        if writer is not None:
            watch["audit-writer"] = writer
        result = loadgen(url, bodies, headers, out_dir / f"{name}.json", args=args, watch=watch)
    nonempty = nonempty_share(result.get("samples", []))
    others = passes[1:]
    warm_other = (
        {
            "requests": sum(w["requests"] for w in others),
            "errors": sum(w["errors"] for w in others),
            "rps": sum(w["requests"] for w in others) / sum(w["requests"] / w["rps"] for w in others),
        }
        if others
        else None
    )
    return Measured(name, result, warm=passes[0], warm_other=warm_other, nonempty=nonempty, quiet=quiet)


def _warm_errors(m: Measured) -> int:
    return (m.warm["errors"] if m.warm else 0) + (m.warm_other["errors"] if m.warm_other else 0)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "**FAIL**"


#: The loadgen CPU keys that are not the demo's backing services.
NOT_SERVICES = frozenset({"server", "audit-writer", "loadgen", "machine"})


def cpu_split(cpu: dict[str, float]) -> tuple[float, float]:
    """(the demo services' CPU, everything else's CPU) out of a loadgen CPU dict, in cores."""
    services = sum(v for k, v in cpu.items() if k not in NOT_SERVICES)
    ours = cpu.get("server", 0) + cpu.get("audit-writer", 0) + cpu.get("loadgen", 0)
    other = cpu.get("machine", float("nan")) - ours - services
    return services, max(other, 0.0)


def audit_writer_pid(pid: int) -> int | None:
    """The recommender's audit writer process (spawned by multiprocessing; see
    recommender.service.audit_process), when it runs one."""
    children: list[str] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):  # spawned from a worker thread: its task's child
        try:
            children += (task / "children").read_text().split()
        except OSError:
            continue
    for child in children:
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:
            return int(child)
    return None


def _writer_cpu(cpu: dict[str, float]) -> str:
    return f"{cpu['audit-writer']:.0%}" if "audit-writer" in cpu else "—"


def report(
    runs: list[Measured], facts: dict[str, str], machine_facts: dict[str, str]
) -> tuple[list[str], dict[str, Any]]:
    by = {m.variant: m.result for m in runs}
    # The faster floor is the reference: a floor measured while other work shared the machine is too low,
    # and would make every ratio look better than it is.
    ref_name = max((m for m in runs if m.variant.startswith("floor")), key=lambda m: m.result["rps"]).variant
    floor = by[ref_name]
    lines = [
        "# Decision API benchmark",
        "",
        "Produced by `bench/decisions_bench.py` (`make bench`); see [bench/README.md](../README.md) for what "
        "each variant is. One uvicorn worker per server; the load generator (bench/loadgen.py, "
        "asyncio + uvloop, HTTP/1.1 keep-alive, closed loop) runs on the same machine. "
        f"Shares and p99 ratios are relative to `{ref_name}`, the faster of the two floor runs.",
        "",
        "| variant | req/s | share of floor | p50 ms | p90 ms | p99 ms | p99 / floor p99 | max ms | errors "
        "| answers with bundles | server CPU | audit writer CPU | loadgen CPU | demo services CPU "
        "| other CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    measured: dict[str, Any] = {}
    noisy: list[str] = []
    for m in runs:
        r = m.result
        share = r["rps"] / floor["rps"] if floor["rps"] else float("nan")
        p99x = r["p99_ms"] / floor["p99_ms"] if floor["p99_ms"] else float("nan")
        nonempty = "—" if m.nonempty is None else f"{m.nonempty:.0%}"
        cpu = r.get("cpu", {})
        services, other = cpu_split(cpu)
        if other >= NOISY_OTHER_CPU:
            noisy.append(f"{m.variant} ({other:.0%})")
        lines.append(
            f"| {m.variant} | {r['rps']:,.0f} | {share:.1%} | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} | "
            f"{r['p99_ms']:.2f} | {p99x:.2f} | {r['max_ms']:.1f} | {r['errors']} | {nonempty} | "
            f"{cpu.get('server', float('nan')):.0%} | "
            f"{_writer_cpu(cpu)} | "
            f"{cpu.get('loadgen', float('nan')):.0%} | "
            f"{'—' if m.variant.startswith('floor') else f'{services:.0%}'} | {other:.0%} |"
        )
        measured[m.variant] = {
            "rps": r["rps"],
            "share_of_floor": share,
            "p50_ms": r["p50_ms"],
            "p90_ms": r["p90_ms"],
            "p99_ms": r["p99_ms"],
            "p99_over_floor_p99": p99x,
            "max_ms": r["max_ms"],
            "errors": r["errors"],
            "statuses": r["statuses"],
            "error_kinds": r["error_kinds"],
            "requests": r["requests"],
            "response_bytes_mean": r["response_bytes_mean"],
            "answers_with_bundles": m.nonempty,
            "cpu": cpu,
            "before_measuring": m.quiet,
            "warm": None
            if m.warm is None
            else {k: m.warm[k] for k in ("requests", "errors", "rps", "p50_ms", "p99_ms", "statuses")},
            "warm_other_channels": m.warm_other,
        }
    real, naive = by["real"], by["naive"]
    targets = [
        (
            f"real ≥ {MIN_SHARE_OF_FLOOR:.0%} of the floor's req/s",
            f"{real['rps'] / floor['rps']:.1%} ({real['rps']:,.0f} / {floor['rps']:,.0f})",
            real["rps"] >= MIN_SHARE_OF_FLOOR * floor["rps"],
        ),
        (
            f"real ≥ {MIN_TIMES_NAIVE:g} × naive's req/s",
            f"{real['rps'] / naive['rps']:.2f} × ({real['rps']:,.0f} / {naive['rps']:,.0f})"
            if naive["rps"]
            else "n/a",
            real["rps"] >= MIN_TIMES_NAIVE * naive["rps"],
        ),
        (
            f"real p99 ≤ {MAX_P99_TIMES_FLOOR:g} × the floor's p99",
            f"{real['p99_ms']:.2f} ms = {real['p99_ms'] / floor['p99_ms']:.2f} × {floor['p99_ms']:.2f} ms",
            real["p99_ms"] <= MAX_P99_TIMES_FLOOR * floor["p99_ms"],
        ),
        (
            "0 errors (every variant, warm-up included)",
            ", ".join(f"{m.variant} {m.result['errors'] + _warm_errors(m)}" for m in runs),
            all(m.result["errors"] == 0 and _warm_errors(m) == 0 for m in runs),
        ),
    ]
    lines += ["", "| target | measured | |", "|---|---|:---:|"]
    lines += [f"| {name} | {value} | {verdict(ok)} |" for name, value, ok in targets]
    warmed = [m for m in runs if m.warm is not None]
    if warmed:
        lines += [
            "",
            "First decisions: each recommender variant was warmed with one decision per customer (32 "
            "connections, every customer new to the server: profile fetched over HTTP, features and the "
            "ranker's inputs read from Feast, the contact window read from the database): "
            + "; ".join(
                f"{m.variant} {m.warm['rps']:,.0f} req/s, p50 {m.warm['p50_ms']:.0f} ms, "
                f"p99 {m.warm['p99_ms']:.0f} ms"
                for m in warmed
            )
            + ". Then one decision per customer on the other channel ("
            + "; ".join(f"{m.variant} {m.warm_other['rps']:,.0f} req/s" for m in warmed if m.warm_other)
            + "). The targets are measured on warm customers; these show what a customer's first "
            "decision of the day costs.",
        ]
    if "floor (end)" in by:
        first, end = by["floor"], by["floor (end)"]
        lines += [
            "",
            f"Drift: the floor ran at {first['rps']:,.0f} req/s (p99 {first['p99_ms']:.2f} ms) first and "
            f"{end['rps']:,.0f} req/s (p99 {end['p99_ms']:.2f} ms, {end['rps'] / first['rps'] - 1:+.1%}) "
            "at the end.",
        ]
    if noisy:
        lines += [
            "",
            f"**Noisy run**: other work on the machine took ≥ {NOISY_OTHER_CPU:.0%} of a core during "
            + ", ".join(noisy)
            + "; those figures are lower than the machine can do. Run again on a quiet machine before "
            "drawing conclusions from small differences.",
        ]
    lines += [
        "",
        "CPU columns: CPU seconds per second during the measured window (100% = one core): the server "
        "under test, the recommender's audit writer process (its slots, inserts and commits; "
        "`RECOMMENDER_AUDIT_WRITER=process`, the default), the load generator, the demo's four services "
        "(profile, product-hub, content-hub, rights-hub) and everything else on the machine (/proc/stat "
        "minus those).",
        "",
        "Before each measurement the benchmark waited for the machine to be quiet: "
        + "; ".join(f"{m.variant} {m.quiet}" for m in runs)
        + ".",
    ]
    backing_cpu = {k: v for k, v in by["real"].get("cpu", {}).items() if k not in NOT_SERVICES and v >= 0.005}
    if backing_cpu:
        lines += [
            "",
            "The demo services during the real variant's window: "
            + ", ".join(f"{k} {v:.0%}" for k, v in backing_cpu.items())
            + ".",
        ]
    lines += ["", "## Run", ""]
    lines += [f"- {k}: {v}" for k, v in facts.items()]
    lines += ["", "## Machine", ""]
    lines += [f"- {k}: {v}" for k, v in machine_facts.items()]
    data = {
        "facts": facts,
        "machine": machine_facts,
        "reference_floor": ref_name,
        "variants": measured,
        "targets": [{"target": n, "measured": v, "pass": ok} for n, v, ok in targets],
    }
    return lines, data


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=10_000, help="size of the generated bank")
    parser.add_argument("--warm-customers", type=int, default=5_000, help="customers the load spreads over")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of load before measuring")
    parser.add_argument("--duration", type=float, default=12.0, help="measured seconds per variant")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="build the stack here and keep it (default: a fresh directory under var/bench/, removed after)",
    )
    parser.add_argument(
        "--no-end-floor", action="store_true", help="skip measuring the floor again at the end"
    )
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help="the report (default bench/results/decisions.md)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON here")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=30.0,
        help="before each variant, wait up to this many seconds for other work on the machine to stop "
        "(0: don't)",
    )
    args = parser.parse_args()

    machine_facts = machine()
    for _, url, _ in demo.SERVICES:
        if port_in_use(url):
            raise SystemExit(
                f"{url} is taken: stop `make serve` or `make demo` (the benchmark starts its own services)"
            )
    (ROOT / "var" / "bench").mkdir(parents=True, exist_ok=True)
    if args.workdir is not None:
        var = args.workdir if args.workdir.is_absolute() else ROOT / args.workdir
        var.mkdir(parents=True, exist_ok=True)
        keep = True
    else:
        var = Path(tempfile.mkdtemp(prefix="decisions-", dir=ROOT / "var" / "bench"))
        keep = False
    data_dir = var / "bank"
    out_dir = var / "results"
    out_dir.mkdir(exist_ok=True)
    started = time.perf_counter()
    env = demo.environment(data_dir)
    try:
        as_of = demo.prepare(args.customers, args.seed, data_dir, env)
        setup_s = time.perf_counter() - started
        customers = pick_customers(data_dir, args.warm_customers, args.seed)
        bodies = var / "bodies.jsonl"
        n_bodies = write_bodies(bodies, customers, CHANNELS, args.seed)
        warm_bodies = [var / f"warm-{channel}.jsonl" for channel in CHANNELS]
        for channel, path in zip(CHANNELS, warm_bodies, strict=True):
            write_bodies(path, customers, (channel,), args.seed)
        procs = demo.start(env)
        try:
            backing = {script: p.pid for (script, _, _), p in zip(demo.SERVICES, procs, strict=True)}
            runs = [measure_floor("floor", bodies, out_dir, args, env)]
            variants: list[tuple[str, dict[str, str | None]]] = [
                (
                    "naive",
                    {
                        "RECOMMENDER_FEATURE_CACHE_TTL_S": "0",
                        "RECOMMENDER_RANKER_CACHE_TTL_S": "0",
                        "RECOMMENDER_FEATURE_READS": "sdk",
                    },
                ),
                ("real", {}),
                ("real, ranker off", {"RECOMMENDER_RANKER_STORE": None}),
            ]
            for name, extra in variants:
                runs.append(
                    measure_recommender(name, extra, bodies, warm_bodies, out_dir, args, env, var, backing)
                )
            if not args.no_end_floor:
                runs.append(measure_floor("floor (end)", bodies, out_dir, args, env))
        finally:
            step("stopping the services")
            demo.stop(procs)
        facts = {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "bank": f"{args.customers:,} customers, seed {args.seed}, as of {as_of}",
            "customers in the load": f"{len(customers):,} (each warmed with one decision on `app`, "
            "then one on `mini_program`)",
            "request bodies": f"{n_bodies:,} (each customer × {', '.join(CHANNELS)}; placement {PLACEMENT}, "
            "limit 3), shuffled, cycled through by all connections",
            "connections": str(args.connections),
            "durations": f"{args.warmup:g} s warm-up + {args.duration:g} s measured per variant",
            "auth": f"Bearer token of the dev client `{CLIENT}` (decisions:write)",
            "recommender settings": f"RECOMMENDER_CONTACT_POLICY={json.dumps(CONTACT_POLICY)}, "
            f"RECOMMENDER_ARBITRATION={json.dumps(ARBITRATION)}; "
            "naive adds RECOMMENDER_FEATURE_CACHE_TTL_S=0, RECOMMENDER_RANKER_CACHE_TTL_S=0 and "
            "RECOMMENDER_FEATURE_READS=sdk; "
            "real, ranker off unsets RECOMMENDER_RANKER_STORE",
            "setup (bank, Feast, training, seeding)": f"{setup_s:.0f} s; whole run "
            f"{time.perf_counter() - started:.0f} s",
        }
        lines, data = report(runs, facts, machine_facts)
    finally:
        if not keep:
            shutil.rmtree(var, ignore_errors=True)
    text = "\n".join(lines) + "\n"
    out = args.out if args.out.is_absolute() else ROOT / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    if args.json is not None:
        args.json.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    step(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
