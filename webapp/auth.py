"""Login, logout and the one guard that protects every route.

Public: the login form, the static CSS it needs and the health check. Everything else, Dash's
`/_dash-*` endpoints included, needs a logged-in user: JSON 401 for API calls, a redirect to
/login for pages.
"""

from __future__ import annotations

from datetime import UTC, datetime
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
from sqlalchemy import select
from wtforms.validators import ValidationError

from db.models import User
from webapp import roles
from webapp.state import state

bp = Blueprint("auth", __name__)
login_manager = LoginManager()
limiter = Limiter(key_func=get_remote_address, default_limits=[], headers_enabled=True)


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


def _account_key() -> str:
    return "account:" + request.form.get("email", "").strip().lower()[:254]


def _failed(response: Response) -> bool:
    return request.method == "POST" and response.status_code != 302


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: state().settings.login_rate_limit, methods=["POST"], deduct_when=_failed)
@limiter.limit(
    lambda: state().settings.login_rate_limit,
    key_func=_account_key,
    methods=["POST"],
    deduct_when=_failed,
    scope="login-account",
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
            email = request.form.get("email", "").strip().lower()
            password = request.form.get("password", "")
            with state().sessions() as db:
                user = db.scalar(select(User).where(User.email == email))
                ok = user is not None and user.active and user.check_password(password)
                if ok and user is not None:
                    user.last_login_at = datetime.now(UTC).replace(tzinfo=None)
                    db.commit()
                    session.clear()  # a new session on login: no fixation
                    login_user(SessionUser(user))
                    session.permanent = True
                    return redirect(next_url or "/")
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


def _rate_limited(exc: Exception) -> Any:
    return (
        render_template(
            "login.html",
            error="Too many failed attempts. Wait a minute, then try again.",
            next="",
            csrf_token=generate_csrf(),
        ),
        429,
    )


def init_app(server: Flask) -> None:
    login_manager.init_app(server)
    login_manager.session_protection = "basic"
    limiter.init_app(server)
    server.register_blueprint(bp)
    server.before_request(guard)
    server.register_error_handler(429, _rate_limited)

    @server.route("/health")
    def health() -> Any:
        return jsonify(status="ok")
