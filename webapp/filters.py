"""The global filters: date range (with presets), segments and snapshot, kept in the URL query.

The query (`start`, `end`, `segment` repeatable, `snapshot`) sets the controls when a page is
opened, so a link reproduces the view; changing a control rewrites the query (without reloading)
and the navbar links, so the view follows the user from page to page. Every callback input is
checked here on the server before any query runs (`parse_view`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, State, ctx, dcc, html, no_update

from analytics.exports import FIRST_DAY, GRANULARITIES, LAST_DAY, MAX_RETENTION_MONTH, Filters
from db import snapshots
from db.models import Snapshot
from webapp.nav import FILTERED, nav_id
from webapp.state import state

PRESETS = (("30", "30 days"), ("90", "90 days"), ("ytd", "Year to date"), ("all", "All"))
MAX_SEGMENTS = 64
MAX_TEXT = 64  # longest customer id a callback accepts
DAY = re.compile(
    r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?"
)  # as the date picker sends
CONTROLS = (
    Input("f-dates", "start_date"),
    Input("f-dates", "end_date"),
    Input("f-segments", "value"),
    Input("f-snapshot", "value"),
)


class FilterError(ValueError):
    """A filter value the server refuses; the message says which and why."""


def parse_day(value: object, label: str = "date") -> date | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not DAY.fullmatch(value):
        raise FilterError(f"The {label} is not a date (use YYYY-MM-DD).")
    try:
        day = date.fromisoformat(value[:10])
    except ValueError:
        raise FilterError(f"The {label} {value[:20]!r} is not a date (use YYYY-MM-DD).") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise FilterError(f"The {label} must lie between {FIRST_DAY} and {LAST_DAY}.")
    return day


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_segments(value: object) -> tuple[int, ...]:
    if value is None:
        return ()
    if _is_int(value):
        value = [value]
    if not isinstance(value, list) or len(value) > MAX_SEGMENTS:
        raise FilterError("The segment filter is not valid.")
    if not all(_is_int(v) and abs(v) < 2**31 for v in value):
        raise FilterError("The segment filter is not valid.")
    return tuple(sorted(set(value)))


def parse_snapshot(value: object) -> int | None:
    if value is None or value == "":
        return None
    if not _is_int(value) or not 0 < value < 2**31:  # type: ignore[operator]
        raise FilterError("The snapshot is not valid.")
    return int(value)  # type: ignore[arg-type]


def parse_choice(value: object, choices: Sequence[str], label: str) -> str:
    if not isinstance(value, str) or value not in choices:
        raise FilterError(f"The {label} must be one of {', '.join(choices)}.")
    return value


def parse_int(value: object, low: int, high: int, label: str) -> int:
    if not _is_int(value) or not low <= value <= high:  # type: ignore[operator]
        raise FilterError(f"The {label} must be a whole number from {low} to {high}.")
    return int(value)  # type: ignore[arg-type]


@dataclass(frozen=True)
class View:
    """Checked filters of one callback: what to read and from which snapshot."""

    filters: Filters
    snapshot_id: int | None

    def params(self, export: str) -> dict[str, Any]:
        """What a chart was drawn from; its download recomputes exactly this."""
        f = self.filters
        return {
            "export": export,
            "start": f.start.isoformat() if f.start else None,
            "end": f.end.isoformat() if f.end else None,
            "segments": list(f.segments),
            "snapshot": self.snapshot_id,
            "granularity": f.granularity,
            "split_by_segment": f.split_by_segment,
            "month": f.month,
            "compare_to": f.compare_to,
            "customer": f.customer,
        }

    def with_(self, **changes: Any) -> View:
        return View(replace(self.filters, **changes), self.snapshot_id)


def parse_view(start: object, end: object, segments: object, snapshot: object) -> View:
    first, last = parse_day(start, "start date"), parse_day(end, "end date")
    if first and last and first > last:
        raise FilterError("The start date is after the end date.")
    return View(Filters(first, last, parse_segments(segments)), parse_snapshot(snapshot))


def view_from_params(params: object) -> tuple[str, View]:
    """A chart's params (as sent back by the browser), checked again: they may be tampered."""
    if not isinstance(params, dict):
        raise FilterError("Nothing to download yet: wait for the chart to load.")
    from analytics.exports import EXPORTS

    export = parse_choice(params.get("export"), EXPORTS, "export")
    view = parse_view(
        params.get("start"), params.get("end"), params.get("segments"), params.get("snapshot")
    )
    customer = params.get("customer")
    if customer is not None and (not isinstance(customer, str) or len(customer) > MAX_TEXT):
        raise FilterError("The customer id is not valid.")
    compare_to = params.get("compare_to")
    return export, view.with_(
        granularity=parse_choice(params.get("granularity", "month"), GRANULARITIES, "period"),
        split_by_segment=bool(params.get("split_by_segment", False)),
        month=parse_int(params.get("month", 1), 1, MAX_RETENTION_MONTH, "month"),
        compare_to=None if compare_to is None else parse_snapshot(compare_to),
        customer=customer,
    )


# --- the URL query -------------------------------------------------------------------------


def query_string(start: object, end: object, segments: object, snapshot: object) -> str:
    pairs: list[tuple[str, Any]] = []
    if isinstance(start, str) and start:
        pairs.append(("start", start[:10]))
    if isinstance(end, str) and end:
        pairs.append(("end", end[:10]))
    if isinstance(segments, list):
        pairs += [("segment", s) for s in segments if _is_int(s)]
    if _is_int(snapshot):
        pairs.append(("snapshot", snapshot))
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


def as_of_text(snap: Snapshot) -> str:
    fitted = f"{snap.finished_at:%Y-%m-%d %H:%M} UTC" if snap.finished_at else "–"
    return (
        f"Snapshot {snap.id} · as of {snap.as_of} · fitted {fitted} · "
        f"data {snap.data_start} to {snap.data_end} · {snap.customers or 0:,} customers"
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


def filter_bar(init: Initial, segments: bool = True, dates: bool = True) -> html.Div:
    """The controls every analytics page shows, set from the page's URL query."""
    snap = init.snap
    items = []
    if dates:
        items += [
            dbc.Col(
                dbc.ButtonGroup(
                    [
                        dbc.Button(
                            label,
                            id=f"f-preset-{key}",
                            size="sm",
                            outline=True,
                            color="secondary",
                            n_clicks=0,
                        )
                        for key, label in PRESETS
                    ],
                    size="sm",
                ),
                width="auto",
            ),
            dbc.Col(
                dcc.DatePickerRange(
                    id="f-dates",
                    min_date_allowed=snap.data_start,
                    max_date_allowed=snap.data_end,
                    initial_visible_month=init.end,
                    start_date=init.start,
                    end_date=init.end,
                    display_format="YYYY-MM-DD",
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
                    id="f-dates",
                    start_date=init.start,
                    end_date=init.end,
                    min_date_allowed=snap.data_start,
                    max_date_allowed=snap.data_end,
                ),
                className="d-none",
            )
        )
    seg_dropdown = dcc.Dropdown(
        id="f-segments",
        options=segment_options(snap.id),
        value=init.segments,
        multi=True,
        placeholder="All segments",
        style={} if segments else {"display": "none"},
    )
    items.append(
        dbc.Col(seg_dropdown, className="" if segments else "d-none", style={"minWidth": "220px"})
    )
    items.append(
        dbc.Col(
            html.Div(
                dcc.Dropdown(
                    id="f-snapshot",
                    options=snapshot_options(init.snaps),
                    value=snap.id,
                    clearable=False,
                    searchable=False,
                ),
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
                    html.Small(as_of_text(snap), id="f-asof", className="text-muted"),
                    html.Small(init.note, className="text-warning ms-2"),
                ],
                className="mt-1",
            ),
        ],
        className="filter-bar border-bottom pb-2 mb-3",
    )


def page_header(title: str, lead: str) -> html.Div:
    return html.Div(
        [html.H2(title, className="h4 mb-0"), html.P(lead, className="text-muted small mb-2")]
    )


# --- callbacks shared by every page ----------------------------------------------------------


def apply_preset(*args: Any) -> tuple[Any, Any]:
    trigger = ctx.triggered_id
    if not isinstance(trigger, str) or not trigger.startswith("f-preset-"):
        return no_update, no_update
    try:
        snap = snapshots.get_snapshot(state().engine, parse_snapshot(args[-1]))
    except (FilterError, snapshots.NoSnapshot):
        return no_update, no_update
    assert snap.data_start is not None and snap.data_end is not None
    first, last = preset_range(trigger.removeprefix("f-preset-"), snap.data_start, snap.data_end)
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


def remember_view(start: object, end: object, segments: object, snapshot: object) -> list[str]:
    """Write the filters into the address bar and the navbar links (no data is read)."""
    query = query_string(start, end, segments, snapshot)
    return [query] + [path + query for path in FILTERED]


def active_link(pathname: object) -> list[bool]:
    path = pathname if isinstance(pathname, str) else "/"
    return [path == p or (p != "/" and path.startswith(p + "/")) for p in FILTERED]


def register(app: Dash) -> None:
    """The controls' callbacks, on `app` (shared modules register per app, pages by import)."""
    app.callback(
        Output("f-dates", "start_date", allow_duplicate=True),
        Output("f-dates", "end_date", allow_duplicate=True),
        [Input(f"f-preset-{key}", "n_clicks") for key, _ in PRESETS],
        State("f-snapshot", "value"),
        prevent_initial_call=True,
    )(apply_preset)
    app.callback(
        Output("f-segments", "options"),
        Output("f-segments", "value", allow_duplicate=True),
        Output("f-dates", "min_date_allowed"),
        Output("f-dates", "max_date_allowed"),
        Output("f-dates", "start_date", allow_duplicate=True),
        Output("f-dates", "end_date", allow_duplicate=True),
        Output("f-asof", "children"),
        Input("f-snapshot", "value"),
        State("f-segments", "value"),
        State("f-dates", "start_date"),
        State("f-dates", "end_date"),
        State("f-dates", "min_date_allowed"),
        State("f-dates", "max_date_allowed"),
        prevent_initial_call=True,
    )(switch_snapshot)
    app.callback(
        Output("url-query", "search"),
        [Output(nav_id(path), "href") for path in FILTERED],
        *CONTROLS,
    )(remember_view)
    app.callback(
        [Output(nav_id(path), "active") for path in FILTERED],
        Input("url", "pathname"),
    )(active_link)
