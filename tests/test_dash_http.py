"""Through HTTP, as the browser does: shared links, tampered callback payloads, empty states.

Payloads are built from the app's own `/_dash-dependencies`, so every page's callbacks are
covered as pages are added.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import as_user, login, page
from tests.helpers import BRIEF_PAGES, _ids_and_props, callback_body
from webapp.filters import query_string

PAGES = BRIEF_PAGES[:-1]  # every user's pages of the brief


def callbacks(client) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    return client.get("/_dash-dependencies").get_json()  # type: ignore[no-any-return]


def post(client, cb: dict[str, Any], values: dict[str, Any]):  # type: ignore[no-untyped-def]
    """POST one callback with `values` ({"id.property": value}); other inputs None."""
    body = callback_body(cb, values, values)
    body["changedPropIds"] = body["changedPropIds"][:1]
    return client.post("/_dash-update-component", json=body)


def page_callbacks(client) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """The callbacks fed by the global filters that draw a page (not the shared ones)."""
    found = []
    for cb in callbacks(client):
        ids = {i["id"] for i in cb["inputs"]}
        if "f-segments" in ids and "url-query.search" not in cb["output"]:
            found.append(cb)
    return found


TAMPERED = [
    {"f-dates.start_date": "2011-13-45"},
    {"f-dates.start_date": "2011-06-01", "f-dates.end_date": "2011-01-01"},
    {"f-dates.start_date": "' OR 1=1 --"},
    {"f-dates.start_date": "x" * 100_000},
    {"f-dates.start_date": ["2011-01-01"]},
    {"f-segments.value": [999]},
    {"f-segments.value": ["1; DROP TABLE users"]},
    {"f-segments.value": "1 OR 1=1"},
    {"f-segments.value": list(range(10_000))},
    {"f-segments.value": [2**40]},
    {"f-segments.value": [{"$ne": 1}]},
    {"f-snapshot.value": 10**12},
    {"f-snapshot.value": "1; DELETE FROM snapshots"},
    {"f-snapshot.value": -1},
]


def test_tampered_payloads_get_a_message_never_a_server_error(app, dashboard, client) -> None:  # type: ignore[no-untyped-def]
    login(client, "analyst@example.com")
    cbs = page_callbacks(client)
    assert len(cbs) >= 7  # overview, segments, retention, sales, migration, members, model
    tried = 0
    for cb in cbs:
        for values in TAMPERED:
            response = post(client, cb, values)
            tried += 1
            assert response.status_code in (200, 204), (cb["output"], values, response.data[:300])
            body = response.get_data(as_text=True)
            assert "Traceback" not in body
    assert tried == len(cbs) * len(TAMPERED)
    # The data is still there: nothing was run as SQL.
    good = post(
        client, cbs[0], {"f-dates.start_date": "2010-12-01", "f-dates.end_date": "2011-12-09"}
    )
    assert good.status_code == 200


def test_other_callbacks_refuse_bad_values_too(app, dashboard, client) -> None:  # type: ignore[no-untyped-def]
    login(client, "admin@example.com")  # every callback is open to admins
    bad_values = {
        "retention-month.value": "1; DROP TABLE users",
        "retention-of.value": "<script>alert(1)</script>",
        "sales-granularity.value": "year",
        "migration-from.value": "1 OR 1=1",
        "migration-measure.value": "profit",
        "lookup-id.value": "' OR '1'='1",
        "members-table.page_current": 10**12,
        "segments-shares.clickData": {"points": [{"customdata": "1 OR 1=1"}]},
        "f-snapshot.value": "abc",
        "f-preset-30.n_clicks": "many",
    }
    for cb in callbacks(client):
        if "download" in cb["output"] or "_pages" in cb["output"]:
            continue
        response = post(client, cb, bad_values)
        assert response.status_code in (200, 204), (cb["output"], response.data[:300])


def test_downloads_through_http_check_the_role(app, dashboard, client) -> None:  # type: ignore[no-untyped-def]
    login(client, "viewer@example.com")
    [dl] = [cb for cb in callbacks(client) if '"download"' in cb["output"]]
    item = {"chart": "sales-time", "type": "params"}
    params = {
        "export": "sales",
        "start": None,
        "end": None,
        "segments": [],
        "snapshot": None,
        "granularity": "month",
        "month": 1,
    }
    payload = {
        "output": dl["output"],
        "outputs": [
            {"id": {"chart": "sales-time", "type": "download"}, "property": "data"},
            {"id": {"chart": "sales-time", "type": "dl-msg"}, "property": "children"},
        ],
        "inputs": [
            {"id": {"chart": "sales-time", "type": "dl-csv"}, "property": "n_clicks", "value": 1},
            {
                "id": {"chart": "sales-time", "type": "dl-xlsx"},
                "property": "n_clicks",
                "value": None,
            },
        ],
        "state": [{"id": item, "property": "data", "value": params}],
        "changedPropIds": ['{"chart":"sales-time","type":"dl-csv"}.n_clicks'],
    }
    refused = client.post("/_dash-update-component", json=payload).get_json()
    assert "analyst role" in json.dumps(refused) and "content" not in json.dumps(refused)
    client.post("/logout")
    login(client, "analyst@example.com")
    given = client.post("/_dash-update-component", json=payload).get_json()
    file = given["response"][
        json.dumps({"chart": "sales-time", "type": "download"}, separators=(",", ":"))
    ]
    assert file["data"]["filename"] == "sales_snapshot2.csv"


def _find(component: Any, ident: str) -> Any:
    if getattr(component, "id", None) == ident:
        return component
    children = getattr(component, "children", None)
    for child in children if isinstance(children, list | tuple) else [children]:
        if child is not None and hasattr(child, "to_plotly_json"):
            found = _find(child, ident)
            if found is not None:
                return found
    return None


def test_a_shared_link_reproduces_the_view(app, dashboard) -> None:  # type: ignore[no-untyped-def]
    overview, sales = page("overview"), page("sales")

    first, second = dashboard
    one = first.segments[0]["segment_id"]  # a segment of snapshot 1
    query = query_string("2011-03-01", "2011-05-31", [one], first.snapshot_id)
    assert query == f"?start=2011-03-01&end=2011-05-31&segment={one}&snapshot=1"
    with as_user(app):
        view = sales.layout(start="2011-03-01", end="2011-05-31", segment=str(one), snapshot="1")
        dates = _find(view, "f-dates")
        assert (str(dates.start_date), str(dates.end_date)) == ("2011-03-01", "2011-05-31")
        assert _find(view, "f-segments").value == [one]
        assert _find(view, "f-snapshot").value == 1
        assert "as of 2011-09-30" in _find(view, "f-asof").children
        # Unknown or malformed parts are dropped with a note, never an error.
        view = overview.layout(
            start="yesterday", segment=["999", str(second.segments[0]["segment_id"])], snapshot="77"
        )
        assert _find(view, "f-snapshot").value == 2
        assert _find(view, "f-segments").value == [second.segments[0]["segment_id"]]
        text = str(view)
        assert "Snapshot 77 is not available" in text and "not a date" in text


def test_every_page_explains_what_to_do_without_a_snapshot(app, client) -> None:  # type: ignore[no-untyped-def]
    customers, migration, model, overview, retention, sales, segments = (
        page(n)
        for n in ("customers", "migration", "model", "overview", "retention", "sales", "segments")
    )

    with as_user(app, "admin@example.com"):
        for module in (overview, segments, retention, sales, migration, customers, model):
            text = str(module.layout())
            assert "No snapshot yet" in text and "custseg refit" in text, module.__name__
        assert "Refit now" in str(model.layout())


def test_navbar_links_carry_the_filters(app, dashboard, client) -> None:  # type: ignore[no-untyped-def]
    login(client, "viewer@example.com")
    [cb] = [c for c in callbacks(client) if "url-query.search" in c["output"]]
    body = post(
        client,
        cb,
        {
            "f-dates.start_date": "2011-01-01",
            "f-dates.end_date": "2011-02-01",
            "f-segments.value": [1],
        },
    ).get_json()["response"]
    assert body["url-query"]["search"] == "?start=2011-01-01&end=2011-02-01&segment=1"
    link = json.dumps({"page": "/retention", "type": "nav-link"}, separators=(",", ":"))
    assert body[link]["href"] == "/retention?start=2011-01-01&end=2011-02-01&segment=1"
    layout = client.get("/_dash-layout").get_json()
    links = [json.loads(k)["page"] for k in _ids_and_props(layout) if "nav-link" in k]
    assert links == [*PAGES, "/campaigns", "/notifications"]  # viewers do not see the Admin link


@pytest.mark.parametrize("path", PAGES + ("/admin",))
def test_pages_render_for_each_role(app, dashboard, client, path) -> None:  # type: ignore[no-untyped-def]
    import dash

    login(client, "viewer@example.com")
    assert client.get(path).status_code == 200
    layout_of = {p["path"]: p["layout"] for p in dash.page_registry.values()}
    for role in ("viewer", "analyst", "admin"):
        with as_user(app, f"{role}@example.com"):
            text = str(layout_of[path]())
        downloads = "dl-csv" in text
        if path == "/admin":
            assert ("This page needs the admin role" in text) == (role != "admin")
        else:
            assert downloads == (role != "viewer"), (path, role)
