"""Helpers for tests that talk to the app as a browser would, or as an attacker would."""

from __future__ import annotations

import json
from typing import Any


def callback_spec(client: Any, output_contains: str) -> dict[str, Any]:
    """The entry of /_dash-dependencies whose output names `output_contains` (logged in)."""
    deps = client.get("/_dash-dependencies").get_json()
    matches = [d for d in deps if output_contains in d["output"]]
    assert len(matches) == 1, f"{len(matches)} callbacks write to {output_contains!r}"
    return matches[0]  # type: ignore[no-any-return]


def _output(part: str) -> dict[str, Any]:
    """One output: a pattern-matching id is JSON; `@hash` marks an allow_duplicate output."""
    ident, prop = part.rsplit(".", 1)
    return {
        "id": json.loads(ident) if ident.startswith("{") else ident,
        "property": prop.split("@")[0],
    }


def _outputs(output: str) -> list[dict[str, Any]] | dict[str, Any]:
    if output.startswith("..") and output.endswith(".."):
        return [_output(p) for p in output[2:-2].split("...")]
    return _output(output)


def callback_body(
    spec: dict[str, Any], values: dict[str, Any] | None = None, state: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The JSON Dash's renderer posts for callback `spec`: `values` maps "id.property" to the
    value of each input (absent ones are None); `state` likewise for State."""
    values, state = values or {}, state or {}

    def items(declared: list[dict[str, str]], given: dict[str, Any]) -> list[dict[str, Any]]:
        return [{**d, "value": given.get(f"{d['id']}.{d['property']}")} for d in declared]

    inputs = items(spec["inputs"], values)
    return {
        "output": spec["output"],
        "outputs": _outputs(spec["output"]),
        "inputs": inputs,
        "changedPropIds": [f"{i['id']}.{i['property']}" for i in inputs],
        "state": items(spec["state"], state),
    }


def post_callback(
    client: Any,
    output_contains: str,
    values: dict[str, Any] | None = None,
    state: dict[str, Any] | None = None,
    **tamper: Any,
) -> Any:
    """Post a callback straight to /_dash-update-component, as a tampering client would.

    `values`/`state` map "id.property" to what to send; `tamper` overrides top-level keys of the
    body (e.g. output="nope.children"). Returns the Flask test response.
    """
    body = callback_body(callback_spec(client, output_contains), values, state)
    body.update(tamper)
    return client.post("/_dash-update-component", json=body)


def form_token(html: str) -> str:
    """The csrf_token of the first form in `html`."""
    import re

    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page has no CSRF token"
    return match.group(1)


def logout(client: Any) -> Any:
    """Log out as the navbar does: POST /logout with the CSRF token of the confirm form."""
    token = form_token(client.get("/logout").get_data(as_text=True))
    return client.post("/logout", data={"csrf_token": token})


def browser_errors(dash_duo: Any) -> list[str]:
    """The browser console's errors since the last call (Chromium)."""
    return [
        str(entry.get("message", ""))
        for entry in dash_duo.driver.get_log("browser")
        if entry.get("level") == "SEVERE"
    ]


def csp_violations(dash_duo: Any) -> list[str]:
    """Console errors that say the Content-Security-Policy blocked something."""
    words = ("Content Security Policy", "Content-Security-Policy", "unsafe-eval", "Refused to")
    return [m for m in browser_errors(dash_duo) if any(w in m for w in words)]
