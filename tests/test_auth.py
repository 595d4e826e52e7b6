"""Every route is protected; login, logout and `next` behave."""

from __future__ import annotations

import pytest

from tests.conftest import PASSWORD, login
from tests.helpers import logout

# The unsubscribe link is public: its signed token decides (tests/test_notifications.py).
PUBLIC = {"/login", "/static/<path:filename>", "/health", "/unsubscribe/<token>"}


def concrete(rule: str) -> str:
    return (
        rule.replace("<path:filename>", "bootstrap.min.css")
        .replace("<path:path>", "x")
        .replace("<string:path>", "x")
        .replace("<path:package_name>", "dash")
        .replace("<path:fingerprinted_path>", "x.js")
    )


def test_every_rule_of_the_url_map_refuses_anonymous_requests(app, client) -> None:  # type: ignore[no-untyped-def]
    probed = 0
    for rule in app.server.url_map.iter_rules():
        if rule.rule in PUBLIC:
            continue
        path = concrete(rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            resp = client.open(path, method=method, json={} if method == "POST" else None)
            probed += 1
            assert resp.status_code in (301, 302, 401), (method, path, resp.status_code)
            if resp.status_code in (301, 302):
                assert resp.headers["Location"].startswith("/login")
            body = resp.get_data(as_text=True)
            assert "customer" not in body.lower() or resp.status_code == 302, path
    assert probed >= 8


def test_dash_endpoints_answer_401_json_to_anonymous(client) -> None:  # type: ignore[no-untyped-def]
    for path in ("/_dash-layout", "/_dash-dependencies"):
        resp = client.get(path)
        assert resp.status_code == 401 and resp.is_json
    resp = client.post("/_dash-update-component", json={"output": "x", "inputs": []})
    assert resp.status_code == 401 and resp.is_json


def test_a_logged_in_user_gets_the_pages_and_dash_endpoints(client) -> None:  # type: ignore[no-untyped-def]
    assert login(client).status_code == 302
    for path in ("/", "/_dash-layout", "/_dash-dependencies"):
        assert client.get(path).status_code == 200, path


def test_wrong_password_is_refused(client) -> None:  # type: ignore[no-untyped-def]
    resp = login(client, password="wrong password!")
    assert resp.status_code == 401
    assert client.get("/_dash-layout").status_code == 401


def test_login_without_csrf_token_is_refused(client) -> None:  # type: ignore[no-untyped-def]
    resp = client.post("/login", data={"email": "viewer@example.com", "password": PASSWORD})
    assert resp.status_code == 400
    assert client.get("/_dash-layout").status_code == 401


@pytest.mark.parametrize(
    ("target", "allowed"),
    [
        ("/retention?start=2011-01-01", True),
        ("https://evil.example", False),
        ("//evil.example", False),
        ("/\\evil.example", False),
        ("javascript:alert(1)", False),
        ("http:/evil.example", False),
    ],
)
def test_next_goes_only_to_local_paths(client, target: str, allowed: bool) -> None:  # type: ignore[no-untyped-def]
    resp = login(client, next=target)
    assert resp.status_code == 302
    assert resp.headers["Location"] == (target if allowed else "/")


def test_anonymous_page_request_redirects_to_login_with_next(client) -> None:  # type: ignore[no-untyped-def]
    resp = client.get("/sales?start=2011-01-01")
    assert resp.status_code == 302
    assert resp.headers["Location"].startswith("/login?next=")


def test_logout_invalidates_the_old_session_cookie(app) -> None:  # type: ignore[no-untyped-def]
    client = app.server.test_client()
    login(client)
    cookie = client.get_cookie("custseg_session")
    assert cookie is not None
    assert logout(client).status_code == 302
    assert client.get("/_dash-layout").status_code == 401
    replay = app.server.test_client()
    replay.set_cookie("custseg_session", cookie.value)
    assert replay.get("/_dash-layout").status_code == 401


def test_session_cookie_flags(client) -> None:  # type: ignore[no-untyped-def]
    resp = login(client)
    header = resp.headers.get("Set-Cookie", "")
    assert "HttpOnly" in header and "SameSite=Lax" in header
