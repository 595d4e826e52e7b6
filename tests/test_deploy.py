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


def test_compose_runs_web_replicas_behind_a_proxy_with_shared_state() -> None:
    """Stateless web instances (docs/DEPLOY.md): N replicas, no published port of their own, a
    reverse proxy in front that finds every replica, Redis for the rate limits, and the
    snapshot files on a volume the replicas of a machine share."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    web, proxy = services["web"], services["proxy"]
    assert "replicas" in web["deploy"] and "ports" not in web
    assert any(p.endswith(":80") for p in proxy["ports"])
    assert "web" in proxy["depends_on"]
    mounted = {v.split(":")[1]: v.split(":")[0] for v in proxy["volumes"]}
    caddyfile = ROOT / mounted["/etc/caddy/Caddyfile"].removeprefix("./")
    text = caddyfile.read_text()
    assert "reverse_proxy" in text and "name web" in text and "port 8050" in text
    env = web["environment"]
    assert env["CUSTSEG_RATELIMIT_STORAGE_URL"].startswith("redis://redis:")
    assert "redis" in services and "redis" in web["depends_on"]
    cache = env["CUSTSEG_CACHE_DIR"]
    assert any(v.endswith(f":{cache}") for v in web["volumes"])
    # The scheduler writes each new snapshot's files into the volume the web replicas map.
    assert any(v == f"snapshot-cache:{cache}" for v in services["scheduler"]["volumes"])
    assert env["CUSTSEG_TRUSTED_PROXIES"].startswith("${CUSTSEG_TRUSTED_PROXIES:-1")
    assert "snapshot-cache" in compose["volumes"]
    assert cache in (ROOT / "Dockerfile").read_text()  # made for the app's user
