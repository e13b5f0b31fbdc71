"""Shared dependencies: a database session per request, settings, the feature pusher, path params."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Request
from qianmian_core.db import Database
from sqlalchemy.orm import Session

from profile_service.schemas import CUSTOMER_ID_PATTERN
from profile_service.service.activity import FeaturePusher
from profile_service.settings import ProfileSettings


def _session(request: Request) -> Iterator[Session]:
    database: Database = request.app.state.db
    session = database.session_factory()
    try:
        yield session
    finally:
        # Services commit what they mean to keep; anything else is rolled back here.
        session.rollback()
        session.close()


async def _settings(request: Request) -> ProfileSettings:
    settings: ProfileSettings = request.app.state.settings
    return settings


async def _pusher(request: Request) -> FeaturePusher:
    pusher: FeaturePusher = request.app.state.pusher
    return pusher


DbSession = Annotated[Session, Depends(_session)]
Settings = Annotated[ProfileSettings, Depends(_settings)]
Pusher = Annotated[FeaturePusher, Depends(_pusher)]
CustomerIdPath = Annotated[
    str, Path(pattern=CUSTOMER_ID_PATTERN, description="Pseudonymous customer id, C + 9 digits")
]
