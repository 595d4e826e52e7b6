"""The global filters: date range (with presets), segments and snapshot, kept in the URL query.

The query (`start`, `end`, `segment` repeatable, `snapshot`) sets the controls when a page is
opened, so a link reproduces the view; changing a control rewrites the query (without reloading)
and the navbar links, so the view follows the user from page to page. A page's own filters (the
Customers page's `stage`, repeatable) are in its address too, not in the navbar links. Every
callback input is checked on the server before any query runs (`analytics/exports/spec.py`,
`parse_view`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

import dash
import dash_bootstrap_components as dbc
from dash import ALL, Dash, Input, Output, State, ctx, dcc, html, no_update

from analytics.exports.spec import (
    MAX_SEGMENTS,
    MAX_TEXT,
    FilterError,
    View,
    parse_choice,
    parse_day,
    parse_int,
    parse_segments,
    parse_snapshot,
    parse_text,
    parse_view,
    view_from_params,
)
from db import snapshots
from db.models import Snapshot
from webapp import roles
from webapp.components import label, small_button
from webapp.nav import NAV_LINK, carries_filters
from webapp.state import state

__all__ = [  # the checks every callback uses, from the one place that defines them
    "FilterError",
    "View",
    "parse_choice",
    "parse_day",
    "parse_int",
    "parse_segments",
    "parse_snapshot",
    "parse_text",
    "parse_view",
    "view_from_params",
]

PRESETS = (("30", "30 days"), ("90", "90 days"), ("ytd", "Year to date"), ("all", "All"))
# The filter bar's component ids: every page and callback names them through these.
DATES, SEGMENTS, SNAPSHOT, AS_OF = "f-dates", "f-segments", "f-snapshot", "f-asof"
PRESET = "f-preset-"
# The filter bar's values as named callback inputs (see webapp/pagekit.py).
FILTERS = {
    "start": Input(DATES, "start_date"),
    "end": Input(DATES, "end_date"),
    "segments": Input(SEGMENTS, "value"),
    "snapshot": Input(SNAPSHOT, "value"),
}
CONTROLS = tuple(FILTERS.values())
# A filter of one page (the Customers page's lifecycle stages): a pattern id, so the shared
# callback that writes the URL query reads it on the page that has it (and nothing elsewhere).
PAGE_FILTER = "page-filter"
MAX_PAGE_FILTER_VALUES = 64


def page_filter_id(name: Any) -> dict[str, Any]:
    """The id of a page's own filter control; its values go into the URL query as `name`."""
    return {"type": PAGE_FILTER, "name": name}


# --- the URL query -------------------------------------------------------------------------


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def page_filter_pairs(entries: object) -> list[tuple[str, str]]:
    """(name, value) of each page filter's values, as Dash lists the inputs of a pattern id
    (`ctx.inputs_list`); anything else is left out."""
    pairs: list[tuple[str, str]] = []
    for entry in entries if isinstance(entries, list) else []:
        ident = entry.get("id") if isinstance(entry, dict) else None
        name = ident.get("name") if isinstance(ident, dict) else None
        if not isinstance(name, str) or not name.isidentifier():
            continue
        values = entry.get("value")
        values = values if isinstance(values, list) else [values]
        pairs += [
            (name, v)
            for v in values[:MAX_PAGE_FILTER_VALUES]
            if isinstance(v, str) and 0 < len(v) <= MAX_TEXT and v.isprintable()
        ]
    return pairs


def query_string(
    start: object,
    end: object,
    segments: object,
    snapshot: object,
    extra: Sequence[tuple[str, str]] = (),
) -> str:
    pairs: list[tuple[str, Any]] = []
    if isinstance(start, str) and start:
        pairs.append(("start", start[:10]))
    if isinstance(end, str) and end:
        pairs.append(("end", end[:10]))
    if isinstance(segments, list):
        pairs += [("segment", s) for s in segments if _whole(s)]
    if _whole(snapshot):
        pairs.append(("snapshot", snapshot))
    pairs += extra
    return "?" + urlencode(pairs) if pairs else ""


def _ints(value: object) -> list[int]:
    values = value if isinstance(value, list) else [value]
    return [int(v) for v in values if isinstance(v, str) and v.lstrip("-").isdigit()][:MAX_SEGMENTS]


@dataclass(frozen=True)
class Initial:
    """The controls' values from a page's URL query (lenient: bad values are dropped)."""

    snap: Snapshot
    snaps: list[Snapshot]
    start: date | None
    end: date | None
    segments: list[int]
    note: str


def initial(query: Mapping[str, Any]) -> Initial | None:
    """None when there is no published snapshot yet."""
    engine = state().engine
    snaps = snapshots.published(engine)
    if not snaps:
        return None
    notes = []
    wanted = _ints(query.get("snapshot"))
    snap = next((s for s in snaps if wanted and s.id == wanted[0]), snaps[0])
    if wanted and snap.id != wanted[0]:
        notes.append(f"Snapshot {wanted[0]} is not available; showing the latest.")
    days = []
    for key in ("start", "end"):
        try:
            days.append(parse_day(query.get(key), key))
        except FilterError:
            days.append(None)
            notes.append(f"The {key} in the link is not a date; it was left out.")
    start, end = days
    if start and end and start > end:
        start, end = None, None
        notes.append("The link's start date is after its end date; showing every day.")
    known = set(snapshots.segments(engine, snap.id)["segment_id"].astype(int))
    segs = _ints(query.get("segment"))
    if set(segs) - known:
        notes.append("Segments of the link that are not in this snapshot were left out.")
    return Initial(
        snap,
        snaps,
        start or snap.data_start,
        end or snap.data_end,
        [s for s in segs if s in known],
        " ".join(notes),
    )


def preset_range(preset: str, first: date, last: date) -> tuple[date, date]:
    """A preset's days, counted back from the snapshot's last order day."""
    if preset == "30":
        return max(first, last - timedelta(days=29)), last
    if preset == "90":
        return max(first, last - timedelta(days=89)), last
    if preset == "ytd":
        return max(first, date(last.year, 1, 1)), last
    return first, last


# --- the bar -------------------------------------------------------------------------------


def iso(day: date | None) -> str | None:
    """A day as the date picker takes it."""
    return day.isoformat() if day else None


def as_of_text(snap: Snapshot) -> str:
    fitted = f"{snap.finished_at:%Y-%m-%d %H:%M} UTC" if snap.finished_at else "–"
    removed = " · built from batches since removed" if snap.removed_batches else ""
    return (
        f"Snapshot {snap.id} · as of {snap.as_of} · fitted {fitted} · "
        f"data {snap.data_start} to {snap.data_end} · {snap.customers or 0:,} customers{removed}"
    )


def segment_options(snapshot_id: int) -> list[dict[str, Any]]:
    segs = snapshots.segments(state().engine, snapshot_id)
    return [
        {"label": f"{r.name} ({r.customers:,})", "value": int(r.segment_id)}
        for r in segs.itertuples()
    ]


def snapshot_options(snaps: Sequence[Snapshot]) -> list[dict[str, Any]]:
    return [
        {
            "label": f"#{s.id} · {s.as_of}" + (" (latest)" if n == 0 else ""),
            "value": s.id,
        }
        for n, s in enumerate(snaps)
    ]


def filter_bar(
    init: Initial, segments: bool = True, dates: bool = True, extra: Sequence[Any] = ()
) -> html.Div:
    """The controls every analytics page shows, set from the page's URL query; `extra`:
    controls of the page's own, placed after the segments (see `page_filter_id`), each as
    (label, control) or a bare control."""
    snap = init.snap
    items = []
    if dates:
        items += [
            dbc.Col(
                # Named, so a screen reader says what the buttons set ("Date range, 30 days").
                html.Div(
                    dbc.ButtonGroup(
                        [small_button(text, f"{PRESET}{key}", n_clicks=0) for key, text in PRESETS],
                        size="sm",
                    ),
                    role="group",
                    **{"aria-label": "Date range"},  # type: ignore[arg-type]
                ),
                width="auto",
            ),
            dbc.Col(
                dcc.DatePickerRange(
                    id=DATES,
                    min_date_allowed=iso(snap.data_start),
                    max_date_allowed=iso(snap.data_end),
                    initial_visible_month=iso(init.end),
                    start_date=iso(init.start),
                    end_date=iso(init.end),
                    display_format="YYYY-MM-DD",
                    start_date_placeholder_text="Start date",
                    end_date_placeholder_text="End date",
                    first_day_of_week=1,
                    minimum_nights=0,
                    updatemode="bothdates",
                ),
                width="auto",
            ),
        ]
    else:  # the controls still exist, so links and downloads keep the whole view
        items.append(
            html.Div(
                dcc.DatePickerRange(
                    id=DATES,
                    start_date=iso(init.start),
                    end_date=iso(init.end),
                    min_date_allowed=iso(snap.data_start),
                    max_date_allowed=iso(snap.data_end),
                ),
                className="d-none",
            )
        )
    seg_dropdown = dcc.Dropdown(
        id=SEGMENTS,
        options=segment_options(snap.id),
        value=init.segments,
        multi=True,
        placeholder="All segments",
        style={} if segments else {"display": "none"},
    )
    items.append(
        dbc.Col(
            [label("Segments", SEGMENTS, hidden=True), seg_dropdown],
            className="" if segments else "d-none",
            style={"minWidth": "220px"},
        )
    )
    for item in extra:
        text, control = item if isinstance(item, tuple) else (None, item)
        labelled = [label(text, control.id, hidden=True), control] if text else [control]
        items.append(dbc.Col(labelled, style={"minWidth": "220px"}))
    items.append(
        dbc.Col(
            html.Div(
                [
                    label("Snapshot", SNAPSHOT, hidden=True),
                    dcc.Dropdown(
                        id=SNAPSHOT,
                        options=snapshot_options(init.snaps),
                        value=snap.id,
                        clearable=False,
                        searchable=False,
                    ),
                ],
                title="Snapshot: one refit of the segmentation (its as-of date)",
                style={"width": "270px"},
            ),
            width="auto",
        )
    )
    return html.Div(
        [
            dbc.Row(items, className="g-2 align-items-center"),
            html.Div(
                [
                    html.Small(as_of_text(snap), id=AS_OF, className="text-muted"),
                    html.Small(init.note, className="text-warning-emphasis ms-2"),
                ],
                className="mt-1",
            ),
        ],
        className="filter-bar border-bottom pb-2 mb-3",
    )


def page_header(title: str, lead: str) -> html.Div:
    """The page's heading (its one <h1>) and what it is for."""
    return html.Div(
        [html.H1(title, className="h4 mb-0"), html.P(lead, className="text-muted small mb-2")]
    )


# --- callbacks shared by every page ----------------------------------------------------------


def apply_preset(*args: Any) -> tuple[Any, Any]:
    trigger = ctx.triggered_id
    if not isinstance(trigger, str) or not trigger.startswith(PRESET):
        return no_update, no_update
    try:
        snap = snapshots.get_snapshot(state().engine, parse_snapshot(args[-1]))
    except (FilterError, snapshots.NoSnapshot):
        return no_update, no_update
    assert snap.data_start is not None and snap.data_end is not None
    first, last = preset_range(trigger.removeprefix(PRESET), snap.data_start, snap.data_end)
    return first.isoformat(), last.isoformat()


def follow_window(
    start: date | None, end: date | None, old: tuple[Any, Any], new: tuple[date, date]
) -> tuple[date, date]:
    """The date range after a snapshot switch: the whole new window if the range was the whole
    old one (or unset), else the range clipped to the new window."""
    first, last = new
    if start is None or end is None or (str(start), str(end)) == (str(old[0]), str(old[1])):
        return first, last
    start, end = max(start, first), min(end, last)
    return (start, end) if start <= end else (first, last)


def switch_snapshot(
    snapshot: object,
    selected: object,
    start: object = None,
    end: object = None,
    old_first: object = None,
    old_last: object = None,
) -> tuple[Any, ...]:
    """A new snapshot: its segments, its data window, the range following it, its stamp."""
    try:
        snap = snapshots.get_snapshot(state().engine, parse_snapshot(snapshot))
        kept_ids = parse_segments(selected)
    except (FilterError, snapshots.NoSnapshot) as exc:
        return no_update, no_update, no_update, no_update, no_update, no_update, str(exc)
    assert snap.data_start is not None and snap.data_end is not None
    options = segment_options(snap.id)
    known = {o["value"] for o in options}
    kept = [s for s in kept_ids if s in known]
    try:
        first, last = parse_day(start), parse_day(end)
    except FilterError:
        first, last = None, None
    new_start, new_end = follow_window(
        first, last, (old_first, old_last), (snap.data_start, snap.data_end)
    )
    return (
        options,
        kept,
        snap.data_start,
        snap.data_end,
        new_start.isoformat(),
        new_end.isoformat(),
        as_of_text(snap),
    )


def remember_view(
    start: object, end: object, segments: object, snapshot: object, _page: object = None
) -> tuple[str, list[str]]:
    """Write the filters into the address bar and the navbar links (no data is read). The
    page's own filters (`page_filter_id`) go into the address bar only: they mean nothing on
    the other pages."""
    query = query_string(start, end, segments, snapshot)
    own = page_filter_pairs(ctx.inputs_list[4]) if len(ctx.inputs_list) > 4 else []
    address = query_string(start, end, segments, snapshot, own)
    pages = {p["path"]: p for p in dash.page_registry.values()}
    hrefs = []
    for item in ctx.outputs_list[1]:
        path = item["id"]["page"]
        hrefs.append(path + query if carries_filters(pages.get(path, {})) else path)
    return address, hrefs


def active_link(pathname: object) -> list[bool]:
    path = pathname if isinstance(pathname, str) else "/"
    links = [item["id"]["page"] for item in ctx.outputs_list]
    return [path == p or (p != "/" and path.startswith(p + "/")) for p in links]


def register(app: Dash) -> None:
    """The controls' callbacks, on `app` (shared modules register per app, pages by import).

    They read snapshot metadata and segment names, which every page shows: any logged-in user.
    """
    roles.app_callback(
        app,
        Output(DATES, "start_date", allow_duplicate=True),
        Output(DATES, "end_date", allow_duplicate=True),
        [Input(f"{PRESET}{key}", "n_clicks") for key, _ in PRESETS],
        State(SNAPSHOT, "value"),
        prevent_initial_call=True,
        role="viewer",
    )(apply_preset)
    roles.app_callback(
        app,
        Output(SEGMENTS, "options"),
        Output(SEGMENTS, "value", allow_duplicate=True),
        Output(DATES, "min_date_allowed"),
        Output(DATES, "max_date_allowed"),
        Output(DATES, "start_date", allow_duplicate=True),
        Output(DATES, "end_date", allow_duplicate=True),
        Output(AS_OF, "children"),
        Input(SNAPSHOT, "value"),
        State(SEGMENTS, "value"),
        State(DATES, "start_date"),
        State(DATES, "end_date"),
        State(DATES, "min_date_allowed"),
        State(DATES, "max_date_allowed"),
        prevent_initial_call=True,
        role="viewer",
    )(switch_snapshot)
    roles.app_callback(
        app,
        Output("url-query", "search"),
        Output({"type": NAV_LINK, "page": ALL}, "href"),
        *CONTROLS,
        Input(page_filter_id(ALL), "value"),
        role="viewer",
    )(remember_view)
    roles.app_callback(
        app,
        Output({"type": NAV_LINK, "page": ALL}, "active"),
        Input("url", "pathname"),
        role="viewer",
    )(active_link)
