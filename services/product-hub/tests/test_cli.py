from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from product_hub.cli import main
from qianmian_bankgen.catalogue import CATALOGUE
from qianmian_core.migrations import current_revision
from qianmian_core.testing import cli_environment, logging_restored

DEV_TOKENS = Path(__file__).resolve().parents[3] / "config" / "dev-tokens.yaml"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """The CLI configures logging onto the current stdout (pytest's capture): undo that afterwards."""
    with logging_restored():
        yield


@pytest.fixture
def database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    return cli_environment(monkeypatch, "PRODUCT_HUB_", f"sqlite:///{tmp_path / 'cli.db'}", DEV_TOKENS)


def test_migrate_seed_downgrade(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate"]) == 0
    assert current_revision(database_url) is not None
    assert main(["seed"]) == 0
    assert f"{len(CATALOGUE)} created" in capsys.readouterr().out
    assert main(["seed"]) == 0
    assert f"0 created, 0 activated, {len(CATALOGUE)} already in place" in capsys.readouterr().out
    assert main(["downgrade"]) == 0
    assert current_revision(database_url) is None


def test_bad_configuration_stops_with_a_clear_message(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PRODUCT_HUB_PORT", "not-a-port")
    with pytest.raises(SystemExit) as stopped:
        main(["migrate"])
    assert stopped.value.code == 2
    assert "PRODUCT_HUB_PORT" in capsys.readouterr().err


def test_unknown_command_is_refused() -> None:
    with pytest.raises(SystemExit):
        main(["explode"])
