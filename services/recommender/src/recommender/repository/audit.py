"""The decision audit log: append-only rows that a replay reads back exactly as they were written.

Personal identifiers never reach the log. Customer ids must be pseudonymous: one that looks like a
mobile, resident ID or card number is refused (:class:`NotPseudonymousError`). Free text inside the
JSON parts (a request's note, a feature's string value) is masked with
``qianmian_core.masking.mask_value`` before it is written, so a stray phone number in a request is
stored as ``138****5678``. :meth:`AuditRecord.prepared` does both and normalises the JSON (tuples
become lists), so the record a caller keeps equals, field for field, the one read back later;
:meth:`AuditRecord.stored_row` does both too and encodes each JSON part once, for the insert.

Schema 2 stores each candidate's verdict as its failed rules only (``failed: {rule: [codes]}``; every
candidate is judged by every rule, so the passed ones are implied): a decision weighs ~40 candidates
under 10 rules, and listing the 400 outcomes was four fifths of the record and most of the cost of
writing it. Records are read back with every rule listed (``outcomes``), whatever their schema.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any, Final

import orjson
from qianmian_core.masking import contains_identifier, mask_text, mask_value
from qianmian_core.memo import IdentityMemo
from sqlalchemy import Table, func, insert, select
from sqlalchemy.orm import Session

from recommender.bounds import WARM_ENTRIES
from recommender.models import Decision

#: Version of the JSON layout of the record's parts; replay refuses versions it does not know.
#: 1: verdicts list every rule's outcome; 2: verdicts keep only the failed rules (read back expanded).
AUDIT_SCHEMA_VERSION: Final[int] = 2
#: The versions this code reads.
KNOWN_SCHEMA_VERSIONS: Final[frozenset[int]] = frozenset({1, 2})


#: Every rule a candidate is judged by, in evaluation order
#: (``recommender.service.policies.evaluate_candidate``; a test holds the two together).
RULE_ORDER: Final[tuple[str, ...]] = (
    "eligibility",
    "suitability",
    "holdings",
    "channel",
    "consent",
    "quiet_hours",
    "contact_cap",
    "cooldown",
    "content",
    "right",
)


def expand_verdict(stored: Mapping[str, object]) -> dict[str, object]:
    """A stored verdict (``CandidateVerdict.stored_json``, ``failed`` key) with its ``outcomes``
    listed rule by rule, as ``CandidateVerdict.as_json`` gives them; other keys are kept."""
    out = {k: v for k, v in stored.items() if k != "failed"}
    failed = stored["failed"]
    assert isinstance(failed, Mapping)
    out["outcomes"] = [
        {"rule": rule, "passed": rule not in failed, "codes": list(failed.get(rule, ()))}
        for rule in RULE_ORDER
    ]
    return out


#: The ``decisions`` table (Core inserts).
_DECISIONS: Final[Table] = Decision.__table__  # type: ignore[assignment]
_INSERT_DECISIONS: Final = insert(_DECISIONS)


class NotPseudonymousError(ValueError):
    """A customer id that looks like a personal identifier (phone, ID or card number)."""


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """Everything needed to explain and replay one decision."""

    decision_id: str
    created_at: datetime
    customer_id: str
    channel: str
    placement: str
    mode: str
    model_version: str | None
    experiment_id: str | None
    experiment_arm: str | None
    request: dict[str, Any]
    #: Feature values with their event timestamps (ISO strings), as the decision saw them.
    features: dict[str, Any]
    #: Every candidate with its score and rule outcomes, in the order they were considered: the
    #: entries, or the entries encoded (what ``pipeline.audit_candidates`` gives).
    candidates: list[Any] | orjson.Fragment
    response: dict[str, Any]
    schema_version: int = AUDIT_SCHEMA_VERSION

    def prepared(self) -> AuditRecord:
        """The record as it will be stored: identifiers checked and masked, JSON normalised."""
        self._check()
        return replace(
            self,
            request=_json(self.request),
            features=_json(self.features),
            # Candidates are made by the pipeline from product ids, reason codes, scores and content
            # ids: no free text reaches them, so they are normalised without the masking walk (which
            # cost more than the rest of a decision).
            candidates=_json(self.candidates, mask=False),
            response=_json(self.response),
        )

    def _check(self) -> None:
        check_customer_id(self.customer_id)
        if self.created_at.tzinfo is None:
            raise ValueError("created_at must carry a time zone")

    def stored_row(self) -> dict[str, Any]:
        """Column values of the ``decisions`` row: identifiers checked, free text masked, and each JSON
        part encoded once (an ``orjson.Fragment`` the column's serializer passes through as it is).

        ``candidates`` must be in this schema's layout
        (:func:`~recommender.service.pipeline.audit_candidates`).
        """
        self._check()
        row = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("request", "features", "response"):
            value = row[name]
            row[name] = orjson.Fragment(
                orjson.dumps(mask_value(value) if contains_identifier(value) else value)
            )
        candidates = self.candidates
        row["candidates"] = (
            candidates
            if isinstance(candidates, orjson.Fragment)
            else orjson.Fragment(orjson.dumps(candidates))
        )
        return row


#: Encoded record parts that many records share, per owner object (see :func:`shared_part`).
_SHARED_PARTS: IdentityMemo[orjson.Fragment] = IdentityMemo(2 * WARM_ENTRIES)


def shared_part(owner: object, make: Callable[[], Any]) -> orjson.Fragment:
    """A part of a record's JSON that many records share, masked where it must be and encoded once per
    ``owner`` (``make`` builds it the first time).

    For parts that cannot change while ``owner`` lives: a cached feature snapshot's values, a kept
    ranker rescoring, a configuration. :meth:`AuditRecord.stored_row` writes the bytes as they are,
    and masking skips them (they were checked here).
    """
    part = _SHARED_PARTS.get((owner,))
    if part is None:
        value = make()
        part = orjson.Fragment(orjson.dumps(mask_value(value) if contains_identifier(value) else value))
        _SHARED_PARTS.put((owner,), None, part)
    return part


def check_customer_id(customer_id: str) -> None:
    """Raise :class:`NotPseudonymousError` when ``customer_id`` looks like a personal identifier."""
    if mask_text(customer_id) != customer_id:
        raise NotPseudonymousError("customer_id looks like a personal identifier; use the pseudonymous id")


def _json(value: Any, *, mask: bool = True) -> Any:
    """``value`` masked (unless ``mask`` is off) and normalised to what JSON holds.

    orjson refuses what JSON cannot hold (sets raise; NaN becomes null) before the database sees it.
    """
    return orjson.loads(orjson.dumps(mask_value(value) if mask else value))


def _candidates(row: Decision) -> list[Any]:
    """The row's candidates with every rule's outcome listed (schema 2 stores the failed ones only)."""
    if row.schema_version < 2:
        return row.candidates
    return [expand_verdict(c) if isinstance(c, Mapping) and "failed" in c else c for c in row.candidates]


def _record(row: Decision) -> AuditRecord:
    return AuditRecord(
        decision_id=row.decision_id,
        created_at=row.created_at,
        customer_id=row.customer_id,
        channel=row.channel,
        placement=row.placement,
        mode=row.mode,
        model_version=row.model_version,
        experiment_id=row.experiment_id,
        experiment_arm=row.experiment_arm,
        request=row.request,
        features=row.features,
        candidates=_candidates(row),
        response=row.response,
        schema_version=row.schema_version,
    )


class AuditRepository:
    """Appends and reads audit records inside the caller's session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def append_many(self, records: Sequence[AuditRecord]) -> None:
        """Insert records (one multi-row INSERT; :meth:`AuditRecord.stored_row` checks, masks and
        encodes each); a duplicate decision id fails the batch."""
        if records:
            # Core's executemany (the table, not the mapped class): the ORM's bulk path cost as much
            # again as the insert itself.
            self.session.connection().execute(_INSERT_DECISIONS, [r.stored_row() for r in records])

    def get(self, decision_id: str) -> AuditRecord | None:
        """The stored record of one decision, or None."""
        row = self.session.get(Decision, decision_id)
        return None if row is None else _record(row)

    def for_customer(self, customer_id: str, limit: int = 100) -> list[AuditRecord]:
        """The customer's most recent decisions, newest first."""
        rows = self.session.execute(
            select(Decision)
            .where(Decision.customer_id == customer_id)
            .order_by(Decision.created_at.desc(), Decision.decision_id)
            .limit(limit)
        ).scalars()
        return [_record(row) for row in rows]

    def count(self) -> int:
        """How many decisions the log holds."""
        return int(self.session.execute(select(func.count()).select_from(Decision)).scalar_one())
