"""Real parallelism: rights-hub served by uvicorn in a subprocess, driven by many concurrent connections."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from qianmian_core.testing import dev_token
from rights_hub.database import migrate, open_database
from rights_hub.schemas import RightCreate, TransitionRequest
from rights_hub.service import CatalogueService

REPO_ROOT = Path(__file__).resolve().parents[4]
DEV_TOKENS = REPO_ROOT / "config" / "dev-tokens.yaml"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A running ``rights-hub serve`` process."""

    process: subprocess.Popen[bytes]
    base_url: str

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flushing, open transactions simply vanish."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)


@contextmanager
def serve(database_url: str, log_path: Path) -> Iterator[Server]:
    """Start ``rights-hub serve`` on a free port and wait until it answers; stop it afterwards."""
    port = free_port()
    env = {
        **os.environ,
        "RIGHTS_HUB_DATABASE_URL": database_url,
        "RIGHTS_HUB_PORT": str(port),
        "RIGHTS_HUB_ENVIRONMENT": "test",
        "RIGHTS_HUB_AUTH_TOKENS_FILE": str(DEV_TOKENS),
        "RIGHTS_HUB_LOG_LEVEL": "WARNING",
    }
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "rights_hub.cli", "serve"], env=env, stdout=log, stderr=log, cwd=REPO_ROOT
        )
    server = Server(process, f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"rights-hub exited early: {log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{server.base_url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("rights-hub did not start within 30 s")
            time.sleep(0.1)
        yield server
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def prepare(database_url: str, rights: Sequence[tuple[str, int, int]]) -> None:
    """Migrate and create active rights ``(right_id, budget_count, per_customer_limit)`` (1 yuan each)."""
    migrate(database_url)
    database = open_database(database_url)
    catalogue = CatalogueService(database)
    now = datetime.now(UTC)
    try:
        for right_id, budget, limit in rights:
            catalogue.create(
                RightCreate(
                    right_id=right_id,
                    name=f"压测权益 {right_id}",
                    right_type="coupon",
                    unit_cost_fen=100,
                    budget_count=budget,
                    budget_money_fen=100 * budget,
                    per_customer_limit=limit,
                    valid_from=now - timedelta(days=1),
                    valid_until=now + timedelta(days=30),
                ),
                author="console-alice",
            )
            catalogue.transition(right_id, TransitionRequest(to="active"), actor="console-bob")
    finally:
        database.dispose()


#: Attempts per call when the connection breaks (the same Idempotency-Key each time).
ATTEMPTS = 3


@dataclass(frozen=True)
class Call:
    """One request to fire: path, JSON body, Idempotency-Key."""

    path: str
    body: dict[str, str]
    key: str


@dataclass(frozen=True)
class Outcome:
    """What came back: status and body bytes, or the transport error's name."""

    call: Call
    status: int | None
    body: bytes
    error: str | None = None


def fire(
    base_url: str,
    calls: Sequence[Call],
    *,
    concurrency: int = 48,
    client: str = "recommender",
    on_done: Callable[[int], None] | None = None,
) -> list[Outcome]:
    """Send every call with up to ``concurrency`` in flight at once; never raises on transport errors.

    A call whose connection broke (a keep-alive connection the server closed as the request went out,
    seen once in 2,000 on a loaded machine) is sent again with the same Idempotency-Key, as a client
    of the API does: the answer is then the one the first attempt got, if it reached the server. A
    call that fails :data:`ATTEMPTS` times is reported with its transport error."""
    token = dev_token(client, str(DEV_TOKENS))

    async def run() -> list[Outcome]:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        semaphore = asyncio.Semaphore(concurrency)
        done = 0
        async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as http:

            async def one(call: Call) -> Outcome:
                nonlocal done
                async with semaphore:
                    for attempt in range(1, ATTEMPTS + 1):
                        try:
                            response = await http.post(
                                call.path,
                                json=call.body,
                                headers={"Authorization": f"Bearer {token}", "Idempotency-Key": call.key},
                            )
                            outcome = Outcome(call, response.status_code, response.content)
                            break
                        except httpx.TransportError as exc:
                            outcome = Outcome(call, None, b"", type(exc).__name__)
                            if attempt == ATTEMPTS:
                                break
                        except httpx.HTTPError as exc:
                            outcome = Outcome(call, None, b"", type(exc).__name__)
                            break
                done += 1
                if on_done is not None:
                    on_done(done)
                return outcome

            return await asyncio.gather(*(one(call) for call in calls))

    return asyncio.run(run())


@dataclass(frozen=True)
class LedgerState:
    """A right's counters next to what the ledger and the tables say."""

    granted_count: int
    grants_rows: int
    ledger_grants: int
    max_per_customer: int


def check_consistency(database_url: str, right_id: str) -> LedgerState:
    """Assert every invariant of one right's ledger and return the figures."""
    from rights_hub.models import Grant, Right
    from rights_hub.repository import GrantRepository, LedgerRepository, UsageRepository
    from sqlalchemy import func, select

    database = open_database(database_url)
    try:
        with database.session() as session:
            right = session.get(Right, right_id)
            assert right is not None
            sums = LedgerRepository(session).sums(right_id)
            # Counters equal the sums of the ledger's deltas.
            assert (right.held_count, right.granted_count, right.redeemed_count) == (
                sums.held,
                sums.granted,
                sums.redeemed,
            )
            assert (right.held_money_fen, right.granted_money_fen, right.redeemed_money_fen) == (
                sums.held_money_fen,
                sums.granted_money_fen,
                sums.redeemed_money_fen,
            )
            committed = right.held_count + right.granted_count + right.redeemed_count
            assert 0 <= committed <= right.budget_count
            by_status = GrantRepository(session).count_by_status(right_id)
            assert by_status.get("granted", 0) == right.granted_count
            grants_rows = sum(by_status.values())
            ledger_grants = LedgerRepository(session).count(right_id, "grant")
            assert grants_rows == ledger_grants
            per_customer = session.execute(
                select(Grant.customer_id, func.count())
                .where(Grant.right_id == right_id)
                .group_by(Grant.customer_id)
            ).all()
            max_per_customer = max((int(n) for _, n in per_customer), default=0)
            assert max_per_customer <= right.per_customer_limit
            usage = {u.customer_id: u.active_count for u in UsageRepository(session).all_for(right_id)}
            ledger_usage = LedgerRepository(session).customer_sums(right_id)
            assert {c: n for c, n in usage.items() if n} == {c: n for c, n in ledger_usage.items() if n}
            return LedgerState(right.granted_count, grants_rows, ledger_grants, max_per_customer)
    finally:
        database.dispose()
