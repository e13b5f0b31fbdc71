"""One small generated bank shared by the whole bankgen test session."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from qianmian_bankgen import Manifest, generate

AS_OF = date(2026, 11, 1)
SEED = 7
CUSTOMERS = 2_000


@pytest.fixture(scope="session")
def bank(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Manifest]:
    """Directory and manifest of a 2,000-customer bank (seed 7, as-of 2026-11-01)."""
    out = tmp_path_factory.mktemp("bank")
    return out, generate(CUSTOMERS, SEED, AS_OF, out)


@pytest.fixture(scope="session")
def bank_dir(bank: tuple[Path, Manifest]) -> Path:
    return bank[0]
