"""Alembic environment of the recommender (the shared body lives in qianmian_core.migrations)."""

from qianmian_core.migrations import run_env
from recommender.models import Base

run_env(Base.metadata)
