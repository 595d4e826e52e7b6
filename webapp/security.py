"""Response headers, request checks and role checks: the web app's defences beyond login.

`webapp/auth.py::guard` decides who is logged in; this module adds, for every response, a
Content-Security-Policy that Dash runs under and the usual browser hardening headers, and before
anything else reads a request:

- refuses state-changing requests (POST, PUT, PATCH, DELETE) that a browser sent from another
  site: an `Origin` that is not the app's own, or `Sec-Fetch-Site: cross-site` / `same-site`
  (the app's own origin: `CUSTSEG_PUBLIC_URL`, else the request's host as the trusted proxies
  forward it);
- bounds every request body to `MAX_REQUEST_BYTES` (413 from `Content-Length`, before the body
  is read); only the upload route (webapp/uploads.py) allows `CUSTSEG_MAX_UPLOAD_MB`;
- refuses callback requests whose shape does not match a registered callback: its outputs, inputs,
  state and changedPropIds must be the callback's own (a 400 with the reason instead of an
  exception in Dash's dispatcher), and checks the role every callback declares
  (webapp/roles.py): a user without it, or a callback that declares none, gets a 403.

Whatever still escapes Dash's dispatcher answers a JSON 500 and one log line, not a traceback page.

Why a small after_request rather than flask-talisman: the policy has to carry the hashes of
Dash's inline scripts, which exist only once Dash has set itself up on the first request, and
the rest is five fixed headers; a dependency would not save code and would need its own
configuration of the same values.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import dash
from dash.exceptions import DependencyException
from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from config.settings import origin_of
from webapp import roles
from webapp.state import state

log = logging.getLogger("custseg.security")

CALLBACK_PATH = "/_dash-update-component"
# Dash's Location-style props carry URLs; its page router assumes strings that start with "/".
URL_PROPS = frozenset({"pathname", "search", "hash", "href"})
MAX_CALLBACK_ITEMS = 1_000
# The largest request body outside the upload route. The largest real callback request (every
# page with every filter set, in Chromium) is about 2 KB (docs/SECURITY.md); JSON parsing takes
# some 20 times a body's size in memory, so this bounds a request to a few MB.
MAX_REQUEST_BYTES = 128 * 1024
# Real callback bodies nest less than 10 deep; deeper ones only serve to exhaust recursion.
MAX_JSON_DEPTH = 64
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
OTHER_SITE = frozenset({"cross-site", "same-site"})
ROOT = Path(__file__).resolve().parent.parent


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


def own_origin() -> str | None:
    """The app's origin: CUSTSEG_PUBLIC_URL's when set, else the request's scheme and host (as
    the trusted proxies forward them, webapp/app.py's ProxyFix)."""
    return state().settings.public_origin or origin_of(f"{request.scheme}://{request.host}")


def check_origin() -> Any:
    """Refuse (403) a state-changing request a browser sent from another site.

    A request with neither `Origin` nor `Sec-Fetch-Site` passes: browsers send `Origin` with
    every cross-origin POST, so its absence means a non-browser client (which holds no victim's
    cookie); forms still need their CSRF token.
    """
    if request.method not in STATE_CHANGING:
        return None
    origin = request.headers.get("Origin")
    site = request.headers.get("Sec-Fetch-Site", "").strip().lower()
    if origin is None and site not in OTHER_SITE:
        return None
    expected = own_origin()
    ours = origin is None or (expected is not None and origin_of(origin) == expected)
    if site in OTHER_SITE or not ours:
        log.warning(
            "cross-site request refused",
            extra={
                "origin": (origin or "")[:200],
                "sec_fetch_site": site[:40],
                "expected": expected,
                "path": request.path[:200],
                "hint": "set CUSTSEG_PUBLIC_URL, or CUSTSEG_TRUSTED_PROXIES behind a proxy",
            },
        )
        return jsonify(error="cross-site request refused"), 403
    return None


def _bad_request(message: str) -> tuple[Response, int]:
    log.warning("callback request refused", extra={"reason": message, "path": request.path})
    return jsonify(error=f"bad callback request: {message}"), 400


def _too_deep(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether JSON `value` nests deeper than `limit` (iteratively: no recursion to exhaust)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            node = list(node.values())
        if not isinstance(node, list):
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in node)
    return False


@lru_cache(maxsize=1024)
def _pattern(ident: str) -> dict[str, Any] | None:
    """A declared pattern-matching id (JSON in the callback map), or None for a plain id."""
    if not ident.startswith("{"):
        return None
    parsed = json.loads(ident)
    return parsed if isinstance(parsed, dict) else None


def _wildcards(ident: str) -> set[str]:
    return {v[0] for v in (_pattern(ident) or {}).values() if isinstance(v, list) and v}


def _many(ident: str) -> bool:
    """Whether a declared id addresses every matching component (a list in requests)."""
    return bool(_wildcards(ident) & {"ALL", "ALLSMALLER"})


def _id_fits(declared: str, given: Any) -> bool:
    """Whether `given` (an id from a request) is the declared id, or matches its pattern: the
    same keys, the fixed values equal, a wildcard's value plain (text, number)."""
    pattern = _pattern(declared)
    if pattern is None:
        return isinstance(given, str) and given == declared
    if not isinstance(given, dict) or set(given) != set(pattern):
        return False
    for key, want in pattern.items():
        value = given[key]
        if isinstance(want, list):
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                return False
        elif value != want:
            return False
    return True


def _entry_fits(entry: Any, ident: str, prop: str) -> bool:
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("property"), str)
        and entry["property"].split("@")[0] == prop.split("@")[0]
        and _id_fits(ident, entry.get("id"))
    )


def _check_items(
    given: Any, declared: list[dict[str, Any]], what: str, check_urls: bool
) -> str | None:
    """Why `given` (the inputs or state of a request) does not fit `declared`, or None."""
    if not isinstance(given, list) or len(given) != len(declared):
        return f"{what} do not match the callback"
    for item, spec in zip(given, declared, strict=True):
        ident, prop = str(spec.get("id", "")), str(spec.get("property", ""))
        if _many(ident):
            if not isinstance(item, list):
                return f"{what} do not match the callback"
            entries = item
        else:
            entries = [item]
        if len(entries) > MAX_CALLBACK_ITEMS:
            return f"too many {what}"
        for entry in entries:
            if not _entry_fits(entry, ident, prop):
                return f"{what} do not match the callback"
            value = entry.get("value")
            if check_urls and prop in URL_PROPS and value is not None:
                if not isinstance(value, str):
                    return f"{ident}.{prop} is not text"
                if prop == "pathname" and not value.startswith("/"):
                    return f"{ident}.pathname is not a local path"
    return None


def _output_parts(output: str) -> list[tuple[str, str]]:
    """A callback map key as (id, property) per output ("..a.x...b.y.." is multi-output)."""
    parts = output[2:-2].split("...") if output.startswith("..") else [output]
    return [tuple(part.rsplit(".", 1)) for part in parts]  # type: ignore[misc]


def _outputs_fit(output: str, outputs: Any) -> bool:
    """Whether a request's `outputs` are the callback's: one entry per output with its id and
    property, a list of entries for an output that addresses every matching component (ALL)."""
    parts = _output_parts(output)

    def fits(ident: str, prop: str, given: Any) -> bool:
        if _many(ident):
            return (
                isinstance(given, list)
                and len(given) <= MAX_CALLBACK_ITEMS
                and all(_entry_fits(g, ident, prop) for g in given)
            )
        return _entry_fits(given, ident, prop)

    if not output.startswith(".."):
        return fits(*parts[0], outputs)
    if not isinstance(outputs, list) or len(outputs) != len(parts):
        return False
    return all(fits(i, p, g) for (i, p), g in zip(parts, outputs, strict=True))


def _changed_fit(changed: Any, inputs: list[dict[str, Any]]) -> bool:
    """Whether every changedPropIds entry names an input of the callback ("id.property", a
    pattern id as JSON): Dash's callback context parses them (`ctx.triggered_id`)."""
    if not isinstance(changed, list) or len(changed) > MAX_CALLBACK_ITEMS:
        return False
    for item in changed:
        if not isinstance(item, str) or len(item) > 1_000:
            return False
        ident, dot, prop = item.rpartition(".")
        if not dot:
            return False
        given: Any = ident
        if ident.startswith("{"):
            try:
                given = json.loads(ident)
            except (ValueError, RecursionError):
                return False
        if not any(
            str(d.get("property")) == prop and _id_fits(str(d.get("id", "")), given) for d in inputs
        ):
            return False
    return True


def _check_callback_request(app: dash.Dash) -> Callable[[], Any]:
    """Refuse, with a 400, a callback request that no registered callback could have sent."""

    def check() -> Any:
        if request.path != CALLBACK_PATH or request.method != "POST":
            return None
        # Over MAX_REQUEST_BYTES: werkzeug answers 413 from Content-Length, unread. A body
        # without one (chunked) is read up to the limit and cut there: refused too.
        limit = request.max_content_length
        if request.content_length is None and limit and len(request.get_data()) >= limit:
            return _too_large(None)
        try:
            body = request.get_json(silent=True)
        except RecursionError:
            return _bad_request("the body is nested too deeply")
        if _too_deep(body):
            return _bad_request("the body is nested too deeply")
        if not isinstance(body, dict):
            return _bad_request("the body is not a JSON object")
        output = body.get("output")
        if not isinstance(output, str) or output not in app.callback_map:
            return _bad_request("no such callback")
        spec = app.callback_map[output]
        if not callable(spec.get("callback")):
            return _bad_request("this callback runs in the browser")
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
        if not _changed_fit(body.get("changedPropIds", []), spec.get("inputs", [])):
            return _bad_request("changedPropIds do not name inputs of the callback")
        return None

    return check


def _no_such_file(exc: Exception) -> Any:
    """A script path Dash does not serve (a traversal, an unknown package): 404, one line."""
    log.warning("no such script", extra={"path": request.path[:300]})
    return jsonify(error="not found"), 404


def _where(exc: BaseException) -> str:
    """Where `exc` was raised: the innermost frame of this project's code, else the innermost."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if f.filename.startswith(str(ROOT)) and ".venv" not in f.filename]
    ours = [f for f in ours if "site-packages" not in f.filename]
    chosen = ours or list(frames)
    if not chosen:
        return "?"
    frame = chosen[-1]
    return f"{Path(frame.filename).name}:{frame.lineno} in {frame.name}"


def _unexpected(exc: Exception) -> Any:
    """Whatever escapes Dash's endpoints: a JSON 500 and one log line saying where, not a
    traceback page (in development the log line carries the traceback too).

    HTTP errors keep their own answer; other routes keep Flask's (the exception is re-raised).
    """
    if isinstance(exc, HTTPException):
        return exc
    if not request.path.startswith("/_dash-"):
        raise exc
    log.error(
        "request failed",
        extra={
            "path": request.path[:200],
            "error": f"{type(exc).__name__}: {exc}"[:300],
            "where": _where(exc),
        },
        # One line in production and test; a developer's `make run` keeps the traceback.
        exc_info=exc if state().settings.env == "development" else None,
    )
    return jsonify(error="the server could not answer this request"), 500


def _forbidden(exc: Exception) -> Any:
    return jsonify(error=getattr(exc, "description", None) or "not allowed"), 403


def too_large_message(limit: int | None) -> str:
    """What a 413 says: the limit, and which setting (if any) moves it."""
    limit = limit or 0
    if limit > MAX_REQUEST_BYTES:
        return f"the request is over {limit // (1024 * 1024)} MB (CUSTSEG_MAX_UPLOAD_MB)"
    return f"the request is over {limit // 1024} KB (files are imported at /admin/import)"


def _too_large(exc: Exception | None) -> Any:
    log.warning(
        "request too large",
        extra={"path": request.path[:200], "content_length": request.content_length},
    )
    return jsonify(error=too_large_message(request.max_content_length)), 413


def init_app(app: dash.Dash) -> None:
    """Wire the origin check, the headers, the callback checks and the page roles into a built
    Dash app."""
    server: Flask = app.server
    # First of all before_request functions: a cross-site request is refused before the login
    # guard, the rate limiter or anything else reads it.
    server.before_request_funcs.setdefault(None, []).insert(0, check_origin)
    server.before_request(_check_callback_request(app))
    server.after_request(_headers(app))
    server.register_error_handler(403, _forbidden)
    server.register_error_handler(413, _too_large)
    server.register_error_handler(DependencyException, _no_such_file)
    if not server.debug:  # in development, Dash shows the traceback instead
        server.register_error_handler(Exception, _unexpected)
    roles.protect_pages()
