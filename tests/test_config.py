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


RANDOM_KEY = "vQ3n8_Kp2xR7tLw0-ZyB5mHc9dFs4Ge1"  # what `secrets.token_urlsafe` gives


@pytest.mark.parametrize("env", ["production", "test"])
def test_debug_is_refused_outside_development(env: str, tmp_path: Path) -> None:
    settings = Settings(env=env, secret_key=RANDOM_KEY, debug=True, instance_dir=tmp_path)
    with pytest.raises(ConfigError, match=f"DEBUG must be off outside development .*={env}"):
        settings.resolved_secret_key()
    assert Settings(env=env, secret_key=RANDOM_KEY, instance_dir=tmp_path).resolved_secret_key()
    dev = Settings(env="development", debug=True, instance_dir=tmp_path)
    assert len(dev.resolved_secret_key()) >= 32


@pytest.mark.parametrize("key", ["_" * 32, "changeme" * 4, "ab" * 20, "012345678" * 4])
def test_long_keys_with_too_little_variety_are_refused(key: str, tmp_path: Path) -> None:
    for env in ("production", "test"):
        settings = Settings(env=env, secret_key=key, instance_dir=tmp_path)
        with pytest.raises(ConfigError, match="too little variety"):
            settings.resolved_secret_key()
    ten = Settings(env="production", secret_key="0123456789" * 4, instance_dir=tmp_path)
    assert ten.resolved_secret_key() == "0123456789" * 4


LOGIN_VARIABLES = (
    "CUSTSEG_ENV",
    "CUSTSEG_COOKIE_SECURE",
    "CUSTSEG_SESSION_HOURS",
    "CUSTSEG_SESSION_MAX_HOURS",
    "CUSTSEG_LOGIN_RATE_LIMIT",
    "CUSTSEG_LOGIN_ACCOUNT_LIMIT",
)


def test_cookies_are_secure_by_default_in_production_only(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in LOGIN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert Settings(env="production").secure_cookies is True
    assert Settings(env="test").secure_cookies is False
    assert Settings(env="development").secure_cookies is False
    assert Settings(env="production", cookie_secure=False).secure_cookies is False
    assert Settings(env="development", cookie_secure=True).secure_cookies is True


def test_session_and_login_limit_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in LOGIN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.session_max_hours == 24 * 7 and settings.session_hours == 12
    assert (settings.login_rate_limit, settings.login_account_limit) == (
        "5 per minute",
        "100 per hour",
    )
    monkeypatch.setenv("CUSTSEG_SESSION_MAX_HOURS", "48")
    monkeypatch.setenv("CUSTSEG_LOGIN_ACCOUNT_LIMIT", "50 per day")
    monkeypatch.setenv("CUSTSEG_COOKIE_SECURE", "false")
    settings = Settings()
    assert settings.session_max_hours == 48 and settings.login_account_limit == "50 per day"
    assert settings.is_production and settings.secure_cookies is False
    for bad in ("often", "100 per hour; 5 per minute"):
        monkeypatch.setenv("CUSTSEG_LOGIN_ACCOUNT_LIMIT", bad)
        with pytest.raises(ValueError, match="CUSTSEG_LOGIN_ACCOUNT_LIMIT"):
            Settings()


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
