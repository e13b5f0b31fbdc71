"""SQLAlchemy tables of the recommender: the decision audit log and the contact history.

``decisions`` is append-only: one row per decision, written before the decision is returned, holding
everything needed to replay it (request, feature values with their event timestamps, model version,
every candidate with its score and rule outcomes, the response). Customer ids here are the
pseudonymous ids every service uses, never a phone or ID number.

``contact_events`` is the interaction history that contact caps and cool-downs are computed from;
``contact_locks`` holds one row per customer that a cap reservation locks on PostgreSQL
(``SELECT … FOR UPDATE``), so two concurrent decisions for one customer are serialised and cannot both
pass a cap (on SQLite the transaction holds the database's write lock, and no row is written).
``cooldowns`` holds the product a customer dismissed and until when it must not be shown.

``feedback_events`` holds what ``POST /v1/feedback`` recorded (with the grant of a converted bundle's
right); ``idempotency_keys`` the stored answer of each (client, Idempotency-Key), written in the same
transaction as the effect.

``outbound_lists`` holds each outbound list's request and outcome (``POST /v1/outbound/lists``); its
rows are ordinary decisions.

``experiments`` (with ``experiment_arms`` and the ``experiment_history`` of every status and weight
change) holds A/B experiment definitions; ``experiment_assignments`` each customer's first (sticky)
arm; ``experiment_exposures`` and ``experiment_conversions`` what their analysis counts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from qianmian_core.db import UTCDateTime, in_list, naming_metadata
from qianmian_rules import CHANNELS as RULES_CHANNELS
from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: Channels a decision can be made for (issue 6's API).
CHANNELS: Final[tuple[str, ...]] = RULES_CHANNELS
#: How a decision was made: by the model, by segment-free popularity (opt-out), or degraded.
DECISION_MODES: Final[tuple[str, ...]] = ("personalised", "non_personalised", "fallback")
#: What happened to a customer in a channel: ``decision`` is a served marketing decision (the unit the
#: caps count); the others are feedback on one of its bundles.
CONTACT_KINDS: Final[tuple[str, ...]] = (
    "decision",
    "impression",
    "click",
    "dismiss",
    "accept",
    "convert",
    "redeem",
)
#: Feedback a channel reports on one bundle of a decision (``POST /v1/feedback``).
FEEDBACK_EVENTS: Final[tuple[str, ...]] = CONTACT_KINDS[1:]
#: Where the grant of a converted bundle's right stands: done, refused by rights-hub (its error code is
#: kept), or not known yet (rights-hub unreachable or answered neither; retried under the same key).
GRANT_STATUSES: Final[tuple[str, ...]] = ("granted", "pending_retry", "refused")
#: Channels an outbound list can be made for, and where a list stands (``POST /v1/outbound/lists``).
OUTBOUND_CHANNELS: Final[tuple[str, ...]] = ("push", "sms", "remote_agent")
OUTBOUND_STATUSES: Final[tuple[str, ...]] = ("building", "ready", "failed")


class Base(DeclarativeBase):
    """Declarative base of the recommender's own schema."""

    metadata = naming_metadata()


class Decision(Base):
    """The audit record of one decision (append-only; never updated or deleted by the service)."""

    __tablename__ = "decisions"
    __table_args__ = (
        CheckConstraint(in_list("channel", CHANNELS), name="channel"),
        CheckConstraint(in_list("mode", DECISION_MODES), name="mode"),
        CheckConstraint("schema_version >= 1", name="schema_version"),
        Index("ix_decisions_customer_id_created_at", "customer_id", "created_at"),
    )

    decision_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    customer_id: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    placement: Mapped[str] = mapped_column(String(64))
    mode: Mapped[str] = mapped_column(String(16))
    model_version: Mapped[str | None] = mapped_column(String(64))
    experiment_id: Mapped[str | None] = mapped_column(String(64))
    experiment_arm: Mapped[str | None] = mapped_column(String(64))
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    features: Mapped[dict[str, Any]] = mapped_column(JSON)
    candidates: Mapped[list[Any]] = mapped_column(JSON)
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    schema_version: Mapped[int] = mapped_column(Integer)


class DecisionPart(Base):
    """A part of the audit JSON that many decisions share (a warm customer's candidate entries, a
    feature snapshot, a configuration), stored once under the SHA-256 of its bytes and referenced from
    each decision as ``{"$part": "<digest>"}`` (schema 3). Append-only, like the decisions."""

    __tablename__ = "decision_parts"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: When it was first written (the newest decision of the batch that wrote it).
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    body: Mapped[Any] = mapped_column(JSON)


class ContactEvent(Base):
    """One contact or feedback event; the sliding windows of the caps are counted over these."""

    __tablename__ = "contact_events"
    __table_args__ = (
        CheckConstraint(in_list("channel", CHANNELS), name="channel"),
        CheckConstraint(in_list("kind", CONTACT_KINDS), name="kind"),
        Index("ix_contact_events_customer_id_kind_at", "customer_id", "kind", "at"),
    )

    event_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    customer_id: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    product_id: Mapped[str | None] = mapped_column(String(64))
    decision_id: Mapped[str | None] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class ContactLock(Base):
    """Per-customer row that serialises cap reservations on PostgreSQL (locked ``FOR UPDATE``).

    It holds nothing else: a customer's contacts are counted from ``contact_events`` (migration 0007
    dropped the running totals that nothing read, and that cost a page write per decision)."""

    __tablename__ = "contact_locks"

    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)


class Cooldown(Base):
    """A product the customer must not be shown again before ``until`` (after a dismiss)."""

    __tablename__ = "cooldowns"

    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    product_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    until: Mapped[datetime] = mapped_column(UTCDateTime())
    reason: Mapped[str] = mapped_column(String(32))
    decision_id: Mapped[str | None] = mapped_column(String(64))


class CatalogueSnapshot(Base):
    """A catalogue snapshot that decisions were made on, stored once per distinct content (by hash).

    A decision's audit record names its snapshot; ``recommender replay`` regenerates candidates from it.
    """

    __tablename__ = "catalogue_snapshots"

    snapshot_hash: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    products: Mapped[list[Any]] = mapped_column(JSON)


class Feedback(Base):
    """One feedback event on a decision's bundle, as ``POST /v1/feedback`` recorded it (append-only,
    except for the grant columns, which move from ``pending_retry`` to ``granted`` or ``refused``).

    The customer, channel and experiment arm are copied from the decision's audit record, never taken
    from the client; ``experiment_id``/``experiment_arm`` are what experiment analysis will count
    exposures (impressions) and conversions by.
    """

    __tablename__ = "feedback_events"
    __table_args__ = (
        CheckConstraint(in_list("channel", CHANNELS), name="channel"),
        CheckConstraint(in_list("event", FEEDBACK_EVENTS), name="event"),
        CheckConstraint(in_list("grant_status", GRANT_STATUSES), name="grant_status"),
        CheckConstraint("value IS NULL OR value >= 0", name="value_non_negative"),
        CheckConstraint("grant_attempts >= 0", name="grant_attempts_non_negative"),
        UniqueConstraint("client", "idempotency_key"),
        Index("ix_feedback_events_customer_id_at", "customer_id", "at"),
    )

    feedback_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    #: The API client and its Idempotency-Key (the key of the request that recorded this event).
    client: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str] = mapped_column(String(128))
    decision_id: Mapped[str] = mapped_column(String(64), index=True)
    customer_id: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    product_id: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(16))
    #: When it happened (the channel's clock, checked) and when the recommender recorded it.
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: E.g. the converted amount in fen.
    value: Mapped[int | None] = mapped_column(BigInteger())
    #: The end of the product's cool-down after a dismiss (the later of this one and an earlier one).
    cooldown_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    experiment_id: Mapped[str | None] = mapped_column(String(64))
    experiment_arm: Mapped[str | None] = mapped_column(String(64))
    #: The right a converted bundle carried and its grant through rights-hub (all null otherwise).
    right_id: Mapped[str | None] = mapped_column(String(64))
    grant_key: Mapped[str | None] = mapped_column(String(128))
    grant_status: Mapped[str | None] = mapped_column(String(16), index=True)
    grant_id: Mapped[str | None] = mapped_column(String(64))
    grant_error_code: Mapped[str | None] = mapped_column(String(64))
    grant_attempts: Mapped[int] = mapped_column(Integer())
    grant_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class IdempotencyRecord(Base):
    """The stored answer to one (client, Idempotency-Key): a replay gets these exact bytes back.

    Written in the same transaction as the effect it answers for; ``fingerprint`` is a digest of the
    operation and its parsed body, so the same key with another request is recognised and refused.
    """

    __tablename__ = "idempotency_keys"

    client: Mapped[str] = mapped_column(String(64), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(128), primary_key=True)
    operation: Mapped[str] = mapped_column(String(32))
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer())
    response_body: Mapped[bytes] = mapped_column(LargeBinary())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class OutboundList(Base):
    """An outbound list (push/SMS campaign or remote-banking call list): its request and outcome.

    Each row of the list is a decision in ``decisions`` (with its contact slot in ``contact_events``);
    the file itself lives under the ``outbound_dir`` setting, named by ``file_name``.
    """

    __tablename__ = "outbound_lists"
    __table_args__ = (
        CheckConstraint(in_list("channel", OUTBOUND_CHANNELS), name="channel"),
        CheckConstraint(in_list("status", OUTBOUND_STATUSES), name="status"),
        CheckConstraint(
            "row_count >= 0 AND scanned >= 0 AND rights_cost_fen >= 0 AND rights_dropped >= 0",
            name="counts_non_negative",
        ),
    )

    list_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    channel: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    created_by: Mapped[str] = mapped_column(String(64))
    #: When the list is sent (push/SMS) or its calls start (remote_agent), after quiet hours.
    scheduled_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: The validated request (scope, limits, budget, capacity) as JSON.
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    row_count: Mapped[int] = mapped_column(Integer())
    scanned: Mapped[int] = mapped_column(Integer())
    #: Customers left out, by reason code.
    excluded: Mapped[dict[str, Any]] = mapped_column(JSON)
    rights_cost_fen: Mapped[int] = mapped_column(BigInteger())
    #: Rows that kept their product but lost its right to the budget.
    rights_dropped: Mapped[int] = mapped_column(Integer())
    file_name: Mapped[str | None] = mapped_column(String(128))
    seconds: Mapped[float | None] = mapped_column(Float())
    error_code: Mapped[str | None] = mapped_column(String(64))
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


#: Where an experiment stands: draft → pending_approval → approved → running → stopped.
EXPERIMENT_STATUSES: Final[tuple[str, ...]] = ("draft", "pending_approval", "approved", "running", "stopped")
#: What the history of an experiment records.
EXPERIMENT_ACTIONS: Final[tuple[str, ...]] = ("create", "submit", "approve", "start", "stop", "weights")
#: Outcomes attributed to an experiment's exposures (impressions are the exposures themselves).
CONVERSION_KINDS: Final[tuple[str, ...]] = ("click", "convert", "opt_out", "complaint")


class Experiment(Base):
    """An A/B experiment's definition and where it stands (its arms are ``experiment_arms``).

    ``bucket_start``/``bucket_end`` are the range of the layer's buckets the experiment holds while it
    runs (reserved at start, so that experiments of one layer never share a customer); ``version``
    guards concurrent changes.
    """

    __tablename__ = "experiments"
    __table_args__ = (
        CheckConstraint(in_list("status", EXPERIMENT_STATUSES), name="status"),
        CheckConstraint("traffic > 0 AND traffic <= 1", name="traffic"),
        CheckConstraint("allocation IN ('fixed', 'thompson')", name="allocation"),
        CheckConstraint("exploration_floor >= 0 AND exploration_floor <= 0.5", name="exploration_floor"),
        CheckConstraint(
            "(bucket_start IS NULL AND bucket_end IS NULL) OR "
            "(bucket_start >= 0 AND bucket_start < bucket_end AND bucket_end <= 10000)",
            name="buckets",
        ),
        CheckConstraint("version >= 1", name="version"),
        Index("ix_experiments_layer_status", "layer", "status"),
    )

    experiment_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    hypothesis: Mapped[str] = mapped_column(String(2000))
    primary_metric: Mapped[str] = mapped_column(String(32))
    #: ``[{"metric": …, "tolerance": …}]``
    guardrail_metrics: Mapped[list[Any]] = mapped_column(JSON)
    layer: Mapped[str] = mapped_column(String(64))
    #: Share of the layer's buckets the experiment takes when it starts.
    traffic: Mapped[float] = mapped_column(Float())
    bucket_start: Mapped[int | None] = mapped_column(Integer())
    bucket_end: Mapped[int | None] = mapped_column(Integer())
    #: ``{"segments": [...], "channels": [...]}`` (empty lists: no restriction)
    population: Mapped[dict[str, Any]] = mapped_column(JSON)
    salt: Mapped[str] = mapped_column(String(64))
    #: ``fixed`` (weights, sticky arms) or ``thompson`` (content variants, daily bandit shares).
    allocation: Mapped[str] = mapped_column(String(16), server_default="fixed")
    #: ``thompson``: the share of traffic every arm keeps.
    exploration_floor: Mapped[float] = mapped_column(Float(), server_default="0.05")
    status: Mapped[str] = mapped_column(String(24), index=True)
    author: Mapped[str] = mapped_column(String(64))
    approver: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    version: Mapped[int] = mapped_column(Integer())


class ExperimentArm(Base):
    """One arm of an experiment: its weight and what it changes (position 0 is the control)."""

    __tablename__ = "experiment_arms"
    __table_args__ = (
        CheckConstraint("weight >= 0", name="weight_non_negative"),
        CheckConstraint("position >= 0", name="position_non_negative"),
    )

    experiment_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("experiments.experiment_id"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    position: Mapped[int] = mapped_column(Integer())
    weight: Mapped[float] = mapped_column(Float())
    #: ``{"model_version", "arbitration", "rights_policy", "content_variant"}``
    changes: Mapped[dict[str, Any]] = mapped_column(JSON)


class ExperimentHistory(Base):
    """One change of an experiment: creation, a status change (with who and why) or new weights."""

    __tablename__ = "experiment_history"
    __table_args__ = (
        CheckConstraint(in_list("action", EXPERIMENT_ACTIONS), name="action"),
        CheckConstraint(in_list("to_status", EXPERIMENT_STATUSES), name="to_status"),
    )

    history_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    experiment_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("experiments.experiment_id"), index=True
    )
    action: Mapped[str] = mapped_column(String(16))
    from_status: Mapped[str | None] = mapped_column(String(24))
    to_status: Mapped[str] = mapped_column(String(24))
    actor: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    note: Mapped[str | None] = mapped_column(String(500))
    #: For ``create`` and ``weights``: ``{"weights": {arm: weight}}``.
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class ExperimentAssignment(Base):
    """A customer's first arm in an experiment: kept for good, whatever the weights become later."""

    __tablename__ = "experiment_assignments"

    experiment_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("experiments.experiment_id"), primary_key=True
    )
    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    arm: Mapped[str] = mapped_column(String(32))
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ExperimentExposure(Base):
    """A decision whose response an arm shaped, for a customer (one impression of the arm)."""

    __tablename__ = "experiment_exposures"
    __table_args__ = (
        CheckConstraint(in_list("channel", CHANNELS), name="channel"),
        Index("ix_experiment_exposures_experiment_id_arm", "experiment_id", "arm"),
        Index("ix_experiment_exposures_customer_id_at", "customer_id", "at"),
    )

    exposure_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    experiment_id: Mapped[str] = mapped_column(String(40), ForeignKey("experiments.experiment_id"))
    arm: Mapped[str] = mapped_column(String(32))
    customer_id: Mapped[str] = mapped_column(String(64))
    decision_id: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class ExperimentConversion(Base):
    """An outcome (click, conversion, opt-out, complaint) attributed to the arm of an exposure of the
    same customer within the attribution window before it."""

    __tablename__ = "experiment_conversions"
    __table_args__ = (
        CheckConstraint(in_list("kind", CONVERSION_KINDS), name="kind"),
        CheckConstraint("cost_fen IS NULL OR cost_fen >= 0", name="cost_non_negative"),
        CheckConstraint("margin_fen IS NULL OR margin_fen >= 0", name="margin_non_negative"),
        Index("ix_experiment_conversions_experiment_id_arm", "experiment_id", "arm"),
    )

    conversion_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    experiment_id: Mapped[str] = mapped_column(String(40), ForeignKey("experiments.experiment_id"))
    arm: Mapped[str] = mapped_column(String(32))
    customer_id: Mapped[str] = mapped_column(String(64))
    decision_id: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    #: E.g. the converted amount in fen (AUM uplift is its mean per exposed customer against control).
    value: Mapped[int | None] = mapped_column(BigInteger())
    #: The cost of the right granted with a conversion, in fen.
    cost_fen: Mapped[int | None] = mapped_column(BigInteger())
    #: What the converted product is worth to the bank (product-hub's ``value``, the expected margin of
    #: one sale, as the decision's catalogue snapshot had it), in fen: what arbitration maximises.
    margin_fen: Mapped[int | None] = mapped_column(BigInteger())
    at: Mapped[datetime] = mapped_column(UTCDateTime())
