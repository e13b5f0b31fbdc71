from pathlib import Path

import pytest
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
