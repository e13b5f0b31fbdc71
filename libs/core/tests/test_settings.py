from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError, model_validator
from pydantic_settings import SettingsConfigDict
from qianmian_core.settings import Environment, ServiceSettings, load_settings


class DemoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="DEMO_SVC_", frozen=True)

    service_name: str = "demo"
    database_url: str = "sqlite:///var/demo.db"


def test_defaults_are_local_and_sqlite() -> None:
    settings = load_settings(DemoSettings)
    assert settings.environment is Environment.LOCAL
    assert settings.database_url.startswith("sqlite")


def test_environment_variables_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_SVC_PORT", "9100")
    assert load_settings(DemoSettings).port == 9100


def test_bad_value_stops_the_process_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DEMO_SVC_PORT", "not-a-port")
    with pytest.raises(SystemExit) as exc:
        load_settings(DemoSettings)
    assert exc.value.code == 2
    assert "DEMO_SVC_PORT" in capsys.readouterr().err


def test_production_refuses_sqlite_and_dev_tokens(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        load_settings(DemoSettings, environment="production")
    assert "SQLite" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        load_settings(
            DemoSettings,
            environment="production",
            database_url="postgresql://db/x",
            auth_tokens_file=Path("config/dev-tokens.yaml"),
        )
    assert "dev token" in capsys.readouterr().err


def test_production_accepts_real_settings() -> None:
    settings = load_settings(
        DemoSettings,
        environment="production",
        database_url="postgresql://db/x",
        auth_tokens_file=Path("/run/secrets/tokens.yaml"),
    )
    assert settings.environment is Environment.PRODUCTION


class CallerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CALLER_SVC_", frozen=True)

    service_name: str = "caller"
    database_url: str = "sqlite:///var/caller.db"
    peer_token: SecretStr | None = None
    peer_token_client: str = "alice"

    @model_validator(mode="after")
    def _resolve(self) -> CallerSettings:
        self.resolve_client_token("peer_token", dev_client=self.peer_token_client, service="peer")
        return self


def secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()


def test_client_token_is_the_configured_one_else_the_dev_clients(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text("clients:\n  alice: {token: tok-alice}\n")
    assert secret(CallerSettings(auth_tokens_file=tokens).peer_token) == "tok-alice"
    explicit = CallerSettings(auth_tokens_file=tokens, peer_token="tok-explicit")
    assert secret(explicit.peer_token) == "tok-explicit"
    with pytest.raises(ValidationError, match="has no client 'bob' to call peer with"):
        CallerSettings(auth_tokens_file=tokens, peer_token_client="bob")


def test_production_needs_the_client_token_named_by_its_variable(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text("clients:\n  alice: {token: tok-alice}\n")
    production = {"environment": "production", "database_url": "postgresql://caller@db/caller"}
    message = "production needs CALLER_SVC_PEER_TOKEN: the token for calling peer"
    with pytest.raises(ValidationError, match=message):
        CallerSettings(auth_tokens_file=tokens, **production)  # type: ignore[arg-type]
    ok = CallerSettings(auth_tokens_file=tokens, peer_token="t" * 32, **production)  # type: ignore[arg-type]
    assert secret(ok.peer_token) == "t" * 32
