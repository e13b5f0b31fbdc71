from __future__ import annotations

import pytest
from pydantic import ValidationError
from rights_hub.settings import RightsHubSettings


def test_defaults_are_the_documented_local_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RIGHTS_HUB_PORT", "RIGHTS_HUB_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = RightsHubSettings()
    assert (settings.port, settings.database_url, settings.service_name) == (
        8003,
        "sqlite:///var/rights-hub.db",
        "rights-hub",
    )


def test_production_refuses_sqlite_and_dev_tokens() -> None:
    with pytest.raises(ValidationError, match="SQLite"):
        RightsHubSettings(environment="production")
    with pytest.raises(ValidationError, match="dev token"):
        RightsHubSettings(environment="production", database_url="postgresql://db/rights")


def test_hold_bounds_are_checked() -> None:
    with pytest.raises(ValidationError, match="default_hold_seconds"):
        RightsHubSettings(default_hold_seconds=600, max_hold_seconds=60)
