"""Fixtures: a synthetic bank conforming to docs/data-contract.md, a seeded database, an app client."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from profile_service.main import create_app
from profile_service.models import Base
from profile_service.service.activity import RecordingPusher
from profile_service.service.seeding import seed
from profile_service.settings import ProfileSettings
from qianmian_core.db import Database
from qianmian_core.logging import configure_logging
from qianmian_core.testing import SQLITE_AND_POSTGRES, assert_error, auth_headers, empty_database_url
from qianmian_rules import MOMENT_TYPES, SEGMENTS

REPO_ROOT = Path(__file__).resolve().parents[3]
TOKENS = REPO_ROOT / "config" / "dev-tokens.yaml"
CHANNELS = ("app", "mini_program", "push", "sms", "remote_agent", "online_rm")
EVENT_TYPES = MOMENT_TYPES
PRODUCTS = (("DEP-3M-01", "deposit"), ("WM-R2-01", "wealth_management"), ("CC-GOLD-01", "credit_card"))

#: Customer 1's identifiers: the masking tests know what to expect.
KNOWN_PII = {
    "name": "张三丰",
    "mobile": "13812345678",
    "id_number": "110101199003071234",
    "card_number": "6222021234567890123",
}
#: Customer 2 holds nothing (potential); customer 3 has never been risk-assessed.
POTENTIAL_CUSTOMER = "C000000002"
UNASSESSED_CUSTOMER = "C000000003"
CUSTOMER = "C000000001"
UNKNOWN_CUSTOMER = "C999999999"


def write_bank(out: Path, n: int, as_of: datetime, seed_: int = 7) -> Path:
    """Write the parquet files profile seeds from, shaped as docs/data-contract.md says."""
    rng = np.random.default_rng(seed_)
    out.mkdir(parents=True, exist_ok=True)
    ids = [f"C{i:09d}" for i in range(1, n + 1)]
    ages = rng.integers(18, 80, n)
    seg_flags = rng.random((n, len(SEGMENTS))) < 0.3
    deposits = rng.gamma(2.0, 40_000, n).round(2)
    wealth = rng.gamma(1.0, 60_000, n).round(2) * (rng.random(n) < 0.4)
    risk = rng.integers(1, 6, n).astype("float")
    risk[2] = np.nan  # customer 3: never assessed
    assessed = [as_of - timedelta(days=int(d)) for d in rng.integers(10, 700, n)]
    customers = pd.DataFrame(
        {
            "customer_id": ids,
            "age": ages,
            "age_band": ["26-35"] * n,
            "gender": rng.choice(["F", "M"], n),
            "city_tier": rng.integers(1, 5, n),
            "region": rng.choice(["GD", "BJ", "SH", "ZJ"], n),
            "segments": [",".join(s for s, f in zip(SEGMENTS, row, strict=True) if f) for row in seg_flags],
            **{f"seg_{s}": seg_flags[:, i] for i, s in enumerate(SEGMENTS)},
            "aum": deposits + wealth,
            "deposits": deposits,
            "loans": rng.gamma(1.0, 100_000, n).round(2) * (rng.random(n) < 0.3),
            "lifecycle_stage": rng.choice(["active", "dormant", "new", "churn_risk"], n),
            "tenure_months": rng.integers(1, 200, n),
            "risk_level": pd.array([None if np.isnan(r) else int(r) for r in risk], dtype="Int64"),
            "risk_assessed_at": pd.to_datetime(
                [None if np.isnan(r) else a for r, a in zip(risk, assessed, strict=True)], utc=True
            ),
            "risk_expires_at": pd.to_datetime(
                [
                    None if np.isnan(r) else a + timedelta(days=365)
                    for r, a in zip(risk, assessed, strict=True)
                ],
                utc=True,
            ),
            **{f"consent_{c}": rng.random(n) < 0.7 for c in CHANNELS},
            "personalised_opt_out": rng.random(n) < 0.05,
            "birth_month": rng.integers(1, 13, n),
            "birth_day": rng.integers(1, 29, n),
            "created_at": pd.to_datetime(
                [as_of - timedelta(days=int(d)) for d in rng.integers(40, 6000, n)], utc=True
            ),
        }
    )
    customers.loc[0, ["aum", "deposits", "loans", "tenure_months"]] = [100_000.0, 60_000.0, 0.0, 33]
    customers.loc[0, "created_at"] = pd.Timestamp(as_of - timedelta(days=1000))
    customers.loc[0, "personalised_opt_out"] = False
    customers.loc[0, "consent_push"] = True
    customers.to_parquet(out / "customers.parquet", index=False)

    names = ["李四", "王五", "赵六", "钱七"]
    pii = pd.DataFrame(
        {
            "customer_id": ids,
            "name": [names[i % 4] for i in range(n)],
            "mobile": [f"139{i:08d}" for i in range(n)],
            "id_number": [f"44030119850101{i % 1000:03d}X" for i in range(n)],
            "card_number": [f"6217{i:012d}" for i in range(n)],
        }
    )
    for column, value in KNOWN_PII.items():
        pii.loc[0, column] = value
    pii.to_parquet(out / "customer_pii.parquet", index=False)

    holders = [i for i in range(n) if i != 1]
    per = rng.integers(1, 4, len(holders))
    h_rows = [(ids[i], *PRODUCTS[k]) for i, m in zip(holders, per, strict=True) for k in range(int(m))]
    holdings = pd.DataFrame(h_rows, columns=["customer_id", "product_id", "product_type"])
    holdings["opened_at"] = pd.to_datetime([as_of - timedelta(days=400)] * len(holdings), utc=True)
    holdings["amount"] = rng.gamma(2.0, 20_000, len(holdings)).round(2)
    holdings.to_parquet(out / "holdings.parquet", index=False)

    per_customer = 12
    cust = np.repeat(np.arange(n), per_customer)
    seconds = rng.integers(0, 180 * 86_400, len(cust))
    kinds = rng.choice(EVENT_TYPES, len(cust))
    events = pd.DataFrame(
        {
            "event_id": [f"E{i:012d}" for i in range(len(cust))],
            "customer_id": [ids[i] for i in cust],
            "event_type": kinds,
            "event_timestamp": pd.to_datetime([as_of - timedelta(seconds=int(s)) for s in seconds], utc=True),
            "amount": np.where(
                np.isin(kinds, ["salary_credited", "large_inbound_transfer", "aum_drop"]), 5000.0, np.nan
            ),
        }
    )
    events.to_parquet(out / "events.parquet", index=False)

    cust = np.repeat(np.arange(n), per_customer)
    seconds = rng.integers(0, 180 * 86_400, len(cust))
    interactions = pd.DataFrame(
        {
            "customer_id": [ids[i] for i in cust],
            "product_id": rng.choice([p for p, _ in PRODUCTS], len(cust)),
            "interaction_type": rng.choice(["impression", "impression", "click", "purchase"], len(cust)),
            "channel": rng.choice(list(CHANNELS), len(cust)),
            "event_timestamp": pd.to_datetime([as_of - timedelta(seconds=int(s)) for s in seconds], utc=True),
        }
    )
    interactions.to_parquet(out / "interactions.parquet", index=False)
    (out / "manifest.json").write_text(
        json.dumps({"seed": seed_, "customers": n, "as_of": as_of.isoformat()})
    )
    return out


@pytest.fixture(autouse=True)
def _logging_to_current_stdout() -> Iterator[None]:
    """Re-bind logging after each test: one that captured stdout must not leave it bound to a closed file."""
    yield
    configure_logging("profile")


@pytest.fixture(scope="session")
def as_of() -> datetime:
    """The fixture bank's as-of: now, so that the API's clock and the data agree."""
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="session")
def bank_dir(tmp_path_factory: pytest.TempPathFactory, as_of: datetime) -> Path:
    """A 30-customer synthetic bank."""
    return write_bank(tmp_path_factory.mktemp("bank"), 30, as_of)


@pytest.fixture
def settings(tmp_path: Path) -> ProfileSettings:
    return ProfileSettings(
        database_url=f"sqlite:///{tmp_path}/profile.db",
        auth_tokens_file=TOKENS,
        environment="test",  # type: ignore[arg-type]
        feast_push_enabled=False,
    )


@pytest.fixture
def database(settings: ProfileSettings) -> Iterator[Database]:
    db = Database(settings.database_url)
    Base.metadata.create_all(db.engine)
    yield db
    db.dispose()


@pytest.fixture
def seeded(database: Database, bank_dir: Path) -> Database:
    with database.session() as session:
        seed(session, bank_dir)
    return database


@pytest.fixture(params=SQLITE_AND_POSTGRES)
def seeded_any(request: pytest.FixtureRequest, tmp_path: Path, bank_dir: Path) -> Iterator[Database]:
    """The seeded fixture bank on SQLite and on PostgreSQL (skips or fails as qianmian_core.testing says)."""
    with empty_database_url(request.param, tmp_path, "profile_seeded") as url:
        db = Database(url)
        Base.metadata.create_all(db.engine)
        with db.session() as session:
            seed(session, bank_dir)
        yield db
        db.dispose()


@pytest.fixture
def pusher() -> RecordingPusher:
    return RecordingPusher()


@pytest.fixture
def client(settings: ProfileSettings, seeded: Database, pusher: RecordingPusher) -> Iterator[TestClient]:
    app = create_app(settings, pusher=pusher)
    app.state.db.dispose()
    app.state.db = seeded
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def headers() -> Callable[[str], dict[str, str]]:
    """Authorization headers of a dev client from config/dev-tokens.yaml."""
    return lambda client: auth_headers(client, str(TOKENS))


@pytest.fixture
def error() -> Callable[..., dict[str, object]]:
    return assert_error
