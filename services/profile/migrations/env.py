"""Alembic environment of the profile service (the shared body lives in qianmian_core.migrations)."""

from profile_service.models import Base
from qianmian_core.migrations import run_env

run_env(Base.metadata)
