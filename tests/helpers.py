"""Helpers for tests that talk to the app as a browser would, or as an attacker would."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any


def callback_spec(client: Any, output_contains: str) -> dict[str, Any]:
    """The entry of /_dash-dependencies whose output names `output_contains` (logged in)."""
    deps = client.get("/_dash-dependencies").get_json()
    matches = [d for d in deps if output_contains in d["output"]]
    outputs = [m["output"][:80] for m in matches]
    assert len(matches) == 1, f"{len(matches)} callbacks write to {output_contains!r}: {outputs}"
    return matches[0]  # type: ignore[no-any-return]


# The navbar links a viewer sees: what an ALL output over them addresses (webapp/nav.py).
VIEWER_PAGES = (
    "/",
    "/segments",
    "/retention",
    "/sales",
    "/migration",
    "/customers",
    "/model",
    "/campaigns",
    "/notifications",
)
# What an admin sees besides (the Data page's database sources, the Admin page).
ADMIN_PAGES = (*VIEWER_PAGES, "/data", "/admin")
# The seed brief's pages (the first seven are every user's).
BRIEF_PAGES = (*VIEWER_PAGES[:7], "/admin")


def _output(part: str, every: dict[str, list[dict[str, Any]]] | None = None) -> Any:
    """One output: a pattern-matching id is JSON; `@hash` marks an allow_duplicate output. An
    ALL output addresses every matching component: `every` maps a pattern's type to their ids
    (default: the navbar links of a viewer)."""
    ident, prop = part.rsplit(".", 1)
    prop = prop.split("@")[0]
    if ident.startswith("{"):
        pattern = json.loads(ident)
        if ["ALL"] in pattern.values():
            known = (every or {}).get(pattern.get("type", ""))
            if known is None and pattern.get("type") == "nav-link":
                known = [{"type": "nav-link", "page": p} for p in VIEWER_PAGES]
            return [{"id": i, "property": prop} for i in known or []]
        return {"id": pattern, "property": prop}
    return {"id": ident, "property": prop}


def _outputs(output: str, every: dict[str, list[dict[str, Any]]] | None = None) -> Any:
    if output.startswith("..") and output.endswith(".."):
        return [_output(p, every) for p in output[2:-2].split("...")]
    return _output(output, every)


def callback_body(
    spec: dict[str, Any], values: dict[str, Any] | None = None, state: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The JSON Dash's renderer posts for callback `spec`: `values` maps "id.property" to the
    value of each input (absent ones are None); `state` likewise for State."""
    values, state = values or {}, state or {}

    def item(d: dict[str, str], given: dict[str, Any]) -> Any:
        ident = str(d["id"])
        if '["ALL"]' in ident:  # every matching component: a list of them (none known here)
            return []
        value = given.get(f"{ident}.{d['property']}")
        # A dict id travels as an object (the dependencies list it as JSON text).
        parsed = json.loads(ident) if ident.startswith("{") else ident
        return {"id": parsed, "property": d["property"], "value": value}

    def items(declared: list[dict[str, str]], given: dict[str, Any]) -> list[Any]:
        return [item(d, given) for d in declared]

    inputs = items(spec["inputs"], values)
    return {
        "output": spec["output"],
        "outputs": _outputs(spec["output"]),
        "inputs": inputs,
        "changedPropIds": [
            f"{_id_text(i['id'])}.{i['property']}" for i in inputs if isinstance(i, dict)
        ],
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


def submit_login(dash_duo: Any, email: str, path: str = "/login") -> None:
    """In the browser: open `path` signed out (the login form) and log in as `email`."""
    from tests.conftest import PASSWORD

    dash_duo.driver.get(dash_duo.server.url + path)
    dash_duo.wait_for_element("#email", timeout=10).send_keys(email)
    dash_duo.find_element("#password").send_keys(PASSWORD)
    dash_duo.find_element("#login-submit").click()


def browser_login(dash_duo: Any, email: str) -> None:
    """In the browser: log in as `email` and wait for the first page (its filter bar)."""
    submit_login(dash_duo, email)
    dash_duo.wait_for_element("#f-snapshot", timeout=20)


def wait_until(fn: Callable[[], Any], timeout: float = 20) -> Any:
    """The first true value of `fn()`, asked every 0.2 s; an AssertionError after `timeout`."""
    import time

    deadline = time.time() + timeout
    value = None
    while time.time() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out (last: {value!r})")


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


# --- component trees, as a page callback returns them -----------------------------------------


def walk(node: Any) -> Iterator[Any]:
    """Every component of a layout tree."""
    if node is None or isinstance(node, str | int | float):
        return
    if isinstance(node, list | tuple):
        for child in node:
            yield from walk(child)
        return
    yield node
    yield from walk(getattr(node, "children", None))


def text_of(node: Any, sep: str = "") -> str:
    """The visible text of a component tree, its pieces joined by `sep` (a screen reader reads
    them in this order)."""
    if node is None:
        return ""
    if isinstance(node, str | int | float):
        return str(node)
    if isinstance(node, list | tuple):
        return sep.join(text_of(c, sep) for c in node)
    return text_of(getattr(node, "children", None), sep)


# --- a browser's view of a page, without a browser --------------------------------------------


def _ids_and_props(layout: Any) -> dict[str, dict[str, Any]]:
    """Every component of a layout JSON with an id: its id (JSON for dict ids) -> its props."""
    found: dict[str, dict[str, Any]] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            props = node.get("props")
            if isinstance(props, dict) and "id" in props:
                ident = props["id"]
                key = json.dumps(ident, sort_keys=True) if isinstance(ident, dict) else str(ident)
                found[key] = props
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(layout)
    return found


def _matches(pattern: dict[str, Any], ident: dict[str, Any]) -> bool:
    if set(pattern) != set(ident):
        return False
    return all(isinstance(v, list) or ident[k] == v for k, v in pattern.items())


def page_responses(client: Any, path: str, search: str = "") -> list[tuple[str, int, str]]:
    """Open `path` as Dash's renderer would and fire every server callback the page can fire.

    The page's layout comes from the page router's callback (as in a browser); then each callback
    whose inputs all exist on the page is posted with the values the page holds (pattern-matching
    callbacks once per matching component, with each n_clicks set as after a click). Returns
    (output, status, body) of every response, the router's included.
    """
    deps = client.get("/_dash-dependencies").get_json()
    app_layout = client.get("/_dash-layout").get_json()
    router = next(d for d in deps if "_pages_content" in d["output"])
    body = callback_body(
        router, {"_pages_location.pathname": path, "_pages_location.search": search}
    )
    resp = client.post("/_dash-update-component", json=body)
    out = [(router["output"], resp.status_code, resp.get_data(as_text=True))]
    ids = _ids_and_props(app_layout) | _ids_and_props(resp.get_json())
    for dep in deps:
        if dep is router or dep.get("clientside_function"):
            continue
        declared = dep["inputs"] + dep["state"]
        pattern_ids = [json.loads(d["id"]) for d in declared if str(d["id"]).startswith("{")]
        if pattern_ids:
            keys = [json.loads(k) for k in ids if k.startswith("{")]
            wanted = [k for k in keys if _matches(pattern_ids[0], k)]
            for concrete in wanted:
                fill = {p: concrete[p] for p, v in pattern_ids[0].items() if isinstance(v, list)}
                body = _pattern_body(dep, fill, ids)
                if body is not None:
                    resp = client.post("/_dash-update-component", json=body)
                    out.append((dep["output"], resp.status_code, resp.get_data(as_text=True)))
            continue
        if not all(d["id"] in ids for d in dep["inputs"]):
            continue
        values = {
            f"{d['id']}.{d['property']}": ids.get(d["id"], {}).get(d["property"]) for d in declared
        }
        for d in dep["inputs"]:  # buttons: as after a click
            if d["property"] == "n_clicks":
                values[f"{d['id']}.n_clicks"] = 1
        body = callback_body(dep, values, values)
        body["outputs"] = _outputs(dep["output"], _by_type(ids))
        resp = client.post("/_dash-update-component", json=body)
        out.append((dep["output"], resp.status_code, resp.get_data(as_text=True)))
    return out


def _by_type(ids: dict[str, dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The dict ids of a page's components, by their "type" (what ALL outputs address)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for key in ids:
        if key.startswith("{"):
            ident = json.loads(key)
            out.setdefault(ident.get("type", ""), []).append(ident)
    return out


def _pattern_body(
    dep: dict[str, Any], fill: dict[str, Any], ids: dict[str, dict[str, Any]]
) -> dict[str, Any] | None:
    def concrete(spec_id: str) -> dict[str, Any]:
        pattern = json.loads(spec_id)
        return {k: fill.get(k, v) if isinstance(v, list) else v for k, v in pattern.items()}

    def items(declared: list[dict[str, Any]], click: bool) -> list[dict[str, Any]] | None:
        result = []
        for d in declared:
            ident = concrete(d["id"]) if str(d["id"]).startswith("{") else d["id"]
            key = json.dumps(ident, sort_keys=True) if isinstance(ident, dict) else ident
            if key not in ids:
                return None
            value = ids[key].get(d["property"])
            if click and d["property"] == "n_clicks":
                value = 1
            result.append({"id": ident, "property": d["property"], "value": value})
        return result

    inputs, state = items(dep["inputs"], True), items(dep["state"], False)
    if inputs is None or state is None:
        return None
    parts = dep["output"][2:-2].split("...") if dep["output"].startswith("..") else [dep["output"]]
    outputs = []
    for part in parts:
        ident, prop = part.rsplit(".", 1)
        outputs.append(
            {
                "id": concrete(ident) if ident.startswith("{") else ident,
                "property": prop.split("@")[0],
            }
        )
    return {
        "output": dep["output"],
        "outputs": outputs if len(outputs) > 1 else outputs[0],
        "inputs": inputs,
        "changedPropIds": [f"{_id_text(i['id'])}.{i['property']}" for i in inputs],
        "state": state,
    }


def _id_text(ident: Any) -> str:
    """An id as Dash writes it in changedPropIds (dict ids as compact, sorted JSON)."""
    if isinstance(ident, dict):
        return json.dumps(ident, separators=(",", ":"), sort_keys=True)
    return str(ident)
