"""Alembic environment of the rights hub (the shared body lives in qianmian_core.migrations)."""

from qianmian_core.migrations import run_env
from rights_hub.models import Base

run_env(Base.metadata)
