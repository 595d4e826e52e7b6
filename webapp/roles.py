"""One role mechanism: every callback, route and page says who may use it, in one way.

- Callbacks: `@roles.callback(outputs..., role="analyst")` (a page's callbacks) or
  `roles.app_callback(app, ..., role=...)` (callbacks registered per app) register a Dash
  callback and declare its role; the wrapper refuses a user without the role with a 403.
  `webapp/security.py` checks every callback request before Dash runs it: a callback that
  declares no role is refused too (fail closed), so a forgotten declaration cannot leak.
- Routes: `ROUTES` maps every endpoint of the server to a role or `PUBLIC`; `webapp/auth.py`'s
  guard refuses anything else.
- Pages: `dash.register_page(..., role=..., order=...)`: the navbar links only the pages a user
  may open (webapp/app.py) and `protect_pages` serves a notice instead of the layout to others.

Data has roles of its own: each export declares who may receive it
(`analytics/exports/registry.py`) and `db/exporter.py` refuses the rest; customer-level data is
for analysts (docs/SECURITY.md).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import dash
from flask import abort, request
from flask_login import current_user

log = logging.getLogger("custseg.security")
F = TypeVar("F", bound=Callable[..., Any])
Role = Literal["viewer", "analyst", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "analyst", "admin")
PUBLIC = "public"  # no login needed
ATTRIBUTE = "_custseg_role"

# Every endpoint of the server and who may use it. Dash's own endpoints (its index, layout,
# dependencies, callbacks, scripts) need a login; what a callback may do is its own role.
ROUTES: dict[str, str] = {
    "auth.login": PUBLIC,
    "static": PUBLIC,  # the CSS the login form needs
    "health": PUBLIC,
    "notify.unsubscribe_link": PUBLIC,  # a notification e-mail's link: its signed token decides
    "auth.logout": "viewer",
    "uploads.import_file": "admin",
    "_dash_assets.static": "viewer",
    "/_dash-component-suites/<string:package_name>/<path:fingerprinted_path>": "viewer",
    "/_dash-layout": "viewer",
    "/_dash-dependencies": "viewer",
    "/_dash-update-component": "viewer",
    "/_reload-hash": "viewer",
    "/_favicon.ico": "viewer",
    "/": "viewer",
    "/<path:path>": "viewer",
}
# Callbacks Dash itself registers: its page router (the page's own role is checked where the
# layout is built, see `protect_pages`).
DASH_CALLBACKS = {"_pages_content": "viewer", "_pages_store": "viewer"}


def role_of_user() -> str | None:
    if current_user and current_user.is_authenticated:
        return str(current_user.role)
    return None


def has_role(role: str) -> bool:
    """True when the logged-in user's role includes `role` (admin > analyst > viewer)."""
    return bool(current_user and current_user.is_authenticated and current_user.has_role(role))


def declared(fn: Callable[..., Any]) -> str | None:
    """The role a callback function declared, if any."""
    return getattr(fn, ATTRIBUTE, None)


def guarded(role: Role) -> Callable[[F], F]:
    """Mark `fn` as needing `role` and refuse (403) users without it."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def checked(*args: Any, **kwargs: Any) -> Any:
            if not has_role(role):
                log.warning("role refused", extra={"needs": role, "path": request.path})
                abort(403, description=f"this needs the {role} role")
            return fn(*args, **kwargs)

        setattr(checked, ATTRIBUTE, role)
        return checked  # type: ignore[return-value]

    return wrap


def callback(*args: Any, role: Role, **kwargs: Any) -> Callable[[F], F]:
    """`dash.callback` for a page module, with the role it needs."""

    def register(fn: F) -> F:
        checked = guarded(role)(fn)
        dash.callback(*args, **kwargs)(checked)
        return checked

    return register


def app_callback(app: dash.Dash, *args: Any, role: Role, **kwargs: Any) -> Callable[[F], F]:
    """`app.callback` (callbacks registered per app), with the role it needs."""

    def register(fn: F) -> F:
        checked = guarded(role)(fn)
        app.callback(*args, **kwargs)(checked)
        return checked

    return register


def callback_role(output: str, fn: Callable[..., Any] | None) -> str | None:
    """The role of the callback writing `output` (None: it declares none)."""
    role = declared(fn) if fn is not None else None
    if role is None:
        ident = output.strip(".").split(".", 1)[0]
        role = DASH_CALLBACKS.get(ident)
    return role


def _forbidden_page(role: str) -> Any:
    import dash_bootstrap_components as dbc

    return dbc.Alert(
        f"This page needs the {role} role. Ask an admin if you need it.", color="warning"
    )


def page_role(page: dict[str, Any]) -> str:
    return str(page.get("role") or "viewer")


def protect_pages() -> None:
    """Each page's layout renders only for its role (`register_page(..., role=...)`); others get
    a notice. The check runs where Dash builds the layout (its page router's callback), so a
    request that skips the navbar still gets nothing."""
    for page in dash.page_registry.values():
        role = page_role(page)
        if getattr(page["layout"], ATTRIBUTE, None) == role:
            continue
        original = page["layout"]

        def layout(*args: Any, _original: Any = original, _role: str = role, **kw: Any) -> Any:
            if not has_role(_role):
                return _forbidden_page(_role)
            return _original(*args, **kw) if callable(_original) else _original

        setattr(layout, ATTRIBUTE, role)
        page["layout"] = layout


def visible_pages() -> list[dict[str, Any]]:
    """The registered pages the current user may open, in navbar order."""

    def place(page: dict[str, Any]) -> tuple[int, str]:
        order = page.get("order")
        return (order if isinstance(order, int) else 99, page["path"])

    pages = sorted(dash.page_registry.values(), key=place)
    return [p for p in pages if has_role(page_role(p))]
