from __future__ import annotations

from pathlib import Path

import pytest
from product_hub.settings import ProductHubSettings
from pydantic import ValidationError

DEV_TOKENS = Path(__file__).resolve().parents[3] / "config" / "dev-tokens.yaml"


def test_defaults_are_the_documented_local_ones() -> None:
    settings = ProductHubSettings(auth_tokens_file=DEV_TOKENS)
    assert (settings.service_name, settings.port) == ("product-hub", 8001)
    assert settings.database_url == "sqlite:///var/product-hub.db"
    assert settings.profile_url == "http://127.0.0.1:8004"
    # Locally the profile token is the dev token of the recommender-like client, read from the file.
    assert settings.profile_token is not None
    assert settings.profile_token.get_secret_value().startswith("dev-recommender-")
    assert "dev-recommender" not in repr(settings)


def test_environment_variables_use_the_service_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRODUCT_HUB_PORT", "9101")
    monkeypatch.setenv("PRODUCT_HUB_PROFILE_TOKEN", "explicit-token-of-sufficient-length")
    settings = ProductHubSettings(auth_tokens_file=DEV_TOKENS)
    assert settings.port == 9101
    assert settings.profile_token is not None
    assert settings.profile_token.get_secret_value() == "explicit-token-of-sufficient-length"


def test_production_needs_an_explicit_profile_token(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text("clients: {}\n")
    pg = "postgresql://product_hub@db/product_hub"
    with pytest.raises(ValidationError, match="PROFILE_TOKEN"):
        ProductHubSettings(environment="production", database_url=pg, auth_tokens_file=tokens)
    ok = ProductHubSettings(
        environment="production", database_url=pg, auth_tokens_file=tokens, profile_token="x" * 32
    )
    assert ok.profile_token is not None


@pytest.mark.parametrize(
    "overrides",
    [
        {"profile_url": "ftp://profile"},
        {"profile_token_client": "nobody"},
        {"auth_tokens_file": Path("/nonexistent/dev-tokens.yaml")},
        {"environment": "production", "database_url": "sqlite:///x.db", "profile_token": "x" * 32},
    ],
)
def test_bad_settings_fail_fast(overrides: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ProductHubSettings(**{"auth_tokens_file": DEV_TOKENS, **overrides})  # type: ignore[arg-type]
