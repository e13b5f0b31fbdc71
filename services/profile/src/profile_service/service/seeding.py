"""Seeding from the synthetic bank's parquet files (docs/data-contract.md), with bulk inserts.

Loads customers, identifiers, holdings, consent and risk (from customers.parquet), the moments
of the last 30 days and the contact history of the last 30 days (from interactions.parquet),
then derives tags and CLV by the same rules as event ingestion. The lifecycle stage is taken
from the file (the bank's view at as-of, computed over the full history); ingestion recomputes
it from then on. ``last_active_at`` is taken from the full 180 days of moments, so that the
dormant and churned rules see more than the 30 days of moments kept.

Seeding writes no ``customer_changes`` rows (one per customer would only say "everything"): it
replaces the whole schema, change feed included, before any cache of profile's answers exists. A
cache built before a re-seed is rebuilt from ``GET /v1/customers/facts``.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from qianmian_core.logging import get_logger
from sqlalchemy.orm import Session

from profile_service.models import (
    Consent,
    ContactHistory,
    Customer,
    CustomerPii,
    Event,
    Holding,
    RiskAssessment,
)
from profile_service.repository import bulk
from profile_service.schemas import MARKETING_CHANNELS, PERSONALISED
from profile_service.service import lifecycle
from profile_service.service.value import customer_value

log = get_logger(__name__)

WINDOW = timedelta(days=30)
SEED_ACTOR = "seed"
INTERACTION_ACTIONS = {"impression": "impression", "click": "click", "purchase": "convert"}
SEED_PLACEMENT = "unspecified"


@dataclass(frozen=True, slots=True)
class SeedReport:
    """Row counts per table and the time it took."""

    counts: dict[str, int]
    seconds: float
    as_of: datetime


def _ts(value: Any) -> datetime | None:
    if value is None or pd.isna(value):
        return None
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return stamp.to_pydatetime().astimezone(UTC)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return frame.to_dict("records")  # type: ignore[return-value]


def _as_of(data_dir: Path, customers: pd.DataFrame) -> datetime:
    manifest = data_dir / "manifest.json"
    if manifest.is_file():
        as_of = json.loads(manifest.read_text(encoding="utf-8")).get("as_of")
        if as_of:
            stamp = pd.Timestamp(as_of)
            return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp).to_pydatetime()
    return datetime.now(UTC).replace(microsecond=0) if customers.empty else datetime.now(UTC)


def _segments(value: Any) -> list[str]:
    if not isinstance(value, str) or not value:
        return []
    return [part.strip() for part in value.split(",") if part.strip()]


def _moments_by_customer(events: pd.DataFrame) -> dict[str, list[lifecycle.Moment]]:
    by_customer: dict[str, list[lifecycle.Moment]] = defaultdict(list)
    for cid, etype, ts, amount in zip(
        events["customer_id"], events["event_type"], events["event_timestamp"], events["amount"], strict=True
    ):
        by_customer[cid].append(
            lifecycle.Moment(etype, ts.to_pydatetime(), None if pd.isna(amount) else float(amount))
        )
    return by_customer


def _last_active(events: pd.DataFrame) -> dict[str, datetime]:
    active = events[events["event_type"].isin(lifecycle.ACTIVITY_MOMENTS)]
    if active.empty:
        return {}
    latest = active.groupby("customer_id")["event_timestamp"].max()
    return {str(cid): ts.to_pydatetime() for cid, ts in latest.items()}


def _read(data_dir: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(data_dir / f"{name}.parquet")


def _utc_column(frame: pd.DataFrame, column: str) -> None:
    stamps = pd.to_datetime(frame[column])
    frame[column] = stamps.dt.tz_localize("UTC") if stamps.dt.tz is None else stamps.dt.tz_convert("UTC")


def seed(session: Session, data_dir: Path, *, replace: bool = True) -> SeedReport:
    """Load ``data_dir`` into an empty (or, with ``replace``, emptied) profile schema and commit."""
    started = time.perf_counter()
    customers = _read(data_dir, "customers")
    pii = _read(data_dir, "customer_pii")
    holdings = _read(data_dir, "holdings")
    events = _read(data_dir, "events")
    interactions = _read(data_dir, "interactions")
    for frame, column in (
        (events, "event_timestamp"),
        (interactions, "event_timestamp"),
        (holdings, "opened_at"),
    ):
        _utc_column(frame, column)
    as_of = _as_of(data_dir, customers)
    window_start = as_of - WINDOW
    last_active = _last_active(events[events["event_timestamp"] <= as_of])
    recent_events = events[(events["event_timestamp"] >= window_start) & (events["event_timestamp"] <= as_of)]
    recent_contacts = interactions[
        (interactions["event_timestamp"] >= window_start) & (interactions["event_timestamp"] <= as_of)
    ]
    moments = _moments_by_customer(recent_events)
    holdings_count = holdings.groupby("customer_id").size().to_dict()

    if replace:
        bulk.clear(session)

    customer_rows: list[dict[str, Any]] = []
    consent_rows: list[dict[str, Any]] = []
    risk_rows: list[dict[str, Any]] = []
    for row in _records(customers):
        cid = row["customer_id"]
        since = _ts(row.get("created_at")) or as_of
        tenure = int(row["tenure_months"])
        state = lifecycle.CustomerState(
            holdings_count=int(holdings_count.get(cid, 0)),
            tenure_months=tenure,
            aum=float(row["aum"]),
            aum_90d_ago=None,
            last_active_at=last_active.get(cid),
            birth_month=int(row["birth_month"]),
        )
        stage = str(row["lifecycle_stage"])
        customer_rows.append(
            {
                "customer_id": cid,
                "age": int(row["age"]),
                "gender": str(row["gender"]),
                "birth_month": int(row["birth_month"]),
                "birth_day": int(row["birth_day"]),
                "city_tier": int(row["city_tier"]),
                "region": str(row["region"]),
                "segments": _segments(row["segments"]),
                "aum": float(row["aum"]),
                "deposits": float(row["deposits"]),
                "loans": float(row["loans"]),
                "aum_90d_ago": None,
                "lifecycle_stage": stage,
                "tenure_months": tenure,
                "customer_since": since,
                "last_active_at": last_active.get(cid),
                "tags": lifecycle.tags(state, moments.get(cid, ()), as_of),
                "clv": customer_value(
                    float(row["aum"]), float(row["deposits"]), float(row["loans"]), stage
                ).clv,
                "updated_at": as_of,
            }
        )
        for channel in MARKETING_CHANNELS:
            consent_rows.append(
                {
                    "customer_id": cid,
                    "channel": channel,
                    "granted": bool(row[f"consent_{channel}"]),
                    "updated_at": as_of,
                }
            )
        consent_rows.append(
            {
                "customer_id": cid,
                "channel": PERSONALISED,
                "granted": not bool(row["personalised_opt_out"]),
                "updated_at": as_of,
            }
        )
        level = row.get("risk_level")
        assessed, expires = _ts(row.get("risk_assessed_at")), _ts(row.get("risk_expires_at"))
        if level is not None and not pd.isna(level) and assessed is not None and expires is not None:
            risk_rows.append(
                {
                    "customer_id": cid,
                    "level": int(level),
                    "assessed_at": assessed,
                    "expires_at": expires,
                    "source": "bankgen",
                    "recorded_at": assessed,
                    "actor": SEED_ACTOR,
                }
            )

    counts: dict[str, int] = {}
    counts["customers"] = bulk.insert_rows(session, Customer, customer_rows)
    counts["customer_pii"] = bulk.insert_rows(
        session,
        CustomerPii,
        [
            {
                "customer_id": r["customer_id"],
                "name": str(r["name"]),
                "mobile": str(r["mobile"]),
                "id_number": str(r["id_number"]),
                "card_number": str(r["card_number"]),
            }
            for r in _records(pii[["customer_id", "name", "mobile", "id_number", "card_number"]])
        ],
    )
    counts["holdings"] = bulk.insert_rows(
        session,
        Holding,
        _holding_rows(holdings[["customer_id", "product_id", "product_type", "opened_at", "amount"]]),
    )
    counts["consents"] = bulk.insert_rows(session, Consent, consent_rows)
    counts["risk_assessments"] = bulk.insert_rows(session, RiskAssessment, risk_rows)
    counts["events"] = bulk.insert_rows(session, Event, list(_event_rows(recent_events, as_of)))
    counts["contact_history"] = bulk.insert_rows(
        session, ContactHistory, list(_contact_rows(recent_contacts))
    )
    session.commit()
    report = SeedReport(counts=counts, seconds=round(time.perf_counter() - started, 2), as_of=as_of)
    log.info("seeded", counts=counts, seconds=report.seconds, as_of=as_of.isoformat())
    return report


def _holding_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {
            "customer_id": cid,
            "product_id": str(pid),
            "product_type": str(ptype),
            "opened_at": opened.to_pydatetime(),
            "amount": float(amount),
        }
        for cid, pid, ptype, opened, amount in zip(
            frame["customer_id"],
            frame["product_id"],
            frame["product_type"],
            frame["opened_at"],
            frame["amount"],
            strict=True,
        )
    ]


def _event_rows(frame: pd.DataFrame, received_at: datetime) -> Iterable[dict[str, Any]]:
    for eid, cid, etype, ts, amount in zip(
        frame["event_id"],
        frame["customer_id"],
        frame["event_type"],
        frame["event_timestamp"],
        frame["amount"],
        strict=True,
    ):
        yield {
            "event_id": str(eid),
            "customer_id": cid,
            "event_type": etype,
            "occurred_at": ts.to_pydatetime(),
            "amount": None if pd.isna(amount) else float(amount),
            "attributes": {},
            "body_hash": "",
            "received_at": received_at,
        }


def _contact_rows(frame: pd.DataFrame) -> Iterable[dict[str, Any]]:
    for cid, pid, itype, channel, ts in zip(
        frame["customer_id"],
        frame["product_id"],
        frame["interaction_type"],
        frame["channel"],
        frame["event_timestamp"],
        strict=True,
    ):
        action = INTERACTION_ACTIONS.get(str(itype))
        if action is None:
            continue
        yield {
            "customer_id": cid,
            "channel": str(channel),
            "placement": SEED_PLACEMENT,
            "product_id": str(pid),
            "content_id": None,
            "decision_id": None,
            "action": action,
            "at": ts.to_pydatetime(),
        }
