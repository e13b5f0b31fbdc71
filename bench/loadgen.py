"""A closed-loop HTTP/1.1 load generator: asyncio protocols on raw sockets, keep-alive, no HTTP client.

Each of N connections sends one pre-built request, reads the status line, the headers and exactly the
body (``Content-Length`` or chunked), records the latency with ``time.perf_counter_ns`` and sends the
next request at once (one request in flight per connection, no pipelining). Request bodies cycle over
a list of pre-encoded bodies, so the requests spread over every body (e.g. one per customer and
channel). A run is a warm-up followed by a measured window; only responses completed inside the
window count. A status outside 2xx, a broken connection or a malformed response is an error.

Used by ``bench/decisions_bench.py``; also a command line tool::

    python bench/loadgen.py http://127.0.0.1:8000/floor --body '{}' -c 32 -w 3 -d 10
    python bench/loadgen.py http://127.0.0.1:8000/v1/decisions --bodies bodies.jsonl \\
        -H "Authorization: Bearer TOKEN" --json result.json

``--once`` sends every body exactly once instead (a warm-up pass over every customer). ``--watch
name=PID`` reports the CPU that process used during the measured window (Linux ``/proc``), next to
the generator's own CPU, so a run shows which side was saturated.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def install_uvloop() -> bool:
    """Use uvloop's event loop when it is installed (it is, with ``uvicorn[standard]``)."""
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def build_requests(
    host: str, port: int, path: str, bodies: Sequence[bytes], headers: Sequence[str], method: str = "POST"
) -> list[bytes]:
    """One complete HTTP/1.1 request (head and body) per body."""
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
    extra = "".join(f"{h.strip()}\r\n" for h in headers)
    if not any(h.lower().startswith("content-type:") for h in headers):
        extra += "Content-Type: application/json\r\n"
    prefix = (head + extra).encode("latin-1")
    return [prefix + b"Content-Length: %d\r\n\r\n" % len(b) + b for b in bodies]


@dataclass
class Result:
    """What one run measured. Latencies in milliseconds."""

    url: str
    connections: int
    warmup_s: float
    duration_s: float
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    statuses: dict[str, int]
    error_kinds: dict[str, int]
    response_bytes_mean: float
    loop: str
    #: CPU seconds per wall second during the measured window: "loadgen", each watched process, and
    #: "machine" (every process on the machine, so machine − the others = CPU taken by anything else).
    cpu: dict[str, float] = field(default_factory=dict)
    samples: list[str] = field(default_factory=list)

    def line(self) -> str:
        cpu = " ".join(f"{k} {v * 100:.0f}%" for k, v in self.cpu.items())
        return (
            f"{self.rps:>9,.0f} req/s  p50 {self.p50_ms:6.2f} ms  p90 {self.p90_ms:6.2f} ms  "
            f"p99 {self.p99_ms:6.2f} ms  max {self.max_ms:7.2f} ms  errors {self.errors}  "
            f"({self.requests:,} requests; cpu {cpu})"
        )


class _Run:
    """State shared by the connections of one run."""

    def __init__(self, requests: list[bytes], *, once: bool, sample_every: int, max_samples: int) -> None:
        self.requests = requests
        self.n = len(requests)
        self.next = 0
        self.once = once
        self.sending = True
        self.recording = False
        self.latencies: list[int] = []
        self.statuses: Counter[int] = Counter()
        self.error_kinds: Counter[str] = Counter()
        self.body_bytes = 0
        self.sample_every = sample_every
        self.max_samples = max_samples
        self.samples: list[str] = []
        self.in_flight = 0
        self.idle: asyncio.Event = asyncio.Event()
        self.fatal: BaseException | None = None

    def take(self) -> bytes | None:
        if not self.sending:
            return None
        i = self.next
        if self.once and i >= self.n:
            self.sending = False
            return None
        self.next = i + 1
        return self.requests[i % self.n]

    def error(self, kind: str) -> None:
        if self.recording:
            self.error_kinds[kind] += 1


def _chunked_end(buf: bytes, start: int) -> int:
    """Offset just past a complete chunked body starting at ``start``, or -1 while incomplete."""
    pos = start
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return -1
        size = int(buf[pos:eol].split(b";", 1)[0], 16)
        pos = eol + 2
        if size == 0:
            end = buf.find(b"\r\n\r\n", pos - 2)  # optional trailers end with an empty line
            return -1 if end < 0 else end + 4
        pos += size + 2
        if pos > len(buf):
            return -1


def _dechunk(raw: bytes) -> bytes:
    """The payload of a complete chunked body (for kept samples only)."""
    out: list[bytes] = []
    pos = 0
    while True:
        eol = raw.find(b"\r\n", pos)
        size = int(raw[pos:eol].split(b";", 1)[0], 16)
        if size == 0:
            return b"".join(out)
        out.append(raw[eol + 2 : eol + 2 + size])
        pos = eol + 4 + size


class _Connection(asyncio.Protocol):
    __slots__ = ("buf", "busy", "closed", "run", "sent_at", "transport")

    def __init__(self, run: _Run) -> None:
        self.run = run
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.sent_at = 0
        self.busy = False
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not an asyncio.Transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.send()

    def send(self) -> None:
        request = self.run.take()
        if request is None:
            self.busy = False
            self.finish()
            return
        self.busy = True
        self.sent_at = time.perf_counter_ns()
        assert self.transport is not None
        self.transport.write(request)

    def finish(self) -> None:
        self.run.in_flight -= 1
        if self.run.in_flight == 0:
            self.run.idle.set()

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        head_end = buf.find(b"\r\n\r\n")
        if head_end < 0:
            self.buf = buf
            return
        run = self.run
        try:
            status = int(buf[9:12])
            head = buf[:head_end].lower()
            start = head_end + 4
            i = head.find(b"\r\ncontent-length:")
            if i >= 0:
                j = head.find(b"\r\n", i + 17)
                end = start + int(head[i + 17 : j if j >= 0 else len(head)])
                if len(buf) < end:
                    self.buf = buf
                    return
            elif b"\r\ntransfer-encoding: chunked" in head or b"\r\ntransfer-encoding:chunked" in head:
                end = _chunked_end(buf, start)
                if end < 0:
                    self.buf = buf
                    return
            else:
                raise ValueError("response has neither Content-Length nor chunked encoding")
        except ValueError:
            run.error("malformed_response")
            self.buf = b""
            self.busy = False
            self.finish()
            assert self.transport is not None
            self.transport.close()
            return
        latency = time.perf_counter_ns() - self.sent_at
        if run.recording:
            run.latencies.append(latency)
            run.statuses[status] += 1
            run.body_bytes += end - start
            if (
                run.sample_every
                and len(run.latencies) % run.sample_every == 0
                and len(run.samples) < run.max_samples
            ):
                body = buf[start:end] if i >= 0 else _dechunk(buf[start:end])
                run.samples.append(body.decode("utf-8", "replace"))
        self.buf = buf[end:]
        if self.buf:  # one request in flight: anything more is a protocol error
            run.error("unexpected_bytes")
            self.buf = b""
        if b"\r\nconnection: close" in head:
            self.busy = False
            self.finish()
            assert self.transport is not None
            self.transport.close()
            return
        self.send()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.busy:
            self.run.error("connection_lost")
            self.busy = False
            self.finish()
        if not self.closed.done():
            self.closed.set_result(None)


async def run_load(
    url: str,
    bodies: Sequence[bytes],
    *,
    headers: Sequence[str] = (),
    connections: int = 32,
    warmup_s: float = 3.0,
    duration_s: float = 10.0,
    once: bool = False,
    watch: dict[str, int] | None = None,
    sample_every: int = 0,
    max_samples: int = 0,
    method: str = "POST",
    reconnect: bool = True,
) -> Result:
    """Run the load against ``url``; with ``once`` every body is sent exactly once (no warm-up, no
    time limit) and every response counts."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"only http:// URLs are supported, not {url!r}")
    host, port = parts.hostname, parts.port or 80
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    requests = build_requests(host, port, path, [bytes(b) for b in bodies], headers, method)
    if not requests:
        raise ValueError("no request bodies")
    run = _Run(requests, once=once, sample_every=sample_every, max_samples=max_samples)
    loop = asyncio.get_running_loop()
    conns: list[_Connection] = []

    async def connect() -> _Connection:
        run.in_flight += 1
        run.idle.clear()
        _, proto = await loop.create_connection(lambda: _Connection(run), host, port)
        return proto

    async def keep_alive(index: int) -> None:
        """Reopen a connection the server closed while the run is still sending."""
        conn = conns[index]
        while True:
            await conn.closed
            if not (reconnect and run.sending):
                return
            try:
                conn = conns[index] = await connect()
            except OSError as exc:
                run.error(f"connect_{type(exc).__name__}")
                run.in_flight -= 1
                await asyncio.sleep(0.05)

    if once:
        run.recording = True
    window_start = time.perf_counter()
    cpu_before = _cpu_now(watch)
    for _ in range(connections):
        conns.append(await connect())
    keepers = [asyncio.ensure_future(keep_alive(i)) for i in range(connections)]
    if not once:
        await asyncio.sleep(warmup_s)
        run.recording = True
        window_start = time.perf_counter()
        cpu_before = _cpu_now(watch)
        await asyncio.sleep(duration_s)
        run.recording = False
        run.sending = False
        window_end = time.perf_counter()
        cpu_after = _cpu_now(watch)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(run.idle.wait(), timeout=30 if not once else None)
    if once:
        window_end = time.perf_counter()
        cpu_after = _cpu_now(watch)
    run.sending = False
    for conn in conns:
        if conn.transport is not None:
            conn.transport.close()
    for k in keepers:
        k.cancel()
    await asyncio.gather(*keepers, return_exceptions=True)
    elapsed = window_end - window_start
    lat = sorted(run.latencies)
    n = len(lat)

    def pct(q: float) -> float:
        if not n:
            return float("nan")
        return lat[min(n - 1, max(0, int(q * n + 0.999999) - 1))] / 1e6

    errors = sum(v for s, v in run.statuses.items() if not 200 <= s < 300) + sum(run.error_kinds.values())
    cpu = {}
    for name, after in cpu_after.items():
        if name in cpu_before:
            cpu[name] = (after - cpu_before[name]) / elapsed if elapsed > 0 else 0.0
    return Result(
        url=url,
        connections=connections,
        warmup_s=0.0 if once else warmup_s,
        duration_s=round(elapsed, 3),
        requests=n,
        errors=errors,
        rps=n / elapsed if elapsed > 0 else 0.0,
        p50_ms=pct(0.50),
        p90_ms=pct(0.90),
        p99_ms=pct(0.99),
        max_ms=lat[-1] / 1e6 if n else float("nan"),
        mean_ms=sum(lat) / n / 1e6 if n else float("nan"),
        statuses={str(k): v for k, v in sorted(run.statuses.items())},
        error_kinds=dict(run.error_kinds),
        response_bytes_mean=run.body_bytes / n if n else 0.0,
        loop=type(loop).__module__.split(".")[0],
        cpu=cpu,
        samples=run.samples,
    )


def _proc_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) of process ``pid`` and its threads, from /proc; None if unreadable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _machine_cpu() -> float | None:
    """CPU seconds every process of the machine used (all CPUs, idle and iowait excluded), from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal …: busy = all of the first eight but idle and iowait
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLK_TCK


def _cpu_now(watch: dict[str, int] | None) -> dict[str, float]:
    now = {"loadgen": time.process_time()}
    machine = _machine_cpu()
    if machine is not None:
        now["machine"] = machine
    for name, pid in (watch or {}).items():
        value = _proc_cpu(pid)
        if value is not None:
            now[name] = value
    return now


def load(url: str, bodies: Sequence[bytes], **kwargs: Any) -> Result:
    """Blocking wrapper of :func:`run_load` (uses uvloop when installed)."""
    install_uvloop()
    return asyncio.run(run_load(url, bodies, **kwargs))


def _bodies(args: argparse.Namespace) -> list[bytes]:
    if args.bodies:
        lines = Path(args.bodies).read_bytes().splitlines()
        return [line for line in lines if line.strip()]
    return [args.body.encode()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("url")
    parser.add_argument("--body", default="{}", help="one request body (default {})")
    parser.add_argument("--bodies", type=Path, help="a file with one request body per line; cycled through")
    parser.add_argument("-H", "--header", action="append", default=[], help="an extra header, 'Name: value'")
    parser.add_argument("-X", "--method", default="POST")
    parser.add_argument("-c", "--connections", type=int, default=32)
    parser.add_argument(
        "-w", "--warmup", type=float, default=3.0, help="seconds before measuring (default 3)"
    )
    parser.add_argument("-d", "--duration", type=float, default=10.0, help="measured seconds (default 10)")
    parser.add_argument("--once", action="store_true", help="send every body exactly once, then stop")
    parser.add_argument("--watch", action="append", default=[], help="NAME=PID: report that process's CPU")
    parser.add_argument("--sample-every", type=int, default=0, help="keep every Nth response body")
    parser.add_argument("--max-samples", type=int, default=0, help="at most this many kept bodies")
    parser.add_argument("--no-uvloop", action="store_true", help="use asyncio's default event loop")
    parser.add_argument("--json", type=Path, help="write the result as JSON to this file")
    args = parser.parse_args(argv)
    if not args.no_uvloop:
        install_uvloop()
    watch = {}
    for item in args.watch:
        name, _, pid = item.partition("=")
        watch[name] = int(pid)
    result = asyncio.run(
        run_load(
            args.url,
            _bodies(args),
            headers=args.header,
            connections=args.connections,
            warmup_s=args.warmup,
            duration_s=args.duration,
            once=args.once,
            watch=watch,
            sample_every=args.sample_every,
            max_samples=args.max_samples,
            method=args.method,
        )
    )
    if args.json:
        args.json.write_text(json.dumps(asdict(result), ensure_ascii=False, indent=1))
    print(result.line(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
