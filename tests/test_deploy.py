"""docker-compose.yml is read by code here (no Docker engine on CI): its services and wiring."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).parent.parent


def test_compose_has_postgres_with_healthcheck_migrate_web_and_scheduler() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "migrate", "web", "scheduler"} <= set(services)
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["migrate"]["command"] == ["custseg", "init-db"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "wsgi:server" in services["web"]["command"]
    assert services["web"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )
    assert services["scheduler"]["command"] == ["custseg", "scheduler"]
    env = services["web"]["environment"]
    assert env["CUSTSEG_ENV"] == "production"
    assert "?" in env["SECRET_KEY"]  # required: compose refuses to start without it


def test_wsgi_exposes_server(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import importlib
    import sys

    from config.settings import get_settings

    monkeypatch.setenv("CUSTSEG_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "vQ3n8_Kp2xR7tLw0-ZyB5mHc9dFs4Ge1sT")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/w.db")
    get_settings.cache_clear()
    sys.modules.pop("wsgi", None)
    try:
        wsgi = importlib.import_module("wsgi")
        assert wsgi.server.name == "webapp.app"
    finally:
        sys.modules.pop("wsgi", None)
        get_settings.cache_clear()
