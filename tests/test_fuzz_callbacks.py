"""Malformed callback requests, generated: every callback of `/_dash-dependencies`, every part of
its body broken in turn, never a 5xx (issue 13 item 4).

A seeded generator (the same requests on every run, so a failure can be replayed): for each
callback, a real body as Dash's renderer builds it, then per class a few mutations of one part:
the body as a whole, `output`, `outputs`, `inputs`, `state`, `changedPropIds`, the values alone
(shape kept: what reaches the callback itself) and raw text that is not quite JSON.
"""

from __future__ import annotations

import copy
import json
import logging
import random
from collections import Counter
from typing import Any

import pytest

from tests.conftest import login
from tests.helpers import VIEWER_PAGES, callback_body

SEED = 13
PER_CLASS = 3  # mutations per callback and class
CLASSES = ("body", "output", "outputs", "inputs", "state", "changedPropIds", "values", "raw")


def _concrete(ident: str) -> Any:
    """A declared id as a request carries it: a pattern's wildcards filled (a chart's download
    buttons, the navbar links); a list of ids for ALL."""
    if not ident.startswith("{"):
        return ident
    pattern = json.loads(ident)
    if ["ALL"] in pattern.values():  # the navbar links, or a page's own filters (none here)
        if pattern.get("type") == "nav-link":
            return [{"type": "nav-link", "page": page} for page in VIEWER_PAGES]
        return []
    return {k: "sales-time" if isinstance(v, list) else v for k, v in pattern.items()}


def _stringify(ident: Any) -> str:
    if isinstance(ident, dict):
        return json.dumps(ident, separators=(",", ":"), sort_keys=True)
    return str(ident)


def good_body(dep: dict[str, Any]) -> dict[str, Any]:
    """The body Dash's renderer posts for `dep`, pattern-matching ids made concrete."""
    body = callback_body(dep)

    def items(declared: list[dict[str, Any]]) -> list[Any]:
        out: list[Any] = []
        for d in declared:
            ident = _concrete(d["id"])
            if isinstance(ident, list):
                out.append([{"id": i, "property": d["property"], "value": None} for i in ident])
            else:
                out.append({"id": ident, "property": d["property"], "value": None})
        return out

    def outputs(output: str) -> Any:
        parts = output[2:-2].split("...") if output.startswith("..") else [output]
        built = []
        for part in parts:
            ident, prop = part.rsplit(".", 1)
            concrete = _concrete(ident)
            prop = prop.split("@")[0]
            if isinstance(concrete, list):
                built.append([{"id": i, "property": prop} for i in concrete])
            else:
                built.append({"id": concrete, "property": prop})
        return built if output.startswith("..") else built[0]

    body["inputs"], body["state"] = items(dep["inputs"]), items(dep["state"])
    body["outputs"] = outputs(dep["output"])
    first = body["inputs"][0] if body["inputs"] else None
    if isinstance(first, dict):
        body["changedPropIds"] = [f"{_stringify(first['id'])}.{first['property']}"]
    return body


def _deep(rng: random.Random, depth: int) -> Any:
    node: Any = rng.choice([1, "x", None])
    for _ in range(depth):
        node = [node] if rng.random() < 0.5 else {"k": node}
    return node


def hostile(rng: random.Random, others: list[Any]) -> Any:
    """A JSON value a browser would never send there."""
    pick = rng.randrange(16)
    return [
        None,
        rng.choice([True, False]),
        rng.choice([0, -1, 2**31, 2**63, -(2**70), 10**30]),
        rng.choice([1e308, -1e-308, 0.5]),
        rng.choice(["", " ", "x" * rng.randint(1, 5_000), "\x00", "\r\n=1+2", "☃" * 50]),
        rng.choice(["{", "{bad.json", '{"a":1}', ".", "..", "a.b.c", "../../etc/passwd"]),
        [],
        {},
        [rng.randint(-5, 5) for _ in range(rng.randint(1, 50))],
        {"id": rng.choice(others), "property": "children"},
        {"id": {"type": ["ALL"]}, "property": "value", "value": 1},
        rng.choice(others),
        _deep(rng, rng.randint(5, 60)),
        {"$ne": 1, "__proto__": {"x": 1}},
        [{"id": rng.choice(others), "property": "value", "value": None}],
        rng.choice(['" OR 1=1 --', "<script>alert(1)</script>", "javascript:alert(1)"]),
    ][pick]


def _mutate_list(rng: random.Random, items: Any, others: list[Any]) -> Any:
    """Inputs or state: an item dropped, doubled, replaced, or its id/property/value changed."""
    if not isinstance(items, list) or not items:
        return hostile(rng, others)
    items = copy.deepcopy(items)
    i = rng.randrange(len(items))
    how = rng.randrange(7)
    if how == 0:
        del items[i]
    elif how == 1:
        items.append(copy.deepcopy(items[i]))
    elif how == 2:
        items[i] = hostile(rng, others)
    elif isinstance(items[i], dict):
        key = ("id", "property", "id", "value")[how - 3]
        items[i][key] = hostile(rng, others)
    else:
        items[i] = [hostile(rng, others)]
    return items


def mutate(rng: random.Random, good: dict[str, Any], kind: str, others: list[Any]) -> Any:
    """One malformed body of class `kind` (raw text for "raw")."""
    body = copy.deepcopy(good)
    if kind == "body":
        return rng.choice(
            [hostile(rng, others), [body], {"outputs": body.get("outputs")}, {"x": body}]
        )
    if kind == "output":
        body["output"] = rng.choice([hostile(rng, others), rng.choice(others), good["output"][1:]])
    elif kind == "outputs":
        outputs = body.get("outputs")
        if isinstance(outputs, list) and outputs and rng.random() < 0.5:
            outputs[rng.randrange(len(outputs))] = hostile(rng, others)
        else:
            body["outputs"] = hostile(rng, others)
    elif kind in ("inputs", "state"):
        body[kind] = _mutate_list(rng, body.get(kind) or [{"id": "x", "property": "y"}], others)
    elif kind == "changedPropIds":
        changed = list(body.get("changedPropIds") or [])
        changed.insert(
            rng.randrange(len(changed) + 1),  # first: what `ctx.triggered_id` reads
            rng.choice(
                [
                    hostile(rng, others),
                    "{bad.json}.n_clicks",
                    '{"chart":"x"}.n_clicks',
                    f"{rng.choice(others)}.value",
                    "[1,2].value",
                    "nodot",
                    "{" * 2_000 + ".x",
                ]
            ),
        )
        body["changedPropIds"] = changed if rng.random() < 0.8 else hostile(rng, others)
    elif kind == "values":
        for part in ("inputs", "state"):
            for item in body.get(part) or []:
                entries = item if isinstance(item, list) else [item]
                for entry in entries:
                    if rng.random() < 0.7:
                        entry["value"] = hostile(rng, others)
    elif kind == "raw":
        text = json.dumps(body)
        return rng.choice(
            [
                text[: rng.randrange(1, len(text))],
                "[" * rng.choice([1_000, 100_000]),
                '{"a":' * 50_000,
                text.replace('"inputs"', '"inputs": NaN, "x"', 1),
                text + "garbage",
                '{"output": 1e999999}',
                "\ufeff" + text,
                text.replace("{", '{"output": null, ', 1),
            ]
        )
    return body


def test_generated_malformed_callback_bodies_never_get_a_5xx(
    app: Any, dashboard: Any, client: Any, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    # A "Refit now" whose body survives the checks only queues a job row (db/jobs.py).
    login(client, "admin@example.com")  # admins may call every callback: the deepest reach
    deps = client.get("/_dash-dependencies").get_json()
    assert len(deps) >= 25
    for dep in deps:  # each mutation starts from a body the callback accepts
        resp = client.post("/_dash-update-component", json=good_body(dep))
        browser_only = dep.get("clientside_function") is not None
        assert resp.status_code == (400 if browser_only else 200), (dep["output"], resp.data)
    others = sorted(
        {i["id"] for d in deps for i in d["inputs"] + d["state"]} | {d["output"] for d in deps}
    )
    rng = random.Random(SEED)
    tried: Counter[str] = Counter()
    status: Counter[int] = Counter()
    failures = []
    with caplog.at_level(logging.WARNING):
        for dep in deps:
            good = good_body(dep)
            for kind in CLASSES:
                for _ in range(PER_CLASS):
                    body = mutate(rng, good, kind, others)
                    if isinstance(body, str):
                        resp = client.post(
                            "/_dash-update-component", data=body, content_type="application/json"
                        )
                    else:
                        resp = client.post("/_dash-update-component", json=body)
                    tried[kind] += 1
                    status[resp.status_code] += 1
                    text = resp.get_data(as_text=True)
                    if resp.status_code >= 500 or "Traceback" in text:
                        failures.append((kind, dep["output"][:60], resp.status_code, text[:200]))
                    if 400 <= resp.status_code < 500:
                        assert resp.is_json and "error" in resp.get_json(), (kind, text[:200])
    print(f"\ntried per class: {dict(tried)}; statuses: {dict(sorted(status.items()))}")
    assert failures == []
    assert sum(tried.values()) == len(deps) * len(CLASSES) * PER_CLASS
    assert all(n == len(deps) * PER_CLASS for n in tried.values())
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert status[400] > sum(tried.values()) // 2  # most are refused before Dash runs
