"""profile-service migrate / seed / flush-outbox / downgrade against a SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest
from profile_service.cli import main


def test_cli_round_trip(
    tmp_path: Path, bank_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PROFILE_DATABASE_URL", f"sqlite:///{tmp_path}/cli.db")
    monkeypatch.setenv("PROFILE_FEAST_PUSH_ENABLED", "false")
    assert main(["migrate"]) == 0
    assert main(["seed", "--data", str(bank_dir)]) == 0
    assert "customers=30" in capsys.readouterr().out
    assert main(["flush-outbox"]) == 0
    assert "0 still queued" in capsys.readouterr().out
    assert main(["seed", "--data", str(tmp_path / "missing")]) == 2
    assert main(["downgrade"]) == 0


def test_bad_settings_stop_with_a_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PROFILE_PORT", "99999")
    with pytest.raises(SystemExit):
        main(["migrate"])
    assert "PROFILE_PORT" in capsys.readouterr().err
