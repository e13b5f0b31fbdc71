"""Alembic environment of the content hub (the shared body lives in qianmian_core.migrations)."""

from content_hub.models import Base
from qianmian_core.migrations import run_env

run_env(Base.metadata)
