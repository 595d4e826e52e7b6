"""Settings: secrets are required outside development."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import ConfigError, Settings


@pytest.mark.parametrize("key", [None, "", "changeme", "secret", "thisismysecretkey", "short"])
def test_production_refuses_missing_default_or_short_secret(
    key: str | None, tmp_path: Path
) -> None:
    settings = Settings(env="production", secret_key=key, instance_dir=tmp_path)
    with pytest.raises(ConfigError):
        settings.resolved_secret_key()


def test_production_refuses_debug(tmp_path: Path) -> None:
    settings = Settings(env="production", secret_key="k" * 40, debug=True, instance_dir=tmp_path)
    with pytest.raises(ConfigError, match="DEBUG"):
        settings.resolved_secret_key()


def test_development_generates_and_keeps_a_key(tmp_path: Path) -> None:
    settings = Settings(env="development", instance_dir=tmp_path)
    first = settings.resolved_secret_key()
    assert len(first) >= 32 and settings.resolved_secret_key() == first


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "sqlite:////tmp/elsewhere.db")
    monkeypatch.setenv("CUSTSEG_K_MAX", "7")
    monkeypatch.setenv("CUSTSEG_ENV", "development")
    settings = Settings()
    assert settings.database_url == "sqlite:////tmp/elsewhere.db" and settings.k_max == 7


def test_the_app_refuses_to_start_in_production_without_a_key(tmp_path: Path) -> None:
    from webapp.app import create_app

    with pytest.raises(ConfigError):
        create_app(
            Settings(
                env="production", database_url=f"sqlite:///{tmp_path}/x.db", instance_dir=tmp_path
            )
        )
