"""Login, logout and the one guard that protects every route.

Public: the login form, the static CSS it needs and the health check. Everything else, Dash's
`/_dash-*` endpoints included, needs a logged-in user: JSON 401 for API calls, a redirect to
/login for pages.
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf.csrf import generate_csrf, validate_csrf
from limits import RateLimitItem, parse
from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms.validators import ValidationError

from db.models import User
from webapp import roles
from webapp.state import state

bp = Blueprint("auth", __name__)
login_manager = LoginManager()
limiter = Limiter(key_func=get_remote_address, default_limits=[], headers_enabled=True)

LOGIN_AT = "login_at"  # session key: when this session logged in (seconds since the epoch)


class SessionUser(UserMixin):
    """What a request knows of its user; the session id carries the user's session version."""

    def __init__(self, user: User) -> None:
        self.id = user.id
        self.email = user.email
        self.role = user.role
        self.session_version = user.session_version
        self._user = user

    def get_id(self) -> str:
        return f"{self.id}:{self.session_version}"

    def has_role(self, role: str) -> bool:
        return self._user.has_role(role)


@login_manager.user_loader
def _load_user(user_id: str) -> SessionUser | None:
    uid, _, version = user_id.partition(":")
    if not uid.isdigit() or not version.isdigit():
        return None
    # The absolute lifetime: activity renews the cookie, never the login time.
    login_at = session.get(LOGIN_AT)
    max_age = state().settings.session_max_hours * 3600
    if not isinstance(login_at, int) or time.time() - login_at > max_age:
        return None
    with state().sessions() as db:
        user = db.get(User, int(uid))
        if user is None or not user.active or user.session_version != int(version):
            return None
        return SessionUser(user)


def is_safe_next(target: str | None) -> bool:
    """Only local paths: no scheme, no host, no protocol-relative or backslash tricks."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return False
    if "\\" in target or any(ord(c) < 32 for c in target):
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc


def _account() -> str:
    return request.form.get("email", "").strip().lower()[:254]


def _account_address_key() -> str:
    return f"{_account()}|{get_remote_address()}"


def _failed(response: Response) -> bool:
    return request.method == "POST" and response.status_code != 302


# Failed logins are limited per client address and per (account, address): an attacker's
# address gets slow, the account's owner elsewhere does not. Per account alone there is only a
# ceiling (`_ceiling`): past it, each address gets one failure per window for that
# account, so guessing from many addresses stays slow and an address that has not failed
# still logs in (a lockout would be a gift to attackers).
def _ceiling() -> tuple[RateLimitItem, RateLimitItem]:
    """The per-account ceiling, and one failure in the same window (per address, past it)."""
    ceiling = parse(state().settings.login_account_limit)
    return ceiling, type(ceiling)(1, ceiling.multiples)


def _ceiling_refuses(account: str, address: str) -> bool:
    ceiling, once = _ceiling()
    strategy = limiter.limiter
    over = not strategy.test(ceiling, "login-ceiling", account)
    return over and not strategy.test(once, "login-ceiling-address", account, address)


def _count_failure(account: str, address: str) -> None:
    ceiling, once = _ceiling()
    limiter.limiter.hit(ceiling, "login-ceiling", account)
    limiter.limiter.hit(once, "login-ceiling-address", account, address)


@cache
def _dummy_hash() -> str:
    """A scrypt hash like every user's, of a password nobody knows: an unknown or deactivated
    account costs the same hash as a wrong password, so timing does not tell them apart."""
    return generate_password_hash(secrets.token_urlsafe(32), method="scrypt")


def _verify(user: User | None, password: str) -> bool:
    """Exactly one password hash per attempt, whoever the account is."""
    if user is None or not user.active:
        check_password_hash(_dummy_hash(), password)
        return False
    return user.check_password(password)


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: state().settings.login_rate_limit, methods=["POST"], deduct_when=_failed)
@limiter.limit(
    lambda: state().settings.login_rate_limit,
    key_func=_account_address_key,
    methods=["POST"],
    deduct_when=_failed,
    scope="login-account-address",
)
def login() -> Any:
    next_url = request.values.get("next", "")
    if not is_safe_next(next_url):
        next_url = ""
    error = None
    status = 200
    if request.method == "POST":
        try:
            validate_csrf(request.form.get("csrf_token", ""))
        except ValidationError:
            error, status = "Your form expired; please try again.", 400
        else:
            email, address = _account(), get_remote_address()
            if _ceiling_refuses(email, address):
                return _rate_limited(None)
            password = request.form.get("password", "")
            with state().sessions() as db:
                user = db.scalar(select(User).where(User.email == email))
                if _verify(user, password) and user is not None:
                    user.last_login_at = datetime.now(UTC).replace(tzinfo=None)
                    db.commit()
                    session.clear()  # a new session on login: no fixation
                    login_user(SessionUser(user))
                    session.permanent = True
                    session[LOGIN_AT] = int(time.time())
                    return redirect(next_url or "/")
            _count_failure(email, address)
            error, status = "Wrong email or password.", 401
    return (
        render_template("login.html", error=error, next=next_url, csrf_token=generate_csrf()),
        status,
    )


@bp.route("/logout", methods=["GET", "POST"])
def logout() -> Any:
    """POST with the CSRF token logs out; GET only asks, so a cross-site link cannot."""
    if request.method == "GET" or not _csrf_ok():
        status = 200 if request.method == "GET" else 400
        return render_template("logout.html", csrf_token=generate_csrf()), status
    if current_user.is_authenticated:
        # Ends every session of this user: a copied cookie stops working too.
        with state().sessions() as db:
            user = db.get(User, current_user.id)
            if user is not None:
                user.session_version += 1
                db.commit()
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))


def _csrf_ok() -> bool:
    try:
        validate_csrf(request.form.get("csrf_token", ""))
    except ValidationError:
        return False
    return True


def _is_api(path: str) -> bool:
    return path.startswith(("/_dash-", "/_reload-hash", "/_favicon", "/api/"))


def guard() -> Any:
    """Runs before every request: who may use which route (`webapp/roles.py::ROUTES`).

    Public routes pass; anything else needs a login (JSON 401 for API calls, a redirect to the
    login form for pages) and the route's role; a route nobody declared is refused (404).
    """
    role = roles.ROUTES.get(request.endpoint or "")
    if role == roles.PUBLIC:
        return None
    if not current_user.is_authenticated:
        if _is_api(request.path) or request.method != "GET":
            return jsonify(error="authentication required"), 401
        target = request.full_path if request.query_string else request.path
        return redirect(url_for("auth.login", next=target))
    if request.endpoint is None:
        return None  # no such route: Flask answers 404
    if role is None:
        return jsonify(error="not found"), 404
    if not roles.has_role(role):
        return jsonify(error=f"this needs the {role} role"), 403
    return None


def _rate_limited(exc: Exception | None) -> Any:
    return (
        render_template(
            "login.html",
            error="Too many failed attempts. Try again later.",
            next="",
            csrf_token=generate_csrf(),
        ),
        429,
    )


def init_app(server: Flask) -> None:
    login_manager.init_app(server)
    login_manager.session_protection = "basic"
    limiter.init_app(server)
    _dummy_hash()  # now, not on the first unknown account's login (that one would take longer)
    server.register_blueprint(bp)
    server.before_request(guard)
    server.register_error_handler(429, _rate_limited)

    @server.route("/health")
    def health() -> Any:
        return jsonify(status="ok")
