"""Response headers, callback request checks and role checks: the web app's defences beyond login.

`webapp/auth.py::guard` decides who is logged in; this module adds, for every response, a
Content-Security-Policy that Dash runs under and the usual browser hardening headers, refuses
callback requests whose shape does not match a registered callback (a 400 instead of a crash in
Dash's dispatcher), and checks the role every callback declares (webapp/roles.py) before Dash
runs it: a user without it, or a callback that declares none, gets a 403.

Why a small after_request rather than flask-talisman: the policy has to carry the hashes of
Dash's inline scripts, which exist only once Dash has set itself up on the first request, and
the rest is five fixed headers; a dependency would not save code and would need its own
configuration of the same values.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import dash
from flask import Flask, Response, jsonify, request

from webapp import roles

log = logging.getLogger("custseg.security")

CALLBACK_PATH = "/_dash-update-component"
# Dash's Location-style props carry URLs; its page router assumes strings that start with "/".
URL_PROPS = frozenset({"pathname", "search", "hash", "href"})
MAX_CALLBACK_ITEMS = 1_000


def content_security_policy(script_hashes: list[str]) -> str:
    """The policy: only this origin's scripts plus Dash's own inline scripts, by hash.

    style-src needs 'unsafe-inline': Plotly and React components set inline styles. Nothing may
    frame the app, post forms elsewhere or change the base URL.
    """
    directives = {
        "default-src": ["'self'"],
        "script-src": ["'self'", *script_hashes],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "worker-src": ["'self'", "blob:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
    return "; ".join(f"{name} {' '.join(values)}" for name, values in directives.items())


def _headers(app: dash.Dash) -> Callable[[Response], Response]:
    def add(response: Response) -> Response:
        h = response.headers
        h.setdefault("Content-Security-Policy", content_security_policy(list(app.csp_hashes())))
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("X-Frame-Options", "DENY")
        h.setdefault("Referrer-Policy", "same-origin")
        h.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        h.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        if not request.path.startswith(("/_dash-component-suites/", "/static/", "/assets/")):
            # Pages and data: never kept by a shared browser or proxy cache.
            h.setdefault("Cache-Control", "no-store")
        return response

    return add


def _bad_request(message: str) -> tuple[Response, int]:
    log.warning("callback request refused", extra={"reason": message, "path": request.path})
    return jsonify(error=f"bad callback request: {message}"), 400


def _check_items(
    given: Any, declared: list[dict[str, Any]], what: str, check_urls: bool
) -> str | None:
    """Why `given` (the inputs or state of a request) does not fit `declared`, or None."""
    if not isinstance(given, list) or len(given) != len(declared):
        return f"{what} do not match the callback"
    for item, spec in zip(given, declared, strict=True):
        pattern = str(spec.get("id", "")).startswith("{")
        entries = item if pattern and isinstance(item, list) else [item]
        if len(entries) > MAX_CALLBACK_ITEMS:
            return f"too many {what}"
        for entry in entries:
            if not isinstance(entry, dict) or entry.get("property") != spec.get("property"):
                return f"{what} do not match the callback"
            if not pattern and entry.get("id") != spec.get("id"):
                return f"{what} do not match the callback"
            value = entry.get("value")
            if check_urls and spec.get("property") in URL_PROPS and value is not None:
                if not isinstance(value, str):
                    return f"{spec['id']}.{spec['property']} is not text"
                if spec["property"] == "pathname" and not value.startswith("/"):
                    return f"{spec['id']}.pathname is not a local path"
    return None


def _outputs_fit(output: str, outputs: Any) -> bool:
    """Whether a request's `outputs` has the callback's shape: one entry per output, a list of
    entries for an output that addresses every matching component (ALL)."""
    parts = output[2:-2].split("...") if output.startswith("..") else [output]

    def fits(part: str, given: Any) -> bool:
        if '["ALL"]' in part or '["ALLSMALLER"]' in part:
            return isinstance(given, list) and len(given) <= MAX_CALLBACK_ITEMS
        return isinstance(given, dict)

    if len(parts) == 1 and not output.startswith(".."):
        return fits(parts[0], outputs)
    if not isinstance(outputs, list) or len(outputs) != len(parts):
        return False
    return all(fits(p, g) for p, g in zip(parts, outputs, strict=True))


def _check_callback_request(app: dash.Dash) -> Callable[[], Any]:
    """Refuse, with a 400, a callback request that no registered callback could have sent."""

    def check() -> Any:
        if request.path != CALLBACK_PATH or request.method != "POST":
            return None
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return _bad_request("the body is not a JSON object")
        output = body.get("output")
        if not isinstance(output, str) or output not in app.callback_map:
            return _bad_request("no such callback")
        spec = app.callback_map[output]
        role = roles.callback_role(output, spec.get("callback"))
        if role is None:  # fail closed: every callback says who may use it
            log.warning("callback without a declared role refused", extra={"output": output})
            return jsonify(error="this callback declares no role"), 403
        if not roles.has_role(role):
            log.warning("role refused", extra={"needs": role, "output": output[:200]})
            return jsonify(error=f"this needs the {role} role"), 403
        why = _check_items(body.get("inputs"), spec.get("inputs", []), "inputs", True)
        why = why or _check_items(body.get("state", []), spec.get("state", []), "state", False)
        if why:
            return _bad_request(why)
        outputs = body.get("outputs")
        if not spec.get("no_output") and not _outputs_fit(output, outputs):
            return _bad_request("outputs do not match the callback")
        changed = body.get("changedPropIds", [])
        if not isinstance(changed, list) or not all(isinstance(c, str) for c in changed):
            return _bad_request("changedPropIds is not a list of names")
        return None

    return check


def _forbidden(exc: Exception) -> Any:
    return jsonify(error=getattr(exc, "description", None) or "not allowed"), 403


def _too_large(exc: Exception) -> Any:
    limit = (request.max_content_length or 0) // (1024 * 1024)
    return jsonify(error=f"the request is over {limit} MB (CUSTSEG_MAX_UPLOAD_MB)"), 413


def init_app(app: dash.Dash) -> None:
    """Wire the headers, the callback checks and the page roles into a built Dash app."""
    server: Flask = app.server
    server.before_request(_check_callback_request(app))
    server.after_request(_headers(app))
    server.register_error_handler(403, _forbidden)
    server.register_error_handler(413, _too_large)
    roles.protect_pages()
