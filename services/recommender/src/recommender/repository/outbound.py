"""Outbound lists' metadata: created ``building``, then finished ``ready`` or ``failed``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from recommender.models import OutboundList


@dataclass(frozen=True, slots=True)
class OutboundListRecord:
    """One outbound list as stored."""

    list_id: str
    name: str
    channel: str
    status: str
    created_at: datetime
    created_by: str
    scheduled_at: datetime
    request: dict[str, Any]
    row_count: int
    scanned: int
    excluded: dict[str, int]
    rights_cost_fen: int
    rights_dropped: int
    file_name: str | None
    seconds: float | None
    error_code: str | None
    finished_at: datetime | None


def _record(row: OutboundList) -> OutboundListRecord:
    return OutboundListRecord(
        list_id=row.list_id,
        name=row.name,
        channel=row.channel,
        status=row.status,
        created_at=row.created_at,
        created_by=row.created_by,
        scheduled_at=row.scheduled_at,
        request=row.request,
        row_count=row.row_count,
        scanned=row.scanned,
        excluded={str(k): int(v) for k, v in row.excluded.items()},
        rights_cost_fen=row.rights_cost_fen,
        rights_dropped=row.rights_dropped,
        file_name=row.file_name,
        seconds=row.seconds,
        error_code=row.error_code,
        finished_at=row.finished_at,
    )


class OutboundListRepository:
    """Queries on ``outbound_lists`` inside the caller's session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def create(
        self,
        *,
        list_id: str,
        name: str,
        channel: str,
        created_at: datetime,
        created_by: str,
        scheduled_at: datetime,
        request: dict[str, Any],
    ) -> None:
        """Record a list being built."""
        self.session.add(
            OutboundList(
                list_id=list_id,
                name=name,
                channel=channel,
                status="building",
                created_at=created_at,
                created_by=created_by,
                scheduled_at=scheduled_at,
                request=request,
                row_count=0,
                scanned=0,
                excluded={},
                rights_cost_fen=0,
                rights_dropped=0,
            )
        )
        self.session.flush()

    def finish(
        self,
        list_id: str,
        *,
        status: str,
        row_count: int,
        scanned: int,
        excluded: dict[str, int],
        rights_cost_fen: int,
        rights_dropped: int,
        file_name: str | None,
        seconds: float,
        finished_at: datetime,
        error_code: str | None = None,
    ) -> None:
        """Record how a list ended (``ready`` with its file, or ``failed`` with an error code)."""
        self.session.execute(
            update(OutboundList)
            .where(OutboundList.list_id == list_id)
            .values(
                status=status,
                row_count=row_count,
                scanned=scanned,
                excluded=excluded,
                rights_cost_fen=rights_cost_fen,
                rights_dropped=rights_dropped,
                file_name=file_name,
                seconds=seconds,
                finished_at=finished_at,
                error_code=error_code,
            )
        )

    def get(self, list_id: str) -> OutboundListRecord | None:
        """One list, or None."""
        row = self.session.get(OutboundList, list_id)
        return None if row is None else _record(row)
