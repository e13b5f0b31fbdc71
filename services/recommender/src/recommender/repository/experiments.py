"""Experiment definitions, their history, sticky assignments, exposures and attributed conversions.

Assignments are written with ``INSERT … ON CONFLICT DO NOTHING`` on (experiment, customer) and read
back, so of concurrent first assignments of one customer exactly one arm is stored and every caller
returns it. Starting an experiment reserves a range of its layer's buckets under a per-layer lock
(PostgreSQL: a transaction-level advisory lock; SQLite: the ``BEGIN IMMEDIATE`` write lock), so two
experiments starting at once in one layer cannot take overlapping ranges.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from qianmian_core.db import insert_ignoring_conflicts, update_one
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from recommender.models import (
    Experiment,
    ExperimentArm,
    ExperimentAssignment,
    ExperimentConversion,
    ExperimentExposure,
    ExperimentHistory,
    Feedback,
)


@dataclass(frozen=True, slots=True)
class ArmRecord:
    """One arm as stored."""

    name: str
    position: int
    weight: float
    changes: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ExperimentRecord:
    """One experiment as stored, its arms in position order (the first is the control)."""

    experiment_id: str
    name: str
    hypothesis: str
    primary_metric: str
    guardrail_metrics: list[dict[str, Any]]
    layer: str
    traffic: float
    bucket_start: int | None
    bucket_end: int | None
    population: dict[str, Any]
    salt: str
    status: str
    author: str
    approver: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    stopped_at: datetime | None
    version: int
    arms: tuple[ArmRecord, ...]
    allocation: str = "fixed"
    exploration_floor: float = 0.05


@dataclass(frozen=True, slots=True)
class HistoryRecord:
    """One change of an experiment."""

    action: str
    from_status: str | None
    to_status: str
    actor: str
    at: datetime
    note: str | None
    detail: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class ExposureRecord:
    """The latest exposure of a customer in one experiment (for attribution)."""

    experiment_id: str
    arm: str
    decision_id: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class CustomerExposure:
    """One exposed customer of an experiment: arm, impressions, when first assigned."""

    customer_id: str
    arm: str
    impressions: int
    assigned_at: datetime | None


@dataclass(frozen=True, slots=True)
class CustomerOutcome:
    """One customer's attributed outcomes of one kind: how many, total value, rights cost and margin."""

    customer_id: str
    arm: str
    kind: str
    count: int
    value: int
    cost_fen: int
    margin_fen: int = 0


def _record(row: Experiment, arms: Sequence[ExperimentArm]) -> ExperimentRecord:
    return ExperimentRecord(
        experiment_id=row.experiment_id,
        name=row.name,
        hypothesis=row.hypothesis,
        primary_metric=row.primary_metric,
        guardrail_metrics=list(row.guardrail_metrics),
        layer=row.layer,
        traffic=row.traffic,
        bucket_start=row.bucket_start,
        bucket_end=row.bucket_end,
        population=dict(row.population),
        salt=row.salt,
        status=row.status,
        author=row.author,
        approver=row.approver,
        created_at=row.created_at,
        updated_at=row.updated_at,
        started_at=row.started_at,
        stopped_at=row.stopped_at,
        version=row.version,
        arms=tuple(
            ArmRecord(a.name, a.position, a.weight, dict(a.changes))
            for a in sorted(arms, key=lambda a: a.position)
        ),
        allocation=row.allocation,
        exploration_floor=row.exploration_floor,
    )


def _layer_lock_key(layer: str) -> int:
    """A signed 64-bit key for ``pg_advisory_xact_lock`` of a layer."""
    return int.from_bytes(
        hashlib.sha256(f"experiment-layer:{layer}".encode()).digest()[:8], "big", signed=True
    )


class ExperimentRepository:
    """Queries on the experiment tables inside the caller's session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # --- definitions ---

    def create(self, experiment: Experiment, arms: Iterable[ExperimentArm]) -> None:
        """Store a new experiment and its arms."""
        self.session.add(experiment)
        self.session.flush()
        self.session.add_all(list(arms))
        self.session.flush()

    def _with_arms(self, rows: Sequence[Experiment]) -> list[ExperimentRecord]:
        if not rows:
            return []
        ids = [r.experiment_id for r in rows]
        arms: dict[str, list[ExperimentArm]] = {i: [] for i in ids}
        for arm in self.session.execute(
            select(ExperimentArm).where(ExperimentArm.experiment_id.in_(ids))
        ).scalars():
            arms[arm.experiment_id].append(arm)
        return [_record(r, arms[r.experiment_id]) for r in rows]

    def get(self, experiment_id: str) -> ExperimentRecord | None:
        """One experiment, or None."""
        row = self.session.execute(
            select(Experiment)
            .where(Experiment.experiment_id == experiment_id)
            .execution_options(populate_existing=True)
        ).scalar_one_or_none()
        return None if row is None else self._with_arms([row])[0]

    def list_by_status(self, status: str | None = None) -> list[ExperimentRecord]:
        """Experiments, newest first (optionally of one status)."""
        query = select(Experiment).order_by(Experiment.created_at.desc(), Experiment.experiment_id)
        if status is not None:
            query = query.where(Experiment.status == status)
        return self._with_arms(self.session.execute(query).scalars().all())

    def update_if(self, experiment_id: str, *, version: int, values: Mapping[str, Any]) -> bool:
        """Update the experiment when it is still at ``version`` (bumping it); False otherwise."""
        return update_one(
            self.session,
            update(Experiment)
            .where(Experiment.experiment_id == experiment_id, Experiment.version == version)
            .values(**values, version=version + 1),
        )

    def set_weights(self, experiment_id: str, weights: Mapping[str, float]) -> None:
        """Set the arms' weights (the caller has just won :meth:`update_if` on the experiment)."""
        for name, weight in weights.items():
            self.session.execute(
                update(ExperimentArm)
                .where(ExperimentArm.experiment_id == experiment_id, ExperimentArm.name == name)
                .values(weight=weight)
            )

    def lock_layer(self, layer: str) -> None:
        """Serialise bucket reservations in ``layer`` until the transaction ends."""
        if self.session.get_bind().dialect.name == "postgresql":
            self.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _layer_lock_key(layer)})

    def taken_ranges(self, layer: str) -> list[tuple[int, int]]:
        """The bucket ranges running experiments of ``layer`` hold."""
        rows = self.session.execute(
            select(Experiment.bucket_start, Experiment.bucket_end).where(
                Experiment.layer == layer,
                Experiment.status == "running",
                Experiment.bucket_start.is_not(None),
            )
        ).all()
        return [(int(start or 0), int(end or 0)) for start, end in rows]

    def append_history(
        self,
        experiment_id: str,
        *,
        action: str,
        from_status: str | None,
        to_status: str,
        actor: str,
        at: datetime,
        note: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Record a change of the experiment."""
        self.session.add(
            ExperimentHistory(
                experiment_id=experiment_id,
                action=action,
                from_status=from_status,
                to_status=to_status,
                actor=actor,
                at=at,
                note=note,
                detail=detail,
            )
        )
        self.session.flush()

    def history(self, experiment_id: str) -> list[HistoryRecord]:
        """The experiment's changes, oldest first."""
        rows = self.session.execute(
            select(ExperimentHistory)
            .where(ExperimentHistory.experiment_id == experiment_id)
            .order_by(ExperimentHistory.history_id)
        ).scalars()
        return [
            HistoryRecord(r.action, r.from_status, r.to_status, r.actor, r.at, r.note, r.detail) for r in rows
        ]

    # --- assignments ---

    def stored_arms(self, customer_id: str, experiment_ids: Sequence[str]) -> dict[str, str]:
        """The customer's stored arms in ``experiment_ids``: experiment id → arm."""
        if not experiment_ids:
            return {}
        rows = self.session.execute(
            select(ExperimentAssignment.experiment_id, ExperimentAssignment.arm).where(
                ExperimentAssignment.customer_id == customer_id,
                ExperimentAssignment.experiment_id.in_(list(experiment_ids)),
            )
        ).all()
        return {str(e): str(a) for e, a in rows}

    def store_first_arm(self, experiment_id: str, customer_id: str, arm: str, at: datetime) -> str:
        """Store ``arm`` unless an arm is stored already; the stored arm either way."""
        self.session.execute(
            insert_ignoring_conflicts(
                self.session,
                ExperimentAssignment,
                {"experiment_id": experiment_id, "customer_id": customer_id, "arm": arm, "assigned_at": at},
                index_elements=["experiment_id", "customer_id"],
            )
        )
        stored = self.session.execute(
            select(ExperimentAssignment.arm).where(
                ExperimentAssignment.experiment_id == experiment_id,
                ExperimentAssignment.customer_id == customer_id,
            )
        ).scalar_one()
        return str(stored)

    def assignment_counts(self, experiment_id: str) -> dict[str, int]:
        """Customers assigned per arm."""
        rows = self.session.execute(
            select(ExperimentAssignment.arm, func.count())
            .where(ExperimentAssignment.experiment_id == experiment_id)
            .group_by(ExperimentAssignment.arm)
        ).all()
        return {str(arm): int(n) for arm, n in rows}

    # --- exposures and conversions ---

    def add_exposure(
        self,
        *,
        experiment_id: str,
        arm: str,
        customer_id: str,
        decision_id: str | None,
        channel: str,
        at: datetime,
    ) -> None:
        """Record one exposure."""
        self.session.add(
            ExperimentExposure(
                experiment_id=experiment_id,
                arm=arm,
                customer_id=customer_id,
                decision_id=decision_id,
                channel=channel,
                at=at,
            )
        )
        self.session.flush()

    def latest_exposures(
        self, customer_id: str, *, since: datetime, until: datetime, experiment_id: str | None = None
    ) -> list[ExposureRecord]:
        """Per experiment, the customer's latest exposure with ``since <= at <= until``."""
        query = (
            select(ExperimentExposure)
            .where(
                ExperimentExposure.customer_id == customer_id,
                ExperimentExposure.at >= since,
                ExperimentExposure.at <= until,
            )
            .order_by(ExperimentExposure.at.desc(), ExperimentExposure.exposure_id.desc())
        )
        if experiment_id is not None:
            query = query.where(ExperimentExposure.experiment_id == experiment_id)
        latest: dict[str, ExposureRecord] = {}
        for row in self.session.execute(query).scalars():
            if row.experiment_id not in latest:
                latest[row.experiment_id] = ExposureRecord(
                    row.experiment_id, row.arm, row.decision_id, row.at
                )
        return list(latest.values())

    def add_conversion(
        self,
        *,
        experiment_id: str,
        arm: str,
        customer_id: str,
        decision_id: str | None,
        kind: str,
        value: int | None,
        cost_fen: int | None,
        at: datetime,
        margin_fen: int | None = None,
    ) -> None:
        """Record one attributed outcome."""
        self.session.add(
            ExperimentConversion(
                experiment_id=experiment_id,
                arm=arm,
                customer_id=customer_id,
                decision_id=decision_id,
                kind=kind,
                value=value,
                cost_fen=cost_fen,
                margin_fen=margin_fen,
                at=at,
            )
        )
        self.session.flush()

    def arm_counts(self, experiment_id: str) -> dict[str, tuple[int, int]]:
        """Per arm: ``(exposures, attributed clicks)`` so far (what a content bandit learns from)."""
        exposures = dict(
            self.session.execute(
                select(ExperimentExposure.arm, func.count())
                .where(ExperimentExposure.experiment_id == experiment_id)
                .group_by(ExperimentExposure.arm)
            ).all()
        )
        clicks = dict(
            self.session.execute(
                select(ExperimentConversion.arm, func.count())
                .where(
                    ExperimentConversion.experiment_id == experiment_id, ExperimentConversion.kind == "click"
                )
                .group_by(ExperimentConversion.arm)
            ).all()
        )
        return {
            str(arm): (int(exposures.get(arm, 0)), int(clicks.get(arm, 0)))
            for arm in set(exposures) | set(clicks)
        }

    def exposed_customers(self, experiment_id: str) -> list[CustomerExposure]:
        """Every exposed customer with their arm, impressions and first assignment time."""
        rows = self.session.execute(
            select(
                ExperimentExposure.customer_id,
                ExperimentExposure.arm,
                func.count(),
                func.min(ExperimentAssignment.assigned_at),
            )
            .join(
                ExperimentAssignment,
                (ExperimentAssignment.experiment_id == ExperimentExposure.experiment_id)
                & (ExperimentAssignment.customer_id == ExperimentExposure.customer_id),
                isouter=True,
            )
            .where(ExperimentExposure.experiment_id == experiment_id)
            .group_by(ExperimentExposure.customer_id, ExperimentExposure.arm)
        ).all()
        return [
            CustomerExposure(str(customer), str(arm), int(n), _as_utc(assigned))
            for customer, arm, n, assigned in rows
        ]

    def outcomes(self, experiment_id: str) -> list[CustomerOutcome]:
        """Per customer and kind: attributed outcomes, total value, rights cost and margin."""
        rows = self.session.execute(
            select(
                ExperimentConversion.customer_id,
                ExperimentConversion.arm,
                ExperimentConversion.kind,
                func.count(),
                func.coalesce(func.sum(ExperimentConversion.value), 0),
                func.coalesce(func.sum(ExperimentConversion.cost_fen), 0),
                func.coalesce(func.sum(ExperimentConversion.margin_fen), 0),
            )
            .where(ExperimentConversion.experiment_id == experiment_id)
            .group_by(ExperimentConversion.customer_id, ExperimentConversion.arm, ExperimentConversion.kind)
        ).all()
        return [
            CustomerOutcome(
                str(customer), str(arm), str(kind), int(n), int(value or 0), int(cost or 0), int(margin or 0)
            )
            for customer, arm, kind, n, value, cost, margin in rows
        ]

    def pre_period_values(self, experiment_id: str, *, since: datetime, until: datetime) -> dict[str, int]:
        """Per exposed customer, the converted amount recorded by feedback in ``[since, until)``
        (the CUPED covariate: behaviour before the experiment could influence it)."""
        exposed = (
            select(ExperimentExposure.customer_id)
            .where(ExperimentExposure.experiment_id == experiment_id)
            .scalar_subquery()
        )
        rows = self.session.execute(
            select(Feedback.customer_id, func.coalesce(func.sum(Feedback.value), 0))
            .where(
                Feedback.event == "convert",
                Feedback.at >= since,
                Feedback.at < until,
                Feedback.customer_id.in_(exposed),
            )
            .group_by(Feedback.customer_id)
        ).all()
        return {str(customer): int(value or 0) for customer, value in rows}


def _as_utc(value: datetime | None) -> datetime | None:
    """Aggregates may bypass the column type, so SQLite's timestamps can come back naive or as text."""
    if value is None:
        return None
    if isinstance(value, str):  # SQLite may hand MIN() of a timestamp back as text
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
