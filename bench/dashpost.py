"""Callback requests as Dash's renderer posts them, and the filter changes the bench varies.

Standard library only: the `callbacks` stage uses it in-process (Flask's test client), the
locustfile (`bench/locustfile.py`) in locust's own virtualenv, which has no project code.
The payload shape is the one `tests/helpers.py::callback_body` builds (and the app's callback
checks in `webapp/security.py` accept): outputs, inputs with their values, the changed input.
"""

from __future__ import annotations

import json
import random
from datetime import date, timedelta
from typing import Any

# Each page's filter-change callback: the output that names it, and its extra inputs.
PAGES: dict[str, str] = {
    "overview": "overview-trend.figure",
    "segments": "segments-shares.figure",
    "retention": "retention-heatmap.figure",
    "sales": "sales-time.figure",
    "migration": "migration-sankey.figure",
    "customers": "members-table.data",
    "model": "model-scores.figure",
}
# The output of each page that says what went wrong (a handled error); None when all is well.
MESSAGES: dict[str, str] = {
    "overview": "overview-message",
    "segments": "segments-message",
    "retention": "retention-message",
    "sales": "sales-message",
    "migration": "migration-message",
    "customers": "members-count",
    "model": "model-message",
}
# Pages without the date filter, and the input a user changes there instead.
UNDATED: dict[str, str] = {"customers": "f-segments.value", "model": "f-snapshot.value"}
RANGES = (30, 90, 365, None)  # days up to the last order day; None: all
# The Customers page's member list: sorted over the whole list on the server (or not), and its
# "high value, high risk" switch (a page filter: a dict id, as /_dash-dependencies spells it).
MEMBER_SORTS: tuple[list[dict[str, str]], ...] = (
    [],
    [{"column_id": "churn_risk", "direction": "desc"}],
    [{"column_id": "clv_12m", "direction": "desc"}],
)
RISK_SWITCH = '{"name":"risk","type":"page-filter"}.value'
GRANULARITIES = ("day", "week", "month")


def spec_for(deps: list[dict[str, Any]], output_contains: str) -> dict[str, Any]:
    """The entry of /_dash-dependencies whose output names `output_contains`."""
    matches = [d for d in deps if output_contains in d["output"]]
    if len(matches) != 1:
        raise LookupError(f"{len(matches)} callbacks write to {output_contains!r}")
    return matches[0]


def _ident(ident: str) -> str | dict[str, Any]:
    """An id as the renderer posts it: a dict id (JSON in /_dash-dependencies) as an object."""
    return json.loads(ident) if ident.startswith("{") else ident


def _output(part: str) -> dict[str, Any]:
    ident, prop = part.rsplit(".", 1)
    return {"id": _ident(ident), "property": prop.split("@")[0]}


def _outputs(output: str) -> list[dict[str, Any]] | dict[str, Any]:
    if output.startswith("..") and output.endswith(".."):
        return [_output(p) for p in output[2:-2].split("...")]
    return _output(output)


def body(spec: dict[str, Any], values: dict[str, Any], changed: str) -> dict[str, Any]:
    """The JSON posted for callback `spec`: `values` maps "id.property" to each input's value
    (absent ones are None); `changed` is the input the user just changed."""
    inputs = [
        {**d, "id": _ident(d["id"]), "value": values.get(f"{d['id']}.{d['property']}")}
        for d in spec["inputs"]
    ]
    return {
        "output": spec["output"],
        "outputs": _outputs(spec["output"]),
        "inputs": inputs,
        "changedPropIds": [changed],
        "state": [{**d, "id": _ident(d["id"]), "value": None} for d in spec["state"]],
    }


def download_body(spec: dict[str, Any], chart: str, params: dict[str, Any], fmt: str) -> dict:
    """The download callback (webapp/downloads.py) of `chart`, as a click on CSV or XLSX."""

    def ident(kind: str) -> dict[str, str]:
        return {"chart": chart, "type": kind}

    clicked = "dl-xlsx" if fmt == "xlsx" else "dl-csv"
    return {
        "output": spec["output"],
        "outputs": [
            {"id": ident("download"), "property": "data"},
            {"id": ident("dl-msg"), "property": "children"},
        ],
        "inputs": [
            {"id": ident(k), "property": "n_clicks", "value": 1 if k == clicked else None}
            for k in ("dl-csv", "dl-xlsx")
        ],
        "state": [{"id": ident("params"), "property": "data", "value": params}],
        "changedPropIds": [json.dumps(ident(clicked), separators=(",", ":")) + ".n_clicks"],
    }


def chart_params(response: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """chart -> the params a page callback stored for its download (non-empty ones)."""
    out = {}
    for key, props in response.get("response", {}).items():
        if key.startswith("{") and isinstance(props.get("data"), dict):
            ident = json.loads(key)
            if ident.get("type") == "params":
                out[ident["chart"]] = props["data"]
    return out


def message(page: str, response: dict[str, Any]) -> Any:
    """The page's message output in a callback response (None: no problem reported)."""
    props = response.get("response", {}).get(MESSAGES[page], {})
    value = props.get("children")
    if page == "customers":  # "N customers in ..." is the normal count line
        return None if isinstance(value, str) and " customers in " in value else value
    return value


def date_range(last_day: date, days: int | None) -> tuple[str | None, str | None]:
    if days is None:
        return None, None
    return (last_day - timedelta(days=days - 1)).isoformat(), last_day.isoformat()


def segment_choices(segment_ids: list[int], rng: random.Random) -> list[list[int]]:
    """No segment, one, two (drawn from the snapshot's segments)."""
    ids = sorted(segment_ids)
    return [[], [rng.choice(ids)], sorted(rng.sample(ids, min(2, len(ids))))]


def scenarios(
    page: str,
    last_day: date,
    segment_ids: list[int],
    snapshot_ids: list[int],
    rng: random.Random,
) -> list[tuple[dict[str, Any], str]]:
    """Every filter change the bench posts to `page`: (input values, changed input).

    Date ranges of 30, 90 and 365 days up to the last order day, and all; no segment, one, two;
    on Sales each granularity; the page's own inputs drawn at random (seeded)."""
    latest, previous = snapshot_ids[0], snapshot_ids[1] if len(snapshot_ids) > 1 else None
    out = []
    for days in RANGES:
        start, end = date_range(last_day, days)
        for segs in segment_choices(segment_ids, rng):
            base = {
                "f-dates.start_date": start,
                "f-dates.end_date": end,
                "f-segments.value": segs,
                "f-snapshot.value": latest,
            }
            changed = "f-dates.start_date" if days != RANGES[0] else "f-segments.value"
            if page in UNDATED:  # no date inputs: the user changed the segments or snapshot
                changed = UNDATED[page]
            extras: list[dict[str, Any]] = [{}]
            if page == "sales":
                extras = [{"sales-granularity.value": g} for g in GRANULARITIES]
            elif page == "retention":
                of = rng.choice(["all", str(rng.choice(segment_ids))])
                extras = [{"retention-of.value": of, "retention-month.value": rng.choice([1, 3])}]
            elif page == "migration":
                measure = rng.choice(["customers", "gross_revenue"])
                extras = [{"migration-from.value": previous, "migration-measure.value": measure}]
            elif page == "customers":
                extras = [
                    {
                        "members-table.page_current": rng.choice([0, 0, 1, 7]),
                        "members-table.sort_by": rng.choice(MEMBER_SORTS),
                        RISK_SWITCH: rng.choice([[], [], ["high-value-high-risk"]]),
                    }
                ]
            elif page == "segments":
                extras = [{"segments-renamed.data": None}]
            out += [({**base, **extra}, changed) for extra in extras]
    return out
