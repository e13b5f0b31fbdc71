"""The decision audit log: append-only rows that a replay reads back exactly as they were written.

Personal identifiers never reach the log. Customer ids must be pseudonymous: one that looks like a
mobile, resident ID or card number is refused (:class:`NotPseudonymousError`). Free text inside the
JSON parts (a request's note, a feature's string value) is masked with
``qianmian_core.masking.mask_value`` before it is written, so a stray phone number in a request is
stored as ``138****5678``. :meth:`AuditRecord.prepared` does both and normalises the JSON (tuples
become lists), so the record a caller keeps equals, field for field, the one read back later;
:meth:`AuditRecord.stored_row` does both too and encodes each JSON part once, for the insert.

Schema 3 stores the parts that many records share (a warm customer's candidate entries and the offers
shown, a cached feature snapshot, the ranker's inputs, the configurations) once, in ``decision_parts``
by the SHA-256 of their bytes, and the record holds ``{"$part": "<digest>"}`` in their place
(:class:`SharedPart`). The candidate entries were most of a row: 18,000 decisions of the benchmark's
load took 1.26 GB of SQLite (about 70 KB each with the indexes and WAL), and writing them was most of
what auditing cost. Records are read
back with every part in place, whatever their schema; parts, like records, are never updated or
deleted.

Schema 2 stores each candidate's verdict as its failed rules only (``failed: {rule: [codes]}``; every
candidate is judged by every rule, so the passed ones are implied): a decision weighs ~40 candidates
under 10 rules, and listing the 400 outcomes was four fifths of the record and most of the cost of
writing it. Records are read back with every rule listed (``outcomes``), whatever their schema.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any, Final

import orjson
from qianmian_core.db import dialect_insert
from qianmian_core.masking import contains_identifier, mask_text, mask_value
from qianmian_core.memo import IdentityMemo
from sqlalchemy import Table, func, insert, select
from sqlalchemy.orm import Session

from recommender.bounds import WARM_ENTRIES
from recommender.models import Decision, DecisionPart

#: Version of the JSON layout of the record's parts; replay refuses versions it does not know.
#: 1: verdicts list every rule's outcome; 2: verdicts keep only the failed rules (read back expanded);
#: 3: shared parts stored once in ``decision_parts`` and referenced (read back in place).
AUDIT_SCHEMA_VERSION: Final[int] = 3
#: The versions this code reads.
KNOWN_SCHEMA_VERSIONS: Final[frozenset[int]] = frozenset({1, 2, 3})
#: The key of a reference to a stored part (``{"$part": "<sha256 hex>"}``).
PART_REF: Final = "$part"


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
_PARTS: Final[Table] = DecisionPart.__table__  # type: ignore[assignment]


class SharedPart:
    """Encoded JSON that many records share: stored once in ``decision_parts`` under the SHA-256 of
    its bytes, and referenced from each record (``{"$part": "<digest>"}``)."""

    __slots__ = ("_digest", "_reference", "encoded")

    def __init__(self, encoded: bytes) -> None:
        self.encoded = encoded
        self._digest: str | None = None
        self._reference: orjson.Fragment | None = None

    @property
    def digest(self) -> str:
        """Hex SHA-256 of the bytes (computed once)."""
        digest = self._digest
        if digest is None:
            digest = self._digest = hashlib.sha256(self.encoded).hexdigest()
        return digest

    @classmethod
    def checked(cls, value: Any) -> SharedPart:
        """``value`` masked where it must be, then encoded (for a part the caller keeps and shares)."""
        return cls(_masked_json(value))

    def reference(self) -> bytes:
        """The encoded reference that stands for the part in a record (``{"$part": "<digest>"}``)."""
        return b'{"' + PART_REF.encode() + b'":"' + self.digest.encode() + b'"}'

    def reference_fragment(self) -> orjson.Fragment:
        """:meth:`reference` for orjson, made once (a kept part is referred to by record after
        record: each record's encoding calls back for its parts)."""
        fragment = self._reference
        if fragment is None:
            fragment = self._reference = orjson.Fragment(self.reference())
        return fragment


def _masked_json(value: Any, default: Callable[[Any], Any] | None = None) -> bytes:
    """``value`` encoded, its free text masked first where it holds an identifier."""
    return orjson.dumps(mask_value(value) if contains_identifier(value) else value, default=default)


def inline_part(value: object) -> orjson.Fragment:
    """orjson's ``default``: a shared part written in place (the record as it reads back)."""
    if isinstance(value, SharedPart):
        return orjson.Fragment(value.encoded)
    raise TypeError(f"cannot encode {type(value).__name__}")


class _Referencing:
    """orjson's ``default`` for a stored row: a shared part becomes its reference, noted in ``parts``."""

    __slots__ = ("parts",)

    def __init__(self, parts: dict[str, bytes]) -> None:
        self.parts = parts

    def __call__(self, value: object) -> orjson.Fragment:
        if isinstance(value, SharedPart):
            self.parts[value.digest] = value.encoded
            return value.reference_fragment()
        raise TypeError(f"cannot encode {type(value).__name__}")

    def note(self, part: SharedPart) -> bytes:
        """``part``'s reference, the part noted in ``parts``."""
        self.parts[part.digest] = part.encoded
        return part.reference()


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
    #: entries, or the entries encoded and shared (what ``pipeline.audit_candidates`` gives).
    candidates: list[Any] | SharedPart
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

    def stored_row(self, parts: dict[str, bytes]) -> dict[str, Any]:
        """Column values of the ``decisions`` row: identifiers checked, free text masked, and each JSON
        part encoded once (an ``orjson.Fragment`` the column's serializer passes through as it is);
        each :class:`SharedPart` is written as its reference and added to ``parts`` (digest → bytes).

        ``candidates`` must be in this schema's layout
        (:func:`~recommender.service.pipeline.audit_candidates`).
        """
        self._check()
        referencing = _Referencing(parts)
        row = self._columns()
        for name in ("request", "features", "response"):
            row[name] = orjson.Fragment(_masked_json(row[name], referencing))
        row["candidates"] = orjson.Fragment(self._encoded_candidates(referencing))
        return row

    def encoded_row(self, parts: dict[str, bytes]) -> dict[str, Any]:
        """Column values with each JSON part encoded to bytes as it is, its free text *not* checked
        (the audit writer's process checks and masks it: ``audit_process.finished_row``); shared
        parts as their references, added to ``parts``."""
        referencing = _Referencing(parts)
        row = self._columns()
        for name in ("request", "features", "response"):
            row[name] = orjson.dumps(row[name], default=referencing)
        row["candidates"] = self._encoded_candidates(referencing)
        return row

    def _columns(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _COLUMNS}

    def _encoded_candidates(self, referencing: _Referencing) -> bytes:
        candidates = self.candidates
        if isinstance(candidates, SharedPart):
            return referencing.note(candidates)
        return orjson.dumps(candidates)


#: The ``decisions`` row's columns: the record's fields, in order (``dataclasses.fields`` walks the
#: class on every call, on the decision path once per record).
_COLUMNS: Final = tuple(f.name for f in fields(AuditRecord))

#: Encoded record parts that many records share, per owner object (see :func:`shared_part`).
_SHARED_PARTS: IdentityMemo[SharedPart] = IdentityMemo(2 * WARM_ENTRIES)


def shared_part(owner: object, make: Callable[[], Any]) -> SharedPart:
    """A part of a record's JSON that many records share, masked where it must be and encoded once per
    ``owner`` (``make`` builds it the first time).

    For parts that cannot change while ``owner`` lives: a cached feature snapshot's values, a kept
    ranker rescoring, a configuration. :meth:`AuditRecord.stored_row` stores it once by digest and
    writes its reference; masking skips it (it was checked here).
    """
    part = _SHARED_PARTS.get((owner,))
    if part is None:
        part = SharedPart.checked(make())
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
    return orjson.loads(orjson.dumps(mask_value(value) if mask else value, default=inline_part))


def _candidates(candidates: list[Any], schema_version: int) -> list[Any]:
    """The candidates with every rule's outcome listed (schema 2 stores the failed ones only)."""
    if schema_version < 2:
        return candidates
    return [expand_verdict(c) if isinstance(c, Mapping) and "failed" in c else c for c in candidates]


def is_part_ref(value: object) -> bool:
    """Whether ``value`` is a reference to a stored part (``{"$part": "<digest>"}``)."""
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(PART_REF), str)


#: The response keys that may refer to a stored part (the offers a warm customer is shown again).
SHARED_RESPONSE_KEYS: Final = ("bundles", "ranking")


def _references(row: Decision) -> set[str]:
    """The digests a schema-3 row refers to (its candidates, its features' values, its response's
    bundles and ranking)."""
    found: set[str] = set()
    if row.schema_version < 3:
        return found
    response = row.response or {}
    shared = [response.get(k) for k in SHARED_RESPONSE_KEYS]
    for value in (row.candidates, *(row.features or {}).values(), *shared):
        if is_part_ref(value):
            found.add(value[PART_REF])
    return found


def _resolved(value: Any, parts: Mapping[str, Any]) -> Any:
    return parts[value[PART_REF]] if is_part_ref(value) else value


def _record(row: Decision, parts: Mapping[str, Any]) -> AuditRecord:
    features = row.features
    candidates = row.candidates
    response = row.response
    if row.schema_version >= 3:
        features = {k: _resolved(v, parts) for k, v in features.items()}
        candidates = _resolved(candidates, parts)
        response = {k: _resolved(v, parts) if k in SHARED_RESPONSE_KEYS else v for k, v in response.items()}
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
        features=features,
        candidates=_candidates(candidates, row.schema_version),
        response=response,
        schema_version=row.schema_version,
    )


class AuditRepository:
    """Appends and reads audit records inside the caller's session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def append_many(self, records: Sequence[AuditRecord], stored: Container[str] = ()) -> set[str]:
        """Insert records (one multi-row INSERT; :meth:`AuditRecord.stored_row` checks, masks and
        encodes each) and the shared parts they refer to that are not in ``stored`` (parts known to be
        durable already; one already in the table is left as it is). A duplicate decision id fails the
        batch. Returns the digests of the parts written: durable once the transaction commits."""
        if not records:
            return set()
        parts: dict[str, bytes] = {}
        rows = [r.stored_row(parts) for r in records]
        new = {digest: body for digest, body in parts.items() if digest not in stored}
        return self.insert_rows(rows, new)

    def insert_rows(self, rows: Sequence[Mapping[str, Any]], parts: Mapping[str, bytes]) -> set[str]:
        """Insert finished ``decisions`` rows (JSON columns as ``orjson.Fragment``) and ``parts``
        (digest → bytes; one already in the table is left as it is), the parts stamped with the rows'
        latest time. Without rows nothing is written (no record would refer to the parts). Returns
        the digests of the parts written."""
        if not rows:
            return set()
        connection = self.session.connection()
        if parts:
            latest = max(r["created_at"] for r in rows)
            # a part already stored (same digest, same bytes: another batch or replica) is left as it is
            connection.execute(
                dialect_insert(self.session, _PARTS).on_conflict_do_nothing(index_elements=["digest"]),
                [
                    {"digest": digest, "created_at": latest, "body": orjson.Fragment(body)}
                    for digest, body in parts.items()
                ],
            )
        # Core's executemany (the table, not the mapped class): the ORM's bulk path cost as much again
        # as the insert itself.
        connection.execute(_INSERT_DECISIONS, list(rows))
        return set(parts)

    def _parts(self, rows: Sequence[Decision]) -> dict[str, Any]:
        wanted = set().union(*(_references(row) for row in rows)) if rows else set()
        if not wanted:
            return {}
        found = self.session.execute(
            select(_PARTS.c.digest, _PARTS.c.body).where(_PARTS.c.digest.in_(sorted(wanted)))
        ).all()
        parts: dict[str, Any] = {digest: body for digest, body in found}  # noqa: C416 - rows, not pairs
        lost = wanted - set(parts)
        if lost:
            raise LookupError(f"the audit log lacks {len(lost)} stored part(s): {sorted(lost)[:3]}")
        return parts

    def get(self, decision_id: str) -> AuditRecord | None:
        """The stored record of one decision, or None."""
        row = self.session.get(Decision, decision_id)
        return None if row is None else _record(row, self._parts([row]))

    def for_customer(self, customer_id: str, limit: int = 100) -> list[AuditRecord]:
        """The customer's most recent decisions, newest first."""
        rows = self.session.execute(
            select(Decision)
            .where(Decision.customer_id == customer_id)
            .order_by(Decision.created_at.desc(), Decision.decision_id)
            .limit(limit)
        ).scalars()
        listed = list(rows)
        parts = self._parts(listed)
        return [_record(row, parts) for row in listed]

    def count(self) -> int:
        """How many decisions the log holds."""
        return int(self.session.execute(select(func.count()).select_from(Decision)).scalar_one())
