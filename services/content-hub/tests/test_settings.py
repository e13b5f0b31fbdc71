from __future__ import annotations

from pathlib import Path

import pytest
from content_hub.settings import ContentHubSettings
from pydantic import ValidationError

DEV_TOKENS = Path(__file__).resolve().parents[3] / "config" / "dev-tokens.yaml"


def test_defaults_are_the_documented_local_ones() -> None:
    settings = ContentHubSettings(auth_tokens_file=DEV_TOKENS)
    assert (settings.service_name, settings.port) == ("content-hub", 8002)
    assert settings.database_url == "sqlite:///var/content-hub.db"
    assert settings.profile_url == "http://127.0.0.1:8004"
    assert settings.profile_token is not None
    assert settings.profile_token.get_secret_value().startswith("dev-content-hub-")
    assert "dev-content-hub" not in repr(settings)
    assert {"保本", "保收益", "稳赚", "无风险", "零风险", "最高收益", "收益率最高", "100%安全"} <= set(
        settings.forbidden_claims
    )


def test_lists_are_configurable_through_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTENT_HUB_FORBIDDEN_CLAIMS", '["躺赢", "闭眼买"]')
    monkeypatch.setenv("CONTENT_HUB_PORT", "9102")
    settings = ContentHubSettings(auth_tokens_file=DEV_TOKENS)
    assert settings.forbidden_claims == ("躺赢", "闭眼买")
    assert settings.port == 9102


def test_production_needs_an_explicit_profile_token(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text("clients: {}\n")
    pg = "postgresql://content_hub@db/content_hub"
    with pytest.raises(ValidationError, match="PROFILE_TOKEN"):
        ContentHubSettings(environment="production", database_url=pg, auth_tokens_file=tokens)
    ok = ContentHubSettings(
        environment="production", database_url=pg, auth_tokens_file=tokens, profile_token="x" * 32
    )
    assert ok.profile_token is not None


@pytest.mark.parametrize(
    "overrides",
    [
        {"profile_url": "ftp://profile"},
        {"profile_token_client": "nobody"},
        {"forbidden_claims": []},
        {"forbidden_claims": ["保本", " "]},
        {"risk_disclosures": []},
        {"environment": "production", "database_url": "sqlite:///x.db", "profile_token": "x" * 32},
    ],
)
def test_bad_settings_fail_fast(overrides: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ContentHubSettings(**{"auth_tokens_file": DEV_TOKENS, **overrides})  # type: ignore[arg-type]
