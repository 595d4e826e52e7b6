"""Hardening: the attacks that hit BI apps, tried against this one.

Sessions and login throttling, every route behind login, roles on the server, tampered callback
requests and SQL injection in filters, formulas in exports, hostile import files and text, and
the browser security headers. Snapshot faults are in test_snapshot_integrity.py; the checks
that need a browser (CSP in practice, script in data) are in test_browser_security.py.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import dash
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, func, select

from db.importer import import_file
from db.models import ImportBatch, Snapshot, SnapshotCustomer, Transaction, User
from tests.conftest import (
    PASSWORD,
    SAMPLE,
    add_user,
    command_line_env,
    forget_page_duplicates,
    import_rejection,
    login,
    make_settings,
)
from tests.helpers import BRIEF_PAGES, callback_body, callback_spec, form_token, post_callback
from tests.refitting import refit

ROLES = ("viewer", "analyst", "admin")
DASH_ENDPOINTS = (
    "/_dash-layout",
    "/_dash-dependencies",
    "/_dash-update-component",
    "/_reload-hash",
    "/_favicon.ico",
    "/_dash-component-suites/dash/dash-renderer/build/dash_renderer.min.js",
)
KPIS = "kpi-customers"
RANDOM_KEY = "vQ3n8_Kp2xR7tLw0-ZyB5mHc9dFs4Ge1"  # what `secrets.token_urlsafe` gives
ROUTER = "_pages_content"


def build_app(tmp_path: Path, engine: Engine, users: bool = True, **overrides: Any) -> Any:
    """The app on `engine` with settings `overrides`, its three users, a fresh rate limiter."""
    from webapp.app import create_app
    from webapp.auth import limiter

    forget_page_duplicates()
    url = engine.url.render_as_string(hide_password=False)
    app = create_app(make_settings(tmp_path, url, **overrides), engine)
    limiter.reset()
    if users:
        for role in ROLES:
            add_user(engine, f"{role}@example.com", role)
    return app


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One SQLite shop for the read-only tests of this module: the sample, one snapshot."""
    from db.migrate import upgrade
    from db.session import make_engine

    tmp = tmp_path_factory.mktemp("shop")
    engine = make_engine(f"sqlite:///{tmp / 'shop.db'}")
    upgrade(engine)
    import_file(engine, SAMPLE)
    outcome = refit(engine, k=3)
    app = build_app(tmp, engine)
    yield app, engine, outcome
    engine.dispose()


def data_markers(engine: Engine) -> list[str]:
    """Strings that only a response carrying shop data would contain."""
    from db import snapshots

    snap = snapshots.get_snapshot(engine)
    names = snapshots.segments(engine, snap.id)["name"].tolist()
    ids = snapshots.customers(engine, snap.id)["customer_id"].head(20).tolist()
    return [*names, *ids, "kpi-customers", "react-entry-point"]


def walk(node: Any) -> Any:
    """Every dict inside a Dash layout JSON."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def navbar_token(client: Any) -> str:
    layout = client.get("/_dash-layout").get_json()
    for node in walk(layout):
        if node.get("name") == "csrf_token" and node.get("value"):
            return str(node["value"])
    raise AssertionError("the navbar has no logout form with a CSRF token")


def table_counts(engine: Engine) -> tuple[int, ...]:
    with engine.connect() as conn:
        return tuple(
            conn.execute(select(func.count()).select_from(model)).scalar_one()
            for model in (User, Transaction, ImportBatch, Snapshot, SnapshotCustomer)
        )


# --- 1. Authentication and sessions -----------------------------------------------------------


def _fail_login(client: Any, email: str, addr: str = "127.0.0.1", **headers: str) -> Any:
    token = form_token(client.get("/login", environ_base={"REMOTE_ADDR": addr}).get_data(True))
    return client.post(
        "/login",
        data={"email": email, "password": "wrong password!", "csrf_token": token},
        environ_base={"REMOTE_ADDR": addr},
        headers=headers,
    )


def _good_login(client: Any, email: str, addr: str = "127.0.0.1", **headers: str) -> Any:
    token = form_token(client.get("/login", environ_base={"REMOTE_ADDR": addr}).get_data(True))
    return client.post(
        "/login",
        data={"email": email, "password": PASSWORD, "csrf_token": token},
        environ_base={"REMOTE_ADDR": addr},
        headers=headers,
    )


def test_failed_logins_from_one_address_are_limited_whatever_x_forwarded_for_says(
    tmp_path: Path, sqlite_engine: Engine
) -> None:
    app = build_app(tmp_path, sqlite_engine, login_rate_limit="3 per minute")
    client = app.server.test_client()
    for i in range(3):  # three accounts, three forged client addresses, one real address
        resp = _fail_login(
            client, f"nobody{i}@example.com", "10.0.0.7", **{"X-Forwarded-For": f"1.2.3.{i}"}
        )
        assert resp.status_code == 401
    blocked = _good_login(
        client, "viewer@example.com", "10.0.0.7", **{"X-Forwarded-For": "9.9.9.9"}
    )
    assert blocked.status_code == 429 and "Too many failed attempts" in blocked.get_data(True)
    assert client.get("/_dash-layout").status_code == 401  # the right password did not get in
    other = app.server.test_client()
    assert _good_login(other, "analyst@example.com", "10.0.0.8").status_code == 302


def test_wrong_passwords_from_one_address_do_not_lock_the_owner_out(
    tmp_path: Path, sqlite_engine: Engine
) -> None:
    app = build_app(tmp_path, sqlite_engine, login_rate_limit="5 per minute")
    attacker, owner = app.server.test_client(), app.server.test_client()
    for _ in range(5):
        assert _fail_login(attacker, "Viewer@Example.com ", "10.1.0.66").status_code == 401
    assert _good_login(owner, "viewer@example.com", "10.1.0.7").status_code == 302
    assert owner.get("/_dash-layout").status_code == 200
    # The attacker's address stays limited, for this account and for any other.
    assert _good_login(attacker, "viewer@example.com", "10.1.0.66").status_code == 429
    assert _good_login(attacker, "analyst@example.com", "10.1.0.66").status_code == 429
    assert attacker.get("/_dash-layout").status_code == 401


def test_past_the_account_ceiling_each_address_gets_one_failure_and_clean_ones_log_in(
    tmp_path: Path, sqlite_engine: Engine
) -> None:
    app = build_app(
        tmp_path, sqlite_engine, login_rate_limit="5 per minute", login_account_limit="3 per hour"
    )
    client = app.server.test_client()
    for i in range(3):  # guessing from three addresses reaches the account's ceiling
        assert _fail_login(client, "viewer@example.com", f"10.3.0.{i}").status_code == 401
    # An address that failed for this account is refused, even with the right password ...
    assert _good_login(client, "viewer@example.com", "10.3.0.0").status_code == 429
    # ... but not for other accounts, and an address that has not failed logs in.
    assert _good_login(client, "analyst@example.com", "10.3.0.0").status_code == 302
    owner = app.server.test_client()
    assert _good_login(owner, "viewer@example.com", "10.3.0.50").status_code == 302
    # A new address gets one guess, then it is refused too.
    assert _fail_login(client, "viewer@example.com", "10.3.0.9").status_code == 401
    assert _good_login(client, "viewer@example.com", "10.3.0.9").status_code == 429


def _scrypt_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the password hashes computed (werkzeug's scrypt goes through hashlib.scrypt)."""
    calls: list[int] = []
    real = hashlib.scrypt

    def counted(*args: Any, **kwargs: Any) -> bytes:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(hashlib, "scrypt", counted)
    return calls


def add_deactivated_user(engine: Engine, email: str) -> None:
    """An analyst account an admin has deactivated (its password is still the right one)."""
    from db.session import session_scope

    add_user(engine, email, "analyst")
    with session_scope(engine) as db:
        gone = db.scalar(select(User).where(User.email == email))
        gone.active = False  # type: ignore[union-attr]


def test_every_login_attempt_computes_exactly_one_password_hash(
    tmp_path: Path, sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = build_app(tmp_path, sqlite_engine)
    add_deactivated_user(sqlite_engine, "gone@example.com")
    calls = _scrypt_calls(monkeypatch)
    for email, attempt, status in (
        ("viewer@example.com", _fail_login, 401),  # known account, wrong password
        ("nobody@example.com", _fail_login, 401),  # unknown account
        ("nobody@example.com", _good_login, 401),
        ("gone@example.com", _fail_login, 401),  # deactivated account
        ("gone@example.com", _good_login, 401),  # deactivated, right password
        ("viewer@example.com", _good_login, 302),
    ):
        calls.clear()
        assert attempt(app.server.test_client(), email).status_code == status, email
        assert len(calls) == 1, (email, attempt.__name__, len(calls))


def test_unknown_deactivated_and_wrong_password_get_the_same_answer(
    tmp_path: Path, sqlite_engine: Engine
) -> None:
    app = build_app(tmp_path, sqlite_engine)
    add_deactivated_user(sqlite_engine, "gone@example.com")
    app.server.test_client().get("/health")  # Dash's first-request setup touches the session

    def answer(email: str, attempt: Any, addr: str) -> tuple[int, str, list[tuple[str, str]]]:
        resp = attempt(app.server.test_client(), email, addr)  # one address each: same counts
        body = re.sub(r'name="csrf_token" value="[^"]+"', "TOKEN", resp.get_data(True))
        varying = {"Set-Cookie", "X-RateLimit-Reset", "Retry-After", "Date"}
        headers = sorted((k, v) for k, v in resp.headers.items() if k not in varying)
        cookies = sorted(h.split("=", 1)[0] for h in resp.headers.getlist("Set-Cookie"))
        return resp.status_code, body, [*headers, *(("Set-Cookie", c) for c in cookies)]

    wrong = answer("viewer@example.com", _fail_login, "10.4.0.1")
    assert wrong[0] == 401 and "Wrong email or password." in wrong[1]
    assert ("X-RateLimit-Remaining", "999") in wrong[2]
    assert answer("nobody@example.com", _fail_login, "10.4.0.2") == wrong
    assert answer("gone@example.com", _good_login, "10.4.0.3") == wrong


def test_behind_a_configured_proxy_each_client_address_has_its_own_limit(
    tmp_path: Path, sqlite_engine: Engine
) -> None:
    app = build_app(tmp_path, sqlite_engine, login_rate_limit="3 per minute", trusted_proxies=1)
    client = app.server.test_client()
    proxy = "10.2.0.1"
    for i in range(6):  # six clients behind one proxy, two failures each: none is limited
        for j in range(2):
            resp = _fail_login(
                client, f"c{i}-{j}@example.com", proxy, **{"X-Forwarded-For": f"5.5.5.{i}"}
            )
            assert resp.status_code == 401
    _fail_login(client, "x@example.com", proxy, **{"X-Forwarded-For": "5.5.5.0"})
    limited = _good_login(client, "viewer@example.com", proxy, **{"X-Forwarded-For": "5.5.5.0"})
    assert limited.status_code == 429
    fresh = app.server.test_client()
    ok = _good_login(fresh, "viewer@example.com", proxy, **{"X-Forwarded-For": "5.5.5.77"})
    assert ok.status_code == 302


def test_session_cookie_is_secure_when_configured_and_its_lifetime_is_bounded(
    tmp_path: Path, sqlite_engine: Engine
) -> None:
    app = build_app(tmp_path, sqlite_engine, cookie_secure=True, session_hours=2)
    resp = login(app.server.test_client())
    cookie = resp.headers["Set-Cookie"]
    assert "custseg_session=" in cookie
    assert all(flag in cookie for flag in ("Secure", "HttpOnly", "SameSite=Lax"))
    expires = parsedate_to_datetime(re.search(r"Expires=([^;]+)", cookie).group(1))  # type: ignore[union-attr]
    left = expires - datetime.now(UTC)
    assert timedelta(hours=1, minutes=55) < left <= timedelta(hours=2, minutes=1)


def test_plain_http_deployment_does_not_mark_the_cookie_secure(client: Any) -> None:
    cookie = login(client).headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "Secure" not in cookie


def test_production_cookies_are_secure_unless_turned_off_with_a_warning(
    tmp_path: Path, sqlite_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="custseg"):
        app = build_app(tmp_path, sqlite_engine, env="production")
    assert not [r for r in caplog.records if "COOKIE_SECURE" in r.getMessage()]
    assert "Secure" in login(app.server.test_client()).headers["Set-Cookie"]
    caplog.clear()
    with caplog.at_level("WARNING", logger="custseg"):
        app = build_app(tmp_path, sqlite_engine, users=False, env="production", cookie_secure=False)
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warned == [
        "CUSTSEG_COOKIE_SECURE=false in production: the session cookie goes over plain HTTP"
    ]
    assert "Secure" not in login(app.server.test_client()).headers["Set-Cookie"]


def _login_age(client: Any, seconds: int) -> None:
    """Move this session's login time `seconds` into the past (what time passing does)."""
    with client.session_transaction() as sess:
        sess["login_at"] -= seconds


def test_a_session_ends_at_its_absolute_lifetime_whatever_its_activity(
    tmp_path: Path, sqlite_engine: Engine
) -> None:
    import time

    app = build_app(tmp_path, sqlite_engine, session_hours=2, session_max_hours=24)
    client = app.server.test_client()
    before = int(time.time())
    assert login(client).status_code == 302
    with client.session_transaction() as sess:
        assert before <= sess["login_at"] <= int(time.time())
    _login_age(client, 23 * 3600)  # active all along: within the lifetime, still logged in
    assert client.get("/_dash-layout").status_code == 200
    _login_age(client, 3600 + 1)
    assert client.get("/_dash-layout").status_code == 401
    assert client.get("/").headers["Location"].startswith("/login")
    # A session from before login times were kept has none: it ends too.
    old = app.server.test_client()
    login(old)
    with old.session_transaction() as sess:
        del sess["login_at"]
    assert old.get("/_dash-layout").status_code == 401
    assert login(old).status_code == 302 and old.get("/_dash-layout").status_code == 200


def test_login_starts_a_new_session(client: Any) -> None:
    client.get("/login")
    with client.session_transaction() as sess:
        sess["planted"] = "by someone else"
    before = client.get_cookie("custseg_session").value
    assert login(client).status_code == 302
    with client.session_transaction() as sess:
        assert "planted" not in sess and "_user_id" in sess
    assert client.get_cookie("custseg_session").value != before


def test_password_change_and_deactivation_end_existing_sessions(
    app: Any, sqlite_engine: Engine
) -> None:
    from db.session import session_scope

    first, second = app.server.test_client(), app.server.test_client()
    login(first)
    login(second, email="analyst@example.com")
    with session_scope(sqlite_engine) as db:
        user = db.scalar(select(User).where(User.email == "viewer@example.com"))
        user.password = "a brand new password"  # type: ignore[union-attr]
        other = db.scalar(select(User).where(User.email == "analyst@example.com"))
        other.active = False  # type: ignore[union-attr]
    assert first.get("/_dash-layout").status_code == 401
    assert second.get("/_dash-layout").status_code == 401
    assert login(app.server.test_client(), password="a brand new password").status_code == 302


def test_logout_is_a_post_with_the_navbar_csrf_token(app: Any) -> None:
    client = app.server.test_client()
    login(client)
    token = navbar_token(client)
    page = client.get("/logout")  # what a cross-site link or <img> can do: nothing
    assert page.status_code == 200 and "Log out?" in page.get_data(True)
    assert client.get("/_dash-layout").status_code == 200
    assert client.post("/logout").status_code == 400  # a cross-site form has no token
    stranger = app.server.test_client()
    login(stranger, email="admin@example.com")
    foreign = client.post("/logout", data={"csrf_token": navbar_token(stranger)})
    assert foreign.status_code == 400  # a token of another session does not count
    assert client.get("/_dash-layout").status_code == 200
    done = client.post("/logout", data={"csrf_token": token})
    assert done.status_code == 302 and done.headers["Location"] == "/login"
    assert client.get("/_dash-layout").status_code == 401
    assert stranger.get("/_dash-layout").status_code == 200  # other users stay logged in


def test_anonymous_logout_asks_for_login(client: Any) -> None:
    assert client.get("/logout").headers["Location"].startswith("/login")
    assert client.post("/logout").status_code == 401


NEXT_OFFSITE = [
    "https://evil.example",
    "http://evil.example/login",
    "//evil.example",
    "///evil.example",
    "////evil.example/x",
    "/\\evil.example",
    "\\\\evil.example",
    "/\\/evil.example",
    "\\/evil.example",
    "javascript:alert(1)",
    "JavaScript:alert(1)",
    " javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "http:/evil.example",
    "https:evil.example",
    "//evil.example@localhost",
    "/\t/evil.example",
    "/\r\nLocation: https://evil.example",
    " //evil.example",
    "evil.example",
    "%2F%2Fevil.example",
    "ftp://evil.example",
]


@pytest.mark.parametrize("target", NEXT_OFFSITE)
def test_next_never_leaves_the_site(client: Any, target: str) -> None:
    resp = login(client, next=target)
    assert resp.status_code == 302 and resp.headers["Location"] == "/"


@pytest.mark.parametrize("target", ["/segments", "/sales?start=2011-01-01&segment=2", "/%2F%2Fx"])
def test_next_keeps_local_paths(client: Any, target: str) -> None:
    assert login(client, next=target).headers["Location"] == target


def test_login_form_escapes_a_reflected_next(client: Any) -> None:
    page = client.get('/login?next=/"><script>alert(1)</script>').get_data(True)
    assert "<script>alert(1)" not in page
    assert "&#34;&gt;&lt;script&gt;" in page


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "SECRET_KEY is not set"),  # CUSTSEG_ENV unset means production
        ({"CUSTSEG_ENV": "production", "SECRET_KEY": "changeme"}, "known default"),
        ({"SECRET_KEY": "CHANGE_ME_TO_A_COMPLEX_RANDOM_SECRET"}, "known default"),
        ({"SECRET_KEY": "\x02\x01thisismyscretkey\x01\x02\\e\\y\\y\\h"}, "known default"),
        ({"SECRET_KEY": "short-but-random-9f2"}, "shorter than"),
        ({"SECRET_KEY": "_" * 32}, "too little variety"),
        ({"SECRET_KEY": "changeme" * 4}, "too little variety"),
        ({"SECRET_KEY": RANDOM_KEY, "CUSTSEG_DEBUG": "1"}, "DEBUG must be off"),
        # Debug only in development: a test deployment with a good key gets no debugger either.
        ({"CUSTSEG_ENV": "test", "SECRET_KEY": RANDOM_KEY, "CUSTSEG_DEBUG": "1"}, "DEBUG must"),
        ({"CUSTSEG_ENV": "test", "SECRET_KEY": "changeme" * 4}, "too little variety"),
    ],
)
def test_production_wsgi_refuses_to_start_without_a_real_key_or_with_debug(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: dict[str, str], message: str
) -> None:
    import importlib
    import sys

    from config import ConfigError
    from config.settings import get_settings

    for name in ("CUSTSEG_ENV", "SECRET_KEY", "CUSTSEG_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/w.db")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    sys.modules.pop("wsgi", None)
    try:
        with pytest.raises(ConfigError, match=message):
            importlib.import_module("wsgi")
        from webapp.cli import main

        served = CliRunner().invoke(main, ["serve"])
        assert served.exit_code == 1 and message in served.output
        assert "Traceback" not in served.output
    finally:
        sys.modules.pop("wsgi", None)
        get_settings.cache_clear()


# --- Cross-site requests ---------------------------------------------------------------------

EVIL = "https://evil.example"


def _callback_post(client: Any, **headers: str) -> Any:
    body = callback_body(callback_spec(client, KPIS))
    return client.post("/_dash-update-component", json=body, headers=headers)


def test_a_cross_site_callback_request_with_the_session_cookie_is_refused(
    shop: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app, _, _ = shop
    client = app.server.test_client()  # the test client's requests go to http://localhost
    login(client)
    with caplog.at_level("WARNING", logger="custseg"):
        refused = _callback_post(client, Origin=EVIL)
    assert refused.status_code == 403
    assert refused.get_json() == {"error": "cross-site request refused"}
    [warning] = [r for r in caplog.records if r.getMessage() == "cross-site request refused"]
    assert warning.origin == EVIL and warning.expected == "http://localhost"  # type: ignore[attr-defined]
    for origin in (
        "null",
        "http://localhost.evil.example",
        "https://localhost",
        "http://localhost:8050",
    ):
        assert _callback_post(client, Origin=origin).status_code == 403, origin
    for site in ("cross-site", "same-site", "Cross-Site"):
        assert _callback_post(client, **{"Sec-Fetch-Site": site}).status_code == 403, site
    refused = _callback_post(client, Origin="http://localhost", **{"Sec-Fetch-Site": "cross-site"})
    assert refused.status_code == 403
    # The app's own origin, a same-origin fetch, and a client that sends neither header pass.
    assert _callback_post(client, Origin="http://localhost").status_code == 200
    assert _callback_post(client, Origin="HTTP://LOCALHOST:80").status_code == 200
    assert _callback_post(client, **{"Sec-Fetch-Site": "same-origin"}).status_code == 200
    assert _callback_post(client, **{"Sec-Fetch-Site": "none"}).status_code == 200
    assert _callback_post(client).status_code == 200
    # Reading is not refused: a link from another site still opens the app.
    assert client.get("/_dash-layout", headers={"Origin": EVIL}).status_code == 200


def test_cross_site_login_and_logout_are_refused(
    shop: Any,
) -> None:
    app, _, _ = shop
    client = app.server.test_client()
    token = form_token(client.get("/login").get_data(True))
    form = {"email": "viewer@example.com", "password": PASSWORD, "csrf_token": token}
    refused = client.post("/login", data=form, headers={"Origin": EVIL})
    assert refused.status_code == 403 and client.get("/_dash-layout").status_code == 401
    assert (
        client.post("/login", data=form, headers={"Origin": "http://localhost"}).status_code == 302
    )
    logout = {"csrf_token": navbar_token(client)}
    assert (
        client.post("/logout", data=logout, headers={"Sec-Fetch-Site": "cross-site"}).status_code
        == 403
    )
    assert client.get("/_dash-layout").status_code == 200  # still logged in
    for method in ("PUT", "PATCH", "DELETE"):
        assert (
            client.open(
                "/_dash-update-component", method=method, headers={"Origin": EVIL}
            ).status_code
            == 403
        )


def test_behind_a_trusted_proxy_the_forwarded_host_is_the_own_origin(
    tmp_path: Path, sqlite_engine: Engine
) -> None:
    forwarded = {"X-Forwarded-Host": "shop.example", "X-Forwarded-Proto": "https"}
    app = build_app(tmp_path, sqlite_engine, trusted_proxies=1)
    client = app.server.test_client()
    login(client)
    ok = _callback_post(client, Origin="https://shop.example", **forwarded)
    assert ok.status_code == 200
    assert _callback_post(client, Origin="http://localhost", **forwarded).status_code == 403
    # Without a trusted proxy the forwarded headers are the client's to forge: ignored.
    app = build_app(tmp_path, sqlite_engine, users=False)
    client = app.server.test_client()
    login(client)
    evil = {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"}
    assert _callback_post(client, Origin=EVIL, **evil).status_code == 403


def test_the_public_url_decides_the_own_origin_when_set(
    tmp_path: Path, sqlite_engine: Engine
) -> None:
    app = build_app(tmp_path, sqlite_engine, public_url="https://Analytics.Shop.Example/")
    assert app.server.extensions["custseg"].settings.public_url == "https://Analytics.Shop.Example"
    client = app.server.test_client()
    login(client)
    for origin in ("https://analytics.shop.example", "https://analytics.shop.example:443"):
        assert _callback_post(client, Origin=origin).status_code == 200, origin
    for origin in ("http://localhost", "http://analytics.shop.example", "https://shop.example"):
        assert _callback_post(client, Origin=origin).status_code == 403, origin


@pytest.mark.parametrize(
    "url",
    [
        "analytics.shop.example",
        "ftp://analytics.shop.example",
        "javascript:alert(1)",
        "https://",
        "https://user:secret@analytics.shop.example",
        "https://analytics.shop.example/?next=x",
        "https://analytics.shop.example/#x",
        "https://analytics.shop.example:99999",
        "https://analytics shop.example",
        'https://analytics.shop.example/"><script>',
    ],
)
def test_a_public_url_that_is_not_an_http_url_is_refused(tmp_path: Path, url: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="CUSTSEG_PUBLIC_URL"):
        make_settings(tmp_path, "sqlite://", public_url=url)


def test_an_empty_public_url_means_unset(tmp_path: Path) -> None:
    assert make_settings(tmp_path, "sqlite://", public_url="").public_origin is None
    settings = make_settings(tmp_path, "sqlite://", public_url="http://10.0.0.5:8050/custseg/")
    assert settings.public_url == "http://10.0.0.5:8050/custseg"
    assert settings.public_origin == "http://10.0.0.5:8050"


# --- 2. Every route protected, roles on the server --------------------------------------------

SAMPLE_ARGS = {"filename": "bootstrap.min.css", "package_name": "dash", "path": "segments"}


def concrete(rule: str) -> str:
    """A URL for a url_map rule: each <converter:name> replaced by a plausible value."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: SAMPLE_ARGS.get(m.group(1), "x.js"), rule)


def anonymous_probes(app: Any, real_asset: str) -> list[tuple[str, str]]:
    """(method, path) for every rule of the url_map, Dash's endpoints and every page."""
    public = {"/login", "/static/<path:filename>", "/health", "/unsubscribe/<token>"}
    probes: list[tuple[str, str]] = []
    for rule in app.server.url_map.iter_rules():
        if rule.rule in public:
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            probes.append((method, concrete(rule.rule)))
    probes += [("GET", p) for p in DASH_ENDPOINTS] + [("POST", "/_dash-update-component")]
    probes.append(("GET", real_asset))
    pages = {p["path"] for p in dash.page_registry.values()} | set(BRIEF_PAGES)
    for page in dash.page_registry.values():
        if page.get("path_template"):
            pages.add(re.sub(r"<[^<>]+>", "1", page["path_template"]))
    for path in sorted(pages):
        probes += [("GET", path), ("GET", f"{path}?start=2011-01-01&segment=1&snapshot=1")]
    return probes


def test_anonymous_gets_401_or_a_redirect_and_no_data_from_every_route(shop: Any) -> None:
    app, engine, _ = shop
    insider = app.server.test_client()
    login(insider)
    index = insider.get("/").get_data(True)
    real_asset = re.findall(r'src="(/_dash-component-suites/[^"]+)"', index)[0]
    assert insider.get(real_asset).status_code == 200
    markers = data_markers(engine)
    client = app.server.test_client()
    probes = anonymous_probes(app, real_asset)
    for method, path in probes:
        body = {"output": f"{KPIS}.children", "inputs": []} if method == "POST" else None
        resp = client.open(path, method=method, json=body)
        assert resp.status_code in (302, 401), (method, path, resp.status_code)
        if resp.status_code == 302:
            assert resp.headers["Location"].startswith("/login")
        else:
            assert resp.is_json and resp.get_json() == {"error": "authentication required"}
        text = resp.get_data(True)
        assert len(text) < 1_000 and not any(m in text for m in markers), (method, path)
    assert len(probes) >= 30


def test_every_role_gets_every_page_it_may_see(shop: Any) -> None:
    app, _, _ = shop
    pages = {p["path"]: p for p in dash.page_registry.values()}
    for role in ROLES:
        client = app.server.test_client()
        login(client, email=f"{role}@example.com")
        for endpoint in ("/_dash-layout", "/_dash-dependencies"):
            assert client.get(endpoint).status_code == 200
        for path in sorted(set(pages) | set(BRIEF_PAGES)):
            assert client.get(path).status_code == 200, (role, path)
            resp = post_callback(client, ROUTER, {"_pages_location.pathname": path})
            assert resp.status_code == 200, (role, path)
            needed = pages.get(path, {}).get("role")
            refused = "This page needs the" in resp.get_data(True)
            assert refused == bool(needed and ROLES.index(role) < ROLES.index(needed)), path


def test_a_page_role_and_a_callback_role_are_enforced_on_the_server(
    tmp_path: Path, sqlite_engine: Engine
) -> None:
    from dash import Input, Output, html

    from webapp.roles import guarded, protect_pages

    app = build_app(tmp_path, sqlite_engine)
    dash.register_page(
        "tests.admin_only_page",
        path="/zz-admin-only",
        layout=html.Div("secret admin data"),
        role="admin",
    )
    try:
        protect_pages()

        @app.callback(Output("zz-members", "children"), Input("zz-go", "n_clicks"))
        @guarded("analyst")
        def members(_: Any) -> str:
            return "member list"

        @app.callback(Output("zz-undeclared", "children"), Input("zz-go", "n_clicks"))
        def undeclared(_: Any) -> str:
            return "what nobody declared"

        for role, page_ok, callback_ok in (
            ("viewer", False, False),
            ("analyst", False, True),
            ("admin", True, True),
        ):
            client = app.server.test_client()
            login(client, email=f"{role}@example.com")
            page = post_callback(client, ROUTER, {"_pages_location.pathname": "/zz-admin-only"})
            assert ("secret admin data" in page.get_data(True)) is page_ok, role
            call = post_callback(client, "zz-members", {"zz-go.n_clicks": 1})
            assert call.status_code == (200 if callback_ok else 403), role
            assert ("member list" in call.get_data(True)) is callback_ok
            # A callback that declares no role is refused to everyone (fail closed).
            nobody = post_callback(client, "zz-undeclared", {"zz-go.n_clicks": 1})
            assert nobody.status_code == 403 and "declared" not in nobody.get_data(True)
    finally:
        dash.page_registry.pop("tests.admin_only_page", None)


# --- 3. Callback input validation -------------------------------------------------------------


def tampered_bodies(spec: dict[str, Any]) -> dict[str, Any]:
    good = callback_body(spec)
    outputs = good["outputs"] if isinstance(good["outputs"], list) else []
    without = lambda key: {k: v for k, v in good.items() if k != key}  # noqa: E731
    return {
        "no output": without("output"),
        "unknown output": {**good, "output": "users.children"},
        "output is a number": {**good, "output": 5},
        "inputs is text": {**good, "inputs": "x"},
        "no inputs": without("inputs"),
        "too few inputs": {**good, "inputs": good["inputs"][:1]},
        "too many inputs": {**good, "inputs": good["inputs"] * 2},
        "inputs without ids": {**good, "inputs": [{"value": 1}] * len(good["inputs"])},
        "inputs of another component": {
            **good,
            "inputs": [{**i, "id": "users"} for i in good["inputs"]],
        },
        "inputs are numbers": {**good, "inputs": [1] * len(good["inputs"])},
        "state is text": {**good, "state": "x"},
        "outputs is text": {**good, "outputs": "x"},
        "outputs empty": {**good, "outputs": []},
        "changedPropIds is text": {**good, "changedPropIds": "abc"},
        "outputs are numbers": {**good, "outputs": [1] * max(1, len(outputs))},
        "outputs are empty objects": {**good, "outputs": [{}] * max(1, len(outputs))},
        "outputs of another component": {
            **good,
            "outputs": [{**o, "id": "users"} for o in outputs] if outputs else {"id": "users"},
        },
        "outputs without property": {
            **good,
            "outputs": [{"id": o["id"]} for o in outputs] if outputs else {},
        },
        "changedPropIds not an input": {**good, "changedPropIds": ["users.children"]},
        "changedPropIds malformed id": {**good, "changedPropIds": ["{bad.json.n_clicks"]},
        "changedPropIds without property": {**good, "changedPropIds": ["nodot"]},
        "changedPropIds id is a list": {**good, "changedPropIds": ['["a"].value']},
        "body is a list": [good],
        "body is text": "x",
        "body is null": None,
    }


def test_tampered_callback_requests_get_a_clear_400(shop: Any) -> None:
    app, _, _ = shop
    app.server.config["PROPAGATE_EXCEPTIONS"] = False  # a crash must show as a 500 here
    client = app.server.test_client()
    login(client)
    bodies = tampered_bodies(callback_spec(client, KPIS)) | {
        f"router {name}": body
        for name, body in tampered_bodies(callback_spec(client, ROUTER)).items()
    }
    for name, body in bodies.items():
        resp = client.post("/_dash-update-component", json=body)
        assert resp.status_code == 400, name
        assert resp.get_json()["error"].startswith("bad callback request"), name
    for raw, ctype in (("{not json", "application/json"), ("output=x", "text/plain")):
        resp = client.post("/_dash-update-component", data=raw, content_type=ctype)
        assert resp.status_code == 400
    for value in (5, {"a": 1}, ["/"], "javascript:alert(1)", "https://evil.example/"):
        resp = post_callback(client, ROUTER, {"_pages_location.pathname": value})
        assert resp.status_code == 400, value
    for value in ("/../../etc/passwd", "/" + "a" * 50_000, "/%00", "/<script>"):
        resp = post_callback(client, ROUTER, {"_pages_location.pathname": value})
        assert resp.status_code == 200 and "404" in resp.get_data(True)


def test_bodies_that_crashed_dash_get_a_4xx_and_one_log_line(
    shop: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Each of these answered 500 with a traceback before (issue 13 item 4)."""
    app, _, _ = shop
    app.server.config["PROPAGATE_EXCEPTIONS"] = False  # a crash must show as a 500 here
    client = app.server.test_client()
    login(client, email="admin@example.com")
    single = callback_spec(client, "members-table.page_current")  # a one-output callback
    good = callback_body(single)
    deep = "[" * 100_000  # RecursionError in the JSON parser
    answers = {
        "nested 100,000 deep": client.post(
            "/_dash-update-component", data=deep, content_type="application/json"
        ),
        "nested in a value": post_callback(
            client,
            KPIS,
            {"f-dates.start_date": json.loads("[" * 70 + "]" * 70)},
        ),
        "outputs a number": client.post("/_dash-update-component", json={**good, "outputs": 7}),
        "outputs an empty object": client.post(
            "/_dash-update-component", json={**good, "outputs": {}}
        ),
        "outputs another component's": client.post(
            "/_dash-update-component",
            json={**good, "outputs": {"id": "admin-users", "property": "data"}},
        ),
        "changedPropIds malformed": post_callback(
            client,
            "admin-users-message",
            {"admin-add.n_clicks": 1},
            changedPropIds=['{"type":.n_clicks'],
        ),
        "a clientside callback": post_callback(client, "_pages_dummy", {}),
    }
    suites = "/_dash-component-suites/dash"
    for path in (
        f"{suites}/..%2f..%2fetc%2fpasswd",
        f"{suites}/../../etc/passwd",
        f"{suites}/deps/..%2f..%2fdash.py",
        "/_dash-component-suites/os/path.py",
        f"{suites}/no-such-file.v9m9.js",
    ):
        answers[path] = client.get(path)
    for name, resp in answers.items():
        assert 400 <= resp.status_code < 500, (name, resp.status_code)
        assert resp.is_json and len(resp.get_json()["error"]) < 100, name
        assert "Traceback" not in resp.get_data(as_text=True)
    assert answers["nested 100,000 deep"].get_json()["error"].endswith("nested too deeply")
    assert answers["a clientside callback"].get_json() == {
        "error": "bad callback request: this callback runs in the browser"
    }
    assert answers[f"{suites}/..%2f..%2fetc%2fpasswd"].status_code == 404
    ours = [r for r in caplog.records if r.name.startswith("custseg")]
    assert len(ours) >= len(answers)
    assert all(r.levelname == "WARNING" and not r.exc_info for r in ours)
    assert all("\n" not in r.getMessage() for r in ours)


def test_anything_escaping_a_callback_is_a_json_500_and_one_log_line(
    tmp_path: Path, sqlite_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    from dash import Input, Output

    from webapp.roles import guarded

    app = build_app(tmp_path, sqlite_engine)

    @app.callback(Output("zz-boom", "children"), Input("zz-go", "n_clicks"))
    @guarded("viewer")
    def boom(_: Any) -> str:
        raise RuntimeError("a bug nobody foresaw")

    client = app.server.test_client()
    login(client)
    with caplog.at_level("WARNING", logger="custseg"):
        resp = post_callback(client, "zz-boom", {"zz-go.n_clicks": 1})
    assert resp.status_code == 500
    assert resp.get_json() == {"error": "the server could not answer this request"}
    [record] = [r for r in caplog.records if r.levelname == "ERROR"]
    assert record.getMessage() == "request failed" and not record.exc_info
    assert record.error == "RuntimeError: a bug nobody foresaw"  # type: ignore[attr-defined]
    assert record.where.startswith("test_security.py:")  # type: ignore[attr-defined]
    assert record.where.endswith(" in boom")  # type: ignore[attr-defined]
    # Other routes keep Flask's own handling.
    assert client.get("/health").status_code == 200


SQL_PAYLOADS: list[Any] = [
    "' OR 1=1 --",
    "1 OR 1=1",
    "1; DROP TABLE users",
    "1); DROP TABLE users; --",
    "'; DELETE FROM snapshots; --",
    "' UNION SELECT email, password_hash, 1, 1 FROM users --",
    '" OR ""="',
    "2011-01-01' OR '1'='1",
    "2011-01-01; DROP TABLE transactions",
    "1' AND pg_sleep(5) --",
    "%",
    "_",
    "\\",
    "\x00",
    "../../etc/passwd",
    "<script>alert(1)</script>",
    "9" * 500,
    "",
    "NaN",
    "-1",
    "2011-02-30",
    "0000-00-00",
    "9999-12-31",
    2**63,
    -(2**63) - 1,
    1e308,
    True,
    [],
    {},
    {"$gt": ""},
    [[1]],
    list(range(5_000)),
]


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_injection_payloads_in_the_overview_filters_are_handled(
    request: pytest.FixtureRequest, tmp_path: Path, database: str
) -> None:
    engine: Engine = request.getfixturevalue(f"{'sqlite' if database == 'sqlite' else 'pg'}_engine")
    import_file(engine, SAMPLE)
    refit(engine, k=3)
    app = build_app(tmp_path, engine)
    app.server.config["PROPAGATE_EXCEPTIONS"] = False
    client = app.server.test_client()
    login(client)
    before = table_counts(engine)
    clean = post_callback(client, KPIS, {}).get_json()["response"]
    assert clean[KPIS]["children"] == "297"
    slots = (
        lambda p: {"f-dates.start_date": p},
        lambda p: {"f-dates.end_date": p},
        lambda p: {"f-segments.value": p},
        lambda p: {"f-segments.value": [p]},
    )
    tried = 0
    for payload in SQL_PAYLOADS:
        for slot in slots:
            resp = post_callback(client, KPIS, slot(payload))
            tried += 1
            assert resp.status_code in (200, 204, 400), (payload, resp.status_code)
            if resp.status_code == 200:
                out = resp.get_json()["response"]
                figure = out[KPIS]["children"]
                assert figure == "–" or figure.replace(",", "").isdigit(), payload
                assert int(figure.replace(",", "").replace("–", "0")) <= 297
    assert tried == 4 * len(SQL_PAYLOADS)
    assert table_counts(engine) == before
    assert post_callback(client, KPIS, {}).get_json()["response"] == clean


def test_export_command_refuses_injection_in_its_filters(
    shop: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from config.settings import get_settings
    from webapp.cli import main

    _, engine, _ = shop
    command_line_env(monkeypatch, engine.url.render_as_string(hide_password=False), tmp_path)
    before = table_counts(engine)
    runner = CliRunner()
    out = str(tmp_path / "x.csv")
    try:
        for args in (
            ["--segment", "1; DROP TABLE users"],
            ["--segment", "' OR 1=1 --"],
            ["--start", "2011-01-01' OR '1'='1"],
            ["--end", "1; DROP TABLE users"],
            ["--snapshot", "1 OR 1=1"],
            ["--granularity", "month; DROP TABLE users"],
        ):
            result = runner.invoke(main, ["export", "sales", *args, "--out", out])
            assert result.exit_code == 2 and "Traceback" not in result.output, args
        for args in (["--segment", "99999999999999999999"], ["--snapshot", "99999999999999999999"]):
            result = runner.invoke(main, ["export", "sales", *args, "--out", out])
            assert result.exit_code in (1, 2), (args, result.output)
            assert result.exception is None or isinstance(result.exception, SystemExit)
        assert not Path(out).exists()
    finally:
        get_settings.cache_clear()
    assert table_counts(engine) == before


# --- 4. Export safety -------------------------------------------------------------------------

HOSTILE_TEXT = [
    "=1+2",
    '=HYPERLINK("https://evil.example","click")',
    "+33 1 23",
    "-2+3",
    "@SUM(A1:A2)",
    "\t=1+2",
    "\r=1+2",
    "|calc",
    "%0A=1+2",
    "=cmd|' /C calc'!A0",
]


def test_formula_prefixes_are_neutralized_in_csv_and_xlsx(tmp_path: Path) -> None:
    import openpyxl
    import pandas as pd

    from analytics.exports import FORMULA_PREFIXES, to_bytes

    assert set(FORMULA_PREFIXES) == {"=", "+", "-", "@", "\t", "\r", "|", "%"}
    frame = pd.DataFrame(
        {
            "name": HOSTILE_TEXT,
            "amount": [-5.0, -0.25, -1e6, 0.0, 3.5, -7.0, 1.0, -2.0, 0.5, -9.0],
            "count": [-1, -2, 3, 4, -5, 6, 7, -8, 9, 10],
        }
    )
    text = to_bytes(frame, "csv", {"export": "test"}).decode()
    back = pd.read_csv(io.StringIO(text), comment="#", dtype=str, keep_default_na=False)
    assert back.columns.tolist() == ["name", "amount", "count"]
    assert back["name"].tolist() == ["'" + t for t in HOSTILE_TEXT]
    assert back["amount"].tolist() == [str(v) for v in frame["amount"]]  # no apostrophe
    assert back["count"].tolist() == [str(v) for v in frame["count"]]
    path = tmp_path / "x.xlsx"
    path.write_bytes(to_bytes(frame, "xlsx", {"export": "test", "note": "=1+2"}))
    book = openpyxl.load_workbook(path)
    sheet = book["data"]
    names = [c for c in sheet["A"][1:]]
    assert [c.value for c in names] == ["'" + t for t in HOSTILE_TEXT]
    assert all(c.data_type == "s" for c in names)
    for col in ("B", "C"):
        cells = sheet[col][1:]
        assert all(c.data_type == "n" for c in cells)
    assert [c.value for c in sheet["B"][1:]] == frame["amount"].tolist()
    assert [c.value for c in sheet["C"][1:]] == frame["count"].tolist()
    for ws in book.worksheets:
        for row in ws.iter_rows():
            assert not any(c.data_type == "f" for c in row), ws.title
    assert "'=1+2" in [c.value for c in book["provenance"]["B"]]


# Printable: they pass the filter checks, so they reach the file's provenance.
HOSTILE_PROVENANCE = [
    '=HYPERLINK("https://evil.example","click")',
    "+33 1 23",
    "-2+3",
    "@SUM(A1:A2)",
    "|calc",
    "%0A=1+2",
    "12350,=1+2",
    "12350;=cmd|' /C calc'!A0",
    '12350,"=HYPERLINK(""https://evil.example"")"',
    "12350, @SUM(A1)",
]
# Control characters: a new line, a cell or a line separator of their own; refused as filters.
CONTROL_PROVENANCE = [
    '12350\r\n=HYPERLINK("https://evil.example","click")',
    "12350\n=1+2",
    "12350\r=1+2",
    "12350\t=1+2",
    "12350\x00=1+2",
    "12350\u2028=1+2",
    "12350\x85=1+2",
]


def formula_cells(line: str) -> list[str]:
    """The cells of a CSV line that a spreadsheet could run: split as Excel splits it, at
    commas, or at semicolons where that is the list separator (leading blanks ignored)."""
    import csv

    from analytics.exports import FORMULA_PREFIXES

    cells = [c for sep in (",", ";") for c in next(csv.reader([line], delimiter=sep))]
    return [c for c in cells if c.lstrip(" ").startswith(FORMULA_PREFIXES)]


def assert_inert_csv(data: bytes, customer: str) -> None:
    text = data.decode("utf-8")
    rows = text.split("\r\n")
    head = [r for r in rows if r.startswith("#")]
    assert f"# filter_customer: {customer[:5]}" in text or "# filter_customer: '" in text
    for row in rows:
        assert not formula_cells(row), (customer, row)
        assert "\r" not in row and "\n" not in row, (customer, row)
    assert len(head) >= 10 and any(r.startswith("# filter_customer: ") for r in head)


def assert_inert_xlsx(data: bytes, customer: str) -> None:
    import openpyxl

    from analytics.exports import FORMULA_PREFIXES

    sheet = openpyxl.load_workbook(io.BytesIO(data))["provenance"]
    values = {row[0].value: row[1] for row in sheet.iter_rows(min_row=2)}
    cell = values["filter_customer"]
    assert cell.data_type == "s" and isinstance(cell.value, str)
    assert cell.value.startswith("'") or not customer.startswith(FORMULA_PREFIXES)
    for row in sheet.iter_rows():
        for c in row:
            assert c.data_type != "f", (customer, c.value)
            text = str(c.value)
            assert not text.startswith(FORMULA_PREFIXES) and "\r" not in text and "\n" not in text


def test_provenance_values_are_inert_through_custseg_export(
    shop: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Issue 13 item 9: a `--customer` value lands in the file's provenance."""
    from config.settings import get_settings
    from webapp.cli import main

    _, engine, _ = shop
    # The check can fail: written as given, each value would leave a formula cell.
    assert all(formula_cells(f"# filter_customer: {v}") for v in HOSTILE_PROVENANCE[6:])
    assert all(formula_cells(v) for v in HOSTILE_PROVENANCE)
    command_line_env(monkeypatch, str(engine.url), tmp_path)
    runner = CliRunner()
    try:
        for i, customer in enumerate(HOSTILE_PROVENANCE):
            for fmt in ("csv", "xlsx"):
                out = tmp_path / f"c{i}.{fmt}"
                args = ["export", "customer_orders", "--customer", customer, "--format", fmt]
                result = runner.invoke(main, [*args, "--out", str(out)])
                assert result.exit_code == 0, (customer, result.output)
                check = assert_inert_csv if fmt == "csv" else assert_inert_xlsx
                check(out.read_bytes(), customer)
        for i, customer in enumerate(CONTROL_PROVENANCE):
            out = tmp_path / f"r{i}.csv"
            args = ["export", "customer_orders", "--customer", customer, "--out", str(out)]
            result = runner.invoke(main, args)
            assert result.exit_code == 1 and "customer id is not valid" in result.output
            assert not out.exists()
    finally:
        get_settings.cache_clear()
    # Refused as filters; should one reach a provenance by another way, it stays on its line.
    import pandas as pd

    from analytics.exports import to_bytes

    frame = pd.DataFrame({"customer_id": ["12350"], "total": [1.0]})
    for customer in CONTROL_PROVENANCE + HOSTILE_PROVENANCE:
        provenance = {f"p{i}": i for i in range(10)} | {"filter_customer": customer}
        assert_inert_csv(to_bytes(frame, "csv", provenance), customer)
        assert_inert_xlsx(to_bytes(frame, "xlsx", provenance), customer)


def test_provenance_values_are_inert_in_downloads(shop: Any) -> None:
    app, _, _ = shop
    client = app.server.test_client()
    login(client, email="analyst@example.com")
    item = {"chart": "customers-lookup", "type": "params"}

    def download(customer: str, button: str) -> Any:
        params = {"export": "customer_orders", "customer": customer, "segments": []}
        payload = {
            "output": next(
                d["output"]
                for d in client.get("/_dash-dependencies").get_json()
                if '"download"' in d["output"]
            ),
            "outputs": [
                {"id": {**item, "type": "download"}, "property": "data"},
                {"id": {**item, "type": "dl-msg"}, "property": "children"},
            ],
            "inputs": [
                {"id": {**item, "type": "dl-csv"}, "property": "n_clicks", "value": 1},
                {"id": {**item, "type": "dl-xlsx"}, "property": "n_clicks", "value": 1},
            ],
            "state": [{"id": item, "property": "data", "value": params}],
            "changedPropIds": [
                json.dumps({**item, "type": button}, separators=(",", ":")) + ".n_clicks"
            ],
        }
        resp = client.post("/_dash-update-component", json=payload)
        assert resp.status_code == 200, resp.data[:300]
        out = resp.get_json()["response"]
        key = json.dumps({**item, "type": "download"}, separators=(",", ":"), sort_keys=True)
        return out.get(key, {}).get("data"), out

    for customer in HOSTILE_PROVENANCE:
        for button, check in (("dl-csv", assert_inert_csv), ("dl-xlsx", assert_inert_xlsx)):
            file, _ = download(customer, button)
            assert file is not None, customer
            content = base64.b64decode(file["content"]) if file["base64"] else file["content"]
            check(content if isinstance(content, bytes) else content.encode(), customer)
    for customer in CONTROL_PROVENANCE:
        file, out = download(customer, "dl-csv")
        assert file is None and "customer id is not valid" in json.dumps(out)


def test_hostile_customer_ids_come_out_of_the_member_export_inert(
    tmp_path: Path, sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import openpyxl
    import pandas as pd

    from config.settings import get_settings
    from webapp.cli import main

    ids = ["=1+2", "+331234", "-7", "@SUM(A1)", "|calc", "%0A", "=cmd|' /C calc'!A0", "\t=2"]
    lines = [
        f'"{cid}",o{i}{j},2024-0{j + 1}-05,{10 + i},,'
        for i, cid in enumerate(ids)
        for j in range(3)
    ]
    path = tmp_path / "hostile.csv"
    path.write_text(
        "customer_id,order_id,ordered_at,amount,category,country\n" + "\n".join(lines) + "\n"
    )
    import_file(sqlite_engine, path)
    refit(sqlite_engine, k=2)
    command_line_env(monkeypatch, str(sqlite_engine.url), tmp_path)
    try:
        runner = CliRunner()
        csv_out, xlsx_out = tmp_path / "m.csv", tmp_path / "m.xlsx"
        assert runner.invoke(main, ["export", "members", "--out", str(csv_out)]).exit_code == 0
        args = ["export", "members", "--format", "xlsx", "--out", str(xlsx_out)]
        assert runner.invoke(main, args).exit_code == 0
    finally:
        get_settings.cache_clear()
    with sqlite_engine.connect() as conn:  # as stored (the importer trims blanks)
        stored = set(conn.execute(select(Transaction.customer_id).distinct()).scalars())
    assert len(stored) == len(ids)
    back = pd.read_csv(csv_out, comment="#", dtype=str, keep_default_na=False)
    assert sorted(back["customer_id"]) == sorted("'" + i for i in stored)
    sheet = openpyxl.load_workbook(xlsx_out)["data"]
    cells = sheet["A"][1:]
    assert sorted(c.value for c in cells) == sorted("'" + i for i in stored)
    assert all(c.data_type == "s" for c in cells)
    assert all(c.data_type == "n" for c in sheet["D"][1:])  # frequency stays a number


def test_export_row_cap_refuses_with_a_clear_message(
    shop: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from config.settings import get_settings
    from webapp.cli import main

    _, engine, _ = shop
    command_line_env(monkeypatch, str(engine.url), tmp_path, CUSTSEG_EXPORT_ROW_CAP="100")
    out = tmp_path / "members.csv"
    try:
        result = CliRunner().invoke(main, ["export", "members", "--out", str(out)])
        small = CliRunner().invoke(main, ["export", "segments", "--out", str(tmp_path / "s.csv")])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "297 rows is over the export cap of 100 (CUSTSEG_EXPORT_ROW_CAP)" in result.output
    assert not out.exists()
    assert small.exit_code == 0


# --- 5. Import and display safety -------------------------------------------------------------


class CountingStream(io.RawIOBase):
    """A request body that counts the bytes the app reads of it."""

    def __init__(self, size: int, fill: bytes = b"{},") -> None:
        self.left, self.read_bytes, self.fill = size, 0, fill

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.left)
        buffer[:n] = (self.fill * (n // len(self.fill) + 1))[:n]
        self.left -= n
        self.read_bytes += n
        return n


def test_a_large_callback_body_gets_413_before_it_is_read(shop: Any) -> None:
    from webapp.security import MAX_REQUEST_BYTES

    app, _, _ = shop
    client = app.server.test_client()
    login(client)
    size = 5 * 1024 * 1024  # a 5 MB body of "{}," once raised a worker by ~110 MB
    stream = CountingStream(size)
    resp = client.post(
        "/_dash-update-component",
        content_type="application/json",
        environ_overrides={"wsgi.input": stream, "CONTENT_LENGTH": str(size)},
    )
    assert resp.status_code == 413 and stream.read_bytes == 0
    assert resp.get_json() == {
        "error": "the request is over 128 KB (files are imported at /admin/import)"
    }
    # The same body with no Content-Length (chunked): read up to the limit, then refused.
    stream = CountingStream(size)
    resp = client.post(
        "/_dash-update-component",
        content_type="application/json",
        environ_overrides={
            "wsgi.input": stream,
            "wsgi.input_terminated": True,
            "HTTP_TRANSFER_ENCODING": "chunked",
        },
    )
    assert resp.status_code == 413
    assert 0 < stream.read_bytes <= MAX_REQUEST_BYTES + 64 * 1024
    # A real callback is far below the limit; the login form too.
    assert post_callback(client, KPIS, {}).status_code == 200
    big_login = client.post("/login", data={"email": "x" * 200_000})
    assert big_login.status_code == 413


HEADER = "customer_id,order_id,ordered_at,amount,category,country\n"
GOOD = "c1,o1,2024-01-05T10:00:00,12.50,toys,France\n"
BAD_FILES: list[tuple[str, bytes, str]] = [
    ("nul.csv", (HEADER + GOOD + "c2,o2,2024-01-06,3,a\x00b,\n").encode(), "row 3: contains a NUL"),
    (
        "unquoted_comma.csv",
        (HEADER + GOOD + "c2,o2,2024-01-06,3,Toys, Games,France\n").encode(),
        "row 3 has 7 fields, the header has 6",
    ),
    ("utf16.csv", (HEADER + GOOD).encode("utf-16"), "row 1: not valid utf-8"),
    ("archive.csv", b"PK\x03\x04\x14\x00" + bytes(range(256)) * 4, "not valid utf-8"),
    ("nan.csv", (HEADER + GOOD + "c2,o2,2024-01-06,nan,,\n").encode(), "column amount"),
    ("inf.csv", (HEADER + GOOD + "c2,o2,2024-01-06,1e309,,\n").encode(), "column amount"),
    ("year.csv", (HEADER + GOOD + "c2,o2,99999-01-06,3,,\n").encode(), "column ordered_at"),
    ("fewer.csv", (HEADER + GOOD + "c2,o2,2024-01-06\n").encode(), "row 3"),
    ("excel.csv", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64, "not valid utf-8"),
]


@pytest.mark.parametrize(("name", "content", "expected"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_more_bad_files_are_rejected_clearly_and_nothing_is_written(
    engine: Engine, tmp_path: Path, name: str, content: bytes, expected: str
) -> None:
    import_file(engine, SAMPLE)
    before = table_counts(engine)
    path = tmp_path / name
    path.write_bytes(content)
    rejected = import_rejection(engine, path)
    assert expected in rejected and name in rejected
    assert "Traceback" not in rejected
    assert table_counts(engine) == before


XSS = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", '"><svg onload=alert(1)>']


def test_text_from_data_travels_as_text_not_markup(tmp_path: Path, sqlite_engine: Engine) -> None:
    from db.models import SegmentLabel
    from db.session import session_scope

    lines = [
        f'"{x}",o{i}{j},2024-0{j + 1}-05,{10 + i},"{x}","{x}"'
        for i, x in enumerate(XSS)
        for j in range(2)
    ]
    path = tmp_path / "xss.csv"
    path.write_text(HEADER + GOOD + "\n".join(lines) + "\n")
    import_file(sqlite_engine, path)
    outcome = refit(sqlite_engine, k=2)
    with session_scope(sqlite_engine) as db:
        db.add(SegmentLabel(segment_id=outcome.segments[0]["segment_id"], name=XSS[1]))
    app = build_app(tmp_path, sqlite_engine)
    client = app.server.test_client()
    login(client)
    resp = post_callback(client, ROUTER, {"_pages_location.pathname": "/"})
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    labels = [
        opt["label"]
        for node in walk(resp.get_json())
        if node.get("props", {}).get("id") == "f-segments"
        for opt in node["props"]["options"]
    ]
    assert any(label.startswith(XSS[1]) for label in labels)  # the name, as a plain string
    for node in walk(resp.get_json()):
        assert "dangerously_allow_html" not in node.get("props", {})


def test_no_page_renders_raw_html() -> None:
    """Dash and Jinja escape text; these switch it off, so none may appear in webapp/."""
    root = Path(__file__).parent.parent / "webapp"
    forbidden = re.compile(
        r"dangerously_allow_html\s*=\s*True|dangerouslySetInnerHTML|Markup\(|\|\s*safe\b"
        r"|autoescape\s+false|html\.Iframe\([^)]*srcDoc"
    )
    hits = [
        f"{path.relative_to(root)}:{n}"
        for path in [*root.rglob("*.py"), *root.rglob("*.html"), *root.rglob("*.js")]
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if forbidden.search(line) and path.name != "security.py"
    ]
    assert hits == []


# --- 7. Headers -------------------------------------------------------------------------------


def test_security_headers_are_on_every_kind_of_response(shop: Any) -> None:
    app, _, _ = shop
    anon, client = app.server.test_client(), app.server.test_client()
    login(client)
    responses = {
        "login form": anon.get("/login"),
        "redirect": anon.get("/sales"),
        "401": anon.get("/_dash-layout"),
        "health": anon.get("/health"),
        "static": anon.get("/static/bootstrap.min.css"),
        "index": client.get("/"),
        "layout": client.get("/_dash-layout"),
        "callback": post_callback(client, KPIS, {}),
        "logout form": client.get("/logout"),
    }
    for name, resp in responses.items():
        h = resp.headers
        csp = h.get("Content-Security-Policy", "")
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp, name
        assert "'unsafe-inline'" not in csp.split("script-src", 1)[1].split(";")[0], name
        assert "'unsafe-eval'" not in csp, name
        assert h.get("X-Content-Type-Options") == "nosniff", name
        assert h.get("X-Frame-Options") == "DENY", name
        assert h.get("Referrer-Policy") == "same-origin", name
    for name in ("index", "layout", "callback", "login form"):
        assert responses[name].headers["Cache-Control"] == "no-store", name


def test_the_csp_hashes_cover_every_inline_script_dash_serves(shop: Any) -> None:
    app, _, _ = shop
    client = app.server.test_client()
    login(client)
    resp = client.get("/")
    csp = resp.headers["Content-Security-Policy"]
    html = re.sub(r"<!--.*?-->", "", resp.get_data(True), flags=re.S)  # comments never run
    inline = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>(.*?)</script>", html, re.S)
    executable = [body for attrs, body in inline if "application/json" not in attrs]
    assert len(executable) >= 2  # the renderer and the page-title clientside callback
    for body in executable:
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in csp, body[:60]
