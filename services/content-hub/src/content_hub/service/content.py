"""Content items: authoring, the review workflow, the archive, search, screening and rendering."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
from pydantic import ValidationError
from qianmian_core.db import Database
from qianmian_core.errors import DependencyUnavailableError, UnprocessableError
from qianmian_core.logging import get_logger

from content_hub.errors import (
    CommentRequiredError,
    ComplianceFindingsError,
    ContentNotFoundError,
    IllegalTransitionError,
    MakerCheckerError,
    NotApprovedError,
    NotAuthorError,
    NotEditableError,
    OpenVersionExistsError,
    OutOfWindowError,
    RenderedTooLongError,
    VariantNotFoundError,
    VersionNotFoundError,
)
from content_hub.models import ContentItem, ContentVersion
from content_hub.profile import CustomerTraitsProvider
from content_hub.repository import ContentRepository
from content_hub.schemas import (
    ContentCreate,
    ContentFields,
    ContentHistory,
    ContentOut,
    ContentPage,
    ContentPatch,
    RenderOut,
    ScreenRequest,
    ScreenResult,
    TransitionOut,
    TransitionRequest,
    VersionOut,
    VersionSummary,
)
from content_hub.service.channels import NON_TEXT_FIELDS
from content_hub.service.placeholders import customer_values, fill
from content_hub.service.products import ProductDirectory
from content_hub.service.screening import Screener
from content_hub.service.workflow import OPEN_STATUSES, REVIEW_DECISIONS, can_transition

log = get_logger(__name__)

_FIELD_NAMES = ("title", "product_id", "right_id", "segments", "variants", "valid_from", "valid_until")
_SCRIPT_LABELS = {
    "opening": "开场白",
    "value_proposition": "产品介绍",
    "risk_statement": "风险提示",
    "closing": "结束语",
}


def utc_now() -> datetime:
    """The current time, timezone-aware."""
    return datetime.now(UTC)


def in_window(version: VersionOut, at: datetime) -> bool:
    """True when ``at`` lies in the version's validity window ``[valid_from, valid_until)``."""
    if version.valid_from is not None and at < version.valid_from:
        return False
    return version.valid_until is None or at < version.valid_until


@dataclass(frozen=True, slots=True)
class ContentFilter:
    """A content search. With status ``approved``, only versions in their validity window at ``at``."""

    product_id: str | None = None
    right_id: str | None = None
    channel: str | None = None
    segment: str | None = None
    status: str = "approved"
    at: datetime | None = None
    include_out_of_window: bool = False
    limit: int = 100
    offset: int = 0


class ContentService:
    """Business rules of the content hub; each public method is one transaction."""

    def __init__(
        self,
        database: Database,
        screener: Screener,
        products: ProductDirectory,
        profiles: CustomerTraitsProvider,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._db = database
        self.screener = screener
        self._products = products
        self._profiles = profiles
        self._clock = clock

    # -- authoring ---------------------------------------------------------------------------------

    def create(self, body: ContentCreate, *, author: str) -> VersionOut:
        """Create an item whose version 1 is a draft by ``author``."""
        content_id = body.content_id or f"CNT-{uuid.uuid4().hex[:12].upper()}"
        now = self._clock()
        with self._db.session() as session:
            repo = ContentRepository(session)
            repo.add_item(
                ContentItem(content_id=content_id, created_by=author, created_at=now, latest_version=1)
            )
            row = ContentVersion(
                content_id=content_id,
                version=1,
                status="draft",
                author=author,
                created_at=now,
                updated_at=now,
                **_columns(body),
            )
            repo.add_version(row)
            repo.add_transition(
                content_id=content_id,
                version=1,
                from_status=None,
                to_status="draft",
                actor=author,
                comment="created",
                at=now,
            )
            return _version_out(row)

    def edit_draft(self, content_id: str, version: int, patch: ContentPatch, *, actor: str) -> VersionOut:
        """Change a draft in place; only its author may, and only while it is a draft."""
        with self._db.session() as session:
            repo = ContentRepository(session)
            row = _require_version(repo, content_id, version)
            if row.status != "draft":
                raise NotEditableError(
                    f"version {version} is {row.status}; start a new version to change it",
                    details={"status": row.status},
                )
            if row.author != actor:
                raise NotAuthorError(f"only {row.author}, the author of this draft, may edit it")
            fields = _merged(row, patch)
            if not repo.update_version_if_status(
                content_id, version, "draft", {**_columns(fields), "updated_at": self._clock()}
            ):
                raise NotEditableError("the draft was submitted meanwhile; reload it")
            updated = repo.get_version(content_id, version)
            assert updated is not None
            return _version_out(updated)

    def new_version(self, content_id: str, patch: ContentPatch, *, actor: str) -> VersionOut:
        """Start a new draft version from the latest one (rework after rejection, or a change to
        approved content: the approved version keeps serving until the new one is approved)."""
        now = self._clock()
        with self._db.session() as session:
            repo = ContentRepository(session)
            item = _require_item(repo, content_id)
            latest = repo.get_version(content_id, item.latest_version)
            assert latest is not None
            if latest.status in OPEN_STATUSES:
                raise OpenVersionExistsError(
                    f"version {latest.version} is still {latest.status}",
                    details={"version": latest.version, "status": latest.status},
                )
            fields = _merged(latest, patch)
            if not repo.claim_next_version(content_id, latest.version):
                raise OpenVersionExistsError("another version was started meanwhile; reload the item")
            number = latest.version + 1
            row = ContentVersion(
                content_id=content_id,
                version=number,
                status="draft",
                author=actor,
                created_at=now,
                updated_at=now,
                **_columns(fields),
            )
            repo.add_version(row)
            repo.add_transition(
                content_id=content_id,
                version=number,
                from_status=None,
                to_status="draft",
                actor=actor,
                comment=f"new version from version {latest.version} ({latest.status})",
                at=now,
            )
            return _version_out(row)

    # -- review workflow ---------------------------------------------------------------------------

    def transition(
        self, content_id: str, version: int, request: TransitionRequest, *, actor: str
    ) -> VersionOut:
        """Submit, approve, reject or retire a version; every move is recorded with actor and time.

        Submitting and approving both screen the content: findings block the move (422).
        Approving supersedes the item's previously approved version in the same transaction.
        """
        now = self._clock()
        target = request.to
        with self._db.session() as session:
            repo = ContentRepository(session)
            row = _require_version(repo, content_id, version)
            current = row.status
            if not can_transition(current, target):
                raise IllegalTransitionError(
                    f"version {version} cannot move from {current} to {target}",
                    details={"from": current, "to": target},
                )
            if target in REVIEW_DECISIONS and actor == row.author:
                raise MakerCheckerError(
                    "the reviewer must be someone other than the author", details={"author": row.author}
                )
            if target == "rejected" and not (request.comment and request.comment.strip()):
                raise CommentRequiredError("a rejection needs a comment telling the author what to fix")
            if target in {"in_review", "approved"}:
                findings = self.screener.screen(product_id=row.product_id, variants=row.variants)
                if findings:
                    raise ComplianceFindingsError(
                        f"{len(findings)} compliance finding(s) block this content",
                        details=[f.model_dump(mode="json") for f in findings],
                    )
            values: dict[str, Any] = {"status": target, "updated_at": now}
            if target == "approved":
                values |= {"approved_by": actor, "approved_at": now}
            if not repo.update_version_if_status(content_id, version, current, values):
                raise IllegalTransitionError("the version changed meanwhile; reload it")
            repo.add_transition(
                content_id=content_id,
                version=version,
                from_status=current,
                to_status=target,
                actor=actor,
                comment=request.comment,
                at=now,
            )
            if target == "approved":
                for older in repo.versions(content_id, statuses=["approved"]):
                    if older.version != version and repo.update_version_if_status(
                        content_id, older.version, "approved", {"status": "superseded", "updated_at": now}
                    ):
                        repo.add_transition(
                            content_id=content_id,
                            version=older.version,
                            from_status="approved",
                            to_status="superseded",
                            actor=actor,
                            comment=f"superseded by version {version}",
                            at=now,
                        )
            updated = repo.get_version(content_id, version)
            assert updated is not None
            log.info("content_transition", content_id=content_id, version=version, to=target, actor=actor)
            return _version_out(updated)

    # -- reading -----------------------------------------------------------------------------------

    def get(self, content_id: str) -> ContentOut:
        """The item with its version list and the version that serves."""
        with self._db.session() as session:
            repo = ContentRepository(session)
            item = _require_item(repo, content_id)
            versions = repo.versions(content_id)
            serving = next((v.version for v in versions if v.status == "approved"), None)
            return ContentOut(
                content_id=item.content_id,
                created_by=item.created_by,
                created_at=item.created_at,
                latest_version=item.latest_version,
                serving_version=serving,
                versions=[VersionSummary.model_validate(v) for v in versions],
            )

    def get_version(self, content_id: str, version: int) -> VersionOut:
        """One version exactly as written and reviewed (the archive)."""
        with self._db.session() as session:
            return _version_out(_require_version(ContentRepository(session), content_id, version))

    def history(self, content_id: str) -> ContentHistory:
        """Every workflow move of every version of the item, oldest first."""
        with self._db.session() as session:
            repo = ContentRepository(session)
            _require_item(repo, content_id)
            return ContentHistory(
                content_id=content_id,
                transitions=[TransitionOut.model_validate(t) for t in repo.transitions(content_id)],
            )

    def search(self, query: ContentFilter) -> ContentPage:
        """Versions by status, product, right, channel and segment (approved and in window by default)."""
        at = query.at or self._clock()
        with self._db.session() as session:
            rows = ContentRepository(session).find_versions(
                statuses=[query.status], product_id=query.product_id, right_id=query.right_id
            )
            matches = []
            for row in rows:
                version = _version_out(row)
                if query.channel is not None and getattr(version.variants, query.channel) is None:
                    continue
                if query.segment is not None and version.segments and query.segment not in version.segments:
                    continue
                if (
                    query.status == "approved"
                    and not query.include_out_of_window
                    and not in_window(version, at)
                ):
                    continue
                matches.append(version)
        return ContentPage(
            items=matches[query.offset : query.offset + query.limit],
            total=len(matches),
            limit=query.limit,
            offset=query.offset,
        )

    def screen(self, request: ScreenRequest) -> ScreenResult:
        """Screen text or variants without storing anything."""
        variants = request.variants.model_dump(mode="json", exclude_none=True) if request.variants else {}
        findings = self.screener.screen(
            product_id=request.product_id, variants=variants, free_text=request.text
        )
        return ScreenResult(passed=not findings, findings=findings)

    # -- rendering ---------------------------------------------------------------------------------

    def serving(self, content_id: str, channel: str, at: datetime | None = None) -> VersionOut:
        """The version that may be served now in ``channel``: approved, in its window, with a variant."""
        at = at or self._clock()
        with self._db.session() as session:
            repo = ContentRepository(session)
            _require_item(repo, content_id)
            approved = repo.versions(content_id, statuses=["approved"])
            if not approved:
                raise NotApprovedError(
                    f"content {content_id} has no approved version", details={"content_id": content_id}
                )
            version = _version_out(approved[-1])
        if not in_window(version, at):
            raise OutOfWindowError(
                f"content {content_id} is outside its validity window",
                details={
                    "valid_from": version.valid_from.isoformat() if version.valid_from else None,
                    "valid_until": version.valid_until.isoformat() if version.valid_until else None,
                },
            )
        if getattr(version.variants, channel) is None:
            raise VariantNotFoundError(
                f"content {content_id} has no {channel} variant", details={"channel": channel}
            )
        return version

    async def render(
        self, content_id: str, channel: str, customer_id: str | None, at: datetime | None = None
    ) -> RenderOut:
        """Fill the served variant for a customer and format it for the channel.

        Without a customer (e.g. one who refused personalisation) neutral values are used. When the
        profile service is unreachable the render still succeeds with the neutral salutation and says
        so (``degraded``): a greeting is not worth failing a push over. An unknown customer is 404.
        """
        version = await anyio.to_thread.run_sync(self.serving, content_id, channel, at)
        degraded_reason: str | None = None
        traits = None
        if customer_id is not None:
            try:
                traits = await self._profiles.traits_for(customer_id)
            except DependencyUnavailableError as exc:
                degraded_reason = f"profile unavailable ({exc.message}): neutral salutation used"
                log.warning("render_degraded", content_id=content_id, reason="profile_unavailable")
        values = customer_values(
            traits.segments if traits else None, traits.lifecycle_stage if traits else None, version.segments
        )
        product = self._products.get(version.product_id) if version.product_id else None
        if product is not None:
            values |= product.values
        variant = version.variants.model_dump(mode="json", exclude_none=True)[channel]
        too_long = self.screener.lengths(channel, variant, values)
        if too_long:
            raise RenderedTooLongError(
                f"the {channel} text is too long once filled in for this customer",
                details=[f.model_dump(mode="json") for f in too_long],
            )
        fields, missing = _fill_variant(variant, values)
        if missing:
            # Screening makes this unreachable unless a product lost its facts after approval.
            raise UnprocessableError(
                "placeholders without a value", code="placeholder_unfillable", details=sorted(missing)
            )
        if channel == "sms":
            fields["text"] = self.screener.format_sms(fields["text"])
        return RenderOut(
            content_id=content_id,
            version=version.version,
            channel=channel,
            customer_id=customer_id,
            personalised=traits is not None,
            degraded=degraded_reason is not None,
            degraded_reason=degraded_reason,
            fields=fields,
            text=_as_text(channel, fields),
        )


def _fill_variant(variant: Mapping[str, Any], values: Mapping[str, str]) -> tuple[dict[str, Any], set[str]]:
    missing: set[str] = set()

    def one(text: str) -> str:
        filled, absent = fill(text, values)
        missing.update(absent)
        return filled

    fields: dict[str, Any] = {}
    for name, value in variant.items():
        if isinstance(value, str):
            fields[name] = value if name in NON_TEXT_FIELDS else one(value)
        elif isinstance(value, list):
            fields[name] = [{k: one(v) for k, v in item.items()} for item in value]
        else:
            fields[name] = value
    return fields, missing


def _as_text(channel: str, fields: Mapping[str, Any]) -> str:
    if channel == "push":
        return f"{fields['title']}\n{fields['body']}"
    if channel == "sms":
        return str(fields["text"])
    if channel == "app":
        return f"{fields['title']}\n{fields['subtitle']}"
    if channel == "mini_program":
        return f"{fields['title']}\n{fields['description']}"
    lines = [f"【{_SCRIPT_LABELS['opening']}】{fields['opening']}"]
    lines.append(f"【{_SCRIPT_LABELS['value_proposition']}】{fields['value_proposition']}")
    for i, qa in enumerate(fields.get("objection_answers", []), start=1):
        lines.append(f"【异议处理{i}】客户：{qa['objection']} 答：{qa['answer']}")
    lines.append(f"【{_SCRIPT_LABELS['risk_statement']}（必读）】{fields['risk_statement']}")
    lines.append(f"【{_SCRIPT_LABELS['closing']}】{fields['closing']}")
    return "\n".join(lines)


def _columns(fields: ContentFields) -> dict[str, Any]:
    return {
        "title": fields.title,
        "product_id": fields.product_id,
        "right_id": fields.right_id,
        "segments": list(fields.segments),
        "variants": fields.variants.model_dump(mode="json", exclude_none=True),
        "valid_from": fields.valid_from,
        "valid_until": fields.valid_until,
    }


def _merged(row: ContentVersion, patch: ContentPatch) -> ContentFields:
    current = {name: getattr(row, name) for name in _FIELD_NAMES}
    current.update(patch.changes())
    try:
        return ContentFields.model_validate(current)
    except ValidationError as exc:
        details = [
            {"loc": [str(p) for p in err["loc"]], "msg": err["msg"], "type": err["type"]}
            for err in exc.errors()
        ]
        raise UnprocessableError("the changed content is invalid", details=details) from None


def _version_out(row: ContentVersion) -> VersionOut:
    return VersionOut.model_validate(row)


def _require_item(repo: ContentRepository, content_id: str) -> ContentItem:
    item = repo.get_item(content_id)
    if item is None:
        raise ContentNotFoundError(f"content {content_id} not found", details={"content_id": content_id})
    return item


def _require_version(repo: ContentRepository, content_id: str, version: int) -> ContentVersion:
    _require_item(repo, content_id)
    row = repo.get_version(content_id, version)
    if row is None:
        raise VersionNotFoundError(
            f"content {content_id} has no version {version}",
            details={"content_id": content_id, "version": version},
        )
    return row
