"""The repository on both dialects we ship: SQLite (embedded) and PostgreSQL (production)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from content_hub.database import migrate
from content_hub.errors import ContentExistsError, OpenVersionExistsError
from content_hub.models import ContentItem, ContentVersion
from content_hub.repository import ContentRepository
from qianmian_core.db import Database
from qianmian_core.testing import SQLITE_AND_POSTGRES, migrated_database
from sqlalchemy.exc import IntegrityError

T0 = datetime(2030, 1, 1, 8, tzinfo=timezone(timedelta(hours=8)))


@pytest.fixture(params=SQLITE_AND_POSTGRES)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    with migrated_database(request.param, tmp_path, "content_hub_repo", migrate) as db:
        yield db


def item(content_id: str = "C1") -> ContentItem:
    return ContentItem(content_id=content_id, created_by="console-alice", created_at=T0, latest_version=1)


def version(content_id: str = "C1", number: int = 1, **overrides: object) -> ContentVersion:
    values: dict[str, object] = {
        "content_id": content_id,
        "version": number,
        "status": "draft",
        "title": "稳健理财",
        "product_id": "WM-R2-90",
        "right_id": None,
        "segments": ["wealth"],
        "variants": {"push": {"title": "新品", "body": "理财非存款、产品有风险、投资须谨慎"}},
        "valid_from": T0,
        "valid_until": None,
        "author": "console-alice",
        "approved_by": None,
        "approved_at": None,
        "created_at": T0,
        "updated_at": T0,
    }
    values.update(overrides)
    return ContentVersion(**values)


def test_round_trip_keeps_json_unicode_and_aware_timestamps(database: Database) -> None:
    with database.session() as session:
        repo = ContentRepository(session)
        repo.add_item(item())
        repo.add_version(version())
    with database.session() as session:
        stored = ContentRepository(session).get_version("C1", 1)
        assert stored is not None
        assert stored.variants["push"]["body"] == "理财非存款、产品有风险、投资须谨慎"
        assert stored.segments == ["wealth"]
        assert stored.valid_from == T0
        assert stored.valid_from is not None
        assert stored.valid_from.tzinfo is not None
        assert ContentRepository(session).get_version("C1", 2) is None


def test_duplicates_are_refused(database: Database) -> None:
    with database.session() as session:
        repo = ContentRepository(session)
        repo.add_item(item())
        repo.add_version(version())
    with pytest.raises(ContentExistsError), database.session() as session:
        ContentRepository(session).add_item(item())
    with pytest.raises(OpenVersionExistsError), database.session() as session:
        ContentRepository(session).add_version(version())


def test_version_numbers_are_claimed_once(database: Database) -> None:
    with database.session() as session:
        ContentRepository(session).add_item(item())
    with database.session() as session:
        repo = ContentRepository(session)
        assert repo.claim_next_version("C1", 1)
        assert not repo.claim_next_version("C1", 1)  # a concurrent claimer saw the old number
    with database.session() as session:
        stored = ContentRepository(session).get_item("C1")
        assert stored is not None
        assert stored.latest_version == 2


def test_conditional_status_updates_and_history(database: Database) -> None:
    with database.session() as session:
        repo = ContentRepository(session)
        repo.add_item(item())
        repo.add_version(version())
        repo.add_version(version(number=2, status="approved", approved_by="console-bob", approved_at=T0))
    with database.session() as session:
        repo = ContentRepository(session)
        assert not repo.update_version_if_status("C1", 1, "in_review", {"status": "approved"})
        assert repo.update_version_if_status("C1", 1, "draft", {"status": "in_review"})
        now = datetime.now(UTC)
        repo.add_transition(
            content_id="C1",
            version=1,
            from_status="draft",
            to_status="in_review",
            actor="a",
            comment=None,
            at=now,
        )
    with database.session() as session:
        repo = ContentRepository(session)
        assert [v.version for v in repo.versions("C1", statuses=["approved"])] == [2]
        assert [v.status for v in repo.versions("C1")] == ["in_review", "approved"]
        assert [t.to_status for t in repo.transitions("C1")] == ["in_review"]
        assert [v.version for v in repo.find_versions(statuses=["approved"], product_id="WM-R2-90")] == [2]
        assert repo.find_versions(right_id="RT-X") == []


def test_the_database_enforces_maker_checker_and_links(database: Database) -> None:
    with database.session() as session:
        ContentRepository(session).add_item(item())
    with pytest.raises(IntegrityError), database.session() as session:
        ContentRepository(session).add_version(version(approved_by="console-alice"))
    with pytest.raises(IntegrityError), database.session() as session:
        ContentRepository(session).add_version(version(product_id=None, right_id=None))
