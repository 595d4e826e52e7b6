"""Segments (/segments): how big and valuable each segment is, and what sets it apart.

A click on a segment's bar filters the whole dashboard to that segment (a second click clears
it). Analysts can rename a segment; the name follows it into later snapshots.
"""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, State, dcc, html, no_update
from flask_login import current_user

from analytics.exports import get as get_export
from db import snapshots
from db.segment_names import rename_segment
from webapp import charts, roles
from webapp.components import chart_card, graph, money, no_snapshot, percent
from webapp.filters import (
    FILTERS,
    SEGMENTS,
    SNAPSHOT,
    FilterError,
    filter_bar,
    initial,
    page_header,
    parse_segments,
    parse_snapshot,
    segment_options,
)
from webapp.pagekit import Kit, chart_callback
from webapp.roles import has_role
from webapp.state import state

dash.register_page(
    __name__, path="/segments", name="Segments", title="Segments", order=1, role="viewer"
)

RENAME_ROLE: roles.Role = "analyst"


def layout(**query: Any) -> html.Div:
    init = initial(query)
    if init is None:
        return no_snapshot("Segments")
    export = has_role("analyst")
    rename = []
    if has_role(RENAME_ROLE):
        rename = [
            dbc.Row(
                [
                    dbc.Col(
                        dcc.Dropdown(
                            id="rename-segment", placeholder="Segment to rename", clearable=False
                        ),
                        md=4,
                    ),
                    dbc.Col(
                        dbc.Input(
                            id="rename-name", placeholder="New name", maxLength=80, type="text"
                        ),
                        md=4,
                    ),
                    dbc.Col(dbc.Button("Rename", id="rename-go", size="sm"), width="auto"),
                    dbc.Col(html.Small(id="rename-message"), md=True),
                ],
                className="g-2 align-items-center mt-2",
            )
        ]
    return html.Div(
        [
            page_header(
                "Segments",
                "Who the segments are: size, value and how each differs from the average "
                "customer. Click a segment's bar to filter every page to it.",
            ),
            filter_bar(init, dates=False),
            html.Div(id="segments-message"),
            dcc.Store(id="segments-renamed", data=0),
            dbc.Row(
                [
                    dbc.Col(
                        chart_card(
                            "segments-shares",
                            "Share of customers and of revenue",
                            "Light bars: the segment's share of all segmented customers. Dark "
                            "bars: its share of their gross revenue. Click a bar to filter the "
                            "dashboard to that segment; click again to clear.",
                            graph("segments-shares"),
                            exportable=export,
                        ),
                        lg=5,
                    ),
                    dbc.Col(
                        chart_card(
                            "segments-profiles",
                            "How each segment differs from the average customer",
                            "Each cell: the segment's mean of a feature divided by the mean of "
                            "all customers (2× = twice the average): blue above the average, "
                            "red below.",
                            graph("segments-profiles"),
                            exportable=export,
                        ),
                        lg=7,
                    ),
                ]
            ),
            chart_card(
                "segments-table",
                "The segments",
                "Name and description of each segment, from its profile. Medians per customer; "
                "the centre of the K-Means cluster in original units under 'Centroid'.",
                html.Div(id="segments-table"),
                exportable=export,
                footer=html.Div(rename),
            ),
            chart_card(
                "segments-scatter",
                "Customers in recency, frequency and spend",
                "A fixed sample of up to 400 customers per segment. Frequency and spend on log "
                "scales. Single customers: shown to analysts and admins only.",
                graph("segments-scatter"),
                exportable=export,
            ),
        ]
    )


def _table(frame: pd.DataFrame, profiles: pd.DataFrame, pal: charts.Palette) -> dbc.Table:
    centroids = {
        (int(r.segment_id), r.feature): r.centroid
        for r in profiles.itertuples()
        if r.centroid is not None and r.centroid == r.centroid
    }
    head = html.Thead(
        html.Tr(
            [
                html.Th("Segment"),
                html.Th("Customers", className="text-end"),
                html.Th("Revenue share", className="text-end"),
                html.Th("AOV", className="text-end"),
                html.Th("Recency (days)", className="text-end"),
                html.Th("Orders", className="text-end"),
                html.Th("Spend", className="text-end"),
                html.Th("Centroid (R / F / M)", className="text-end"),
            ]
        )
    )
    rows = []
    for r in frame.itertuples():
        sid = int(r.segment_id)
        cen = [centroids.get((sid, f)) for f in ("recency_days", "frequency", "monetary")]
        cen_text = " / ".join("–" if v is None else f"{v:,.1f}" for v in cen)
        rows.append(
            html.Tr(
                [
                    html.Td(
                        [
                            html.Span("■ ", style={"color": pal.color(sid)}),
                            html.Strong(r.name),
                            html.Span(f" #{sid}", className="text-muted small"),
                            html.Div(r.description, className="small text-muted"),
                        ]
                    ),
                    html.Td(f"{r.customers:,} ({r.share:.0%})", className="text-end"),
                    html.Td(percent(r.revenue_share), className="text-end"),
                    html.Td(money(r.aov), className="text-end"),
                    html.Td(f"{r.recency_days:,.0f}", className="text-end"),
                    html.Td(f"{r.frequency:,.0f}", className="text-end"),
                    html.Td(money(r.monetary), className="text-end"),
                    html.Td(cen_text, className="text-end small"),
                ]
            )
        )
    return dbc.Table([head, html.Tbody(rows)], hover=True, size="sm", className="mb-0")


@chart_callback(
    "segments",
    {
        "segments-shares": "figure",
        "segments-profiles": "figure",
        "segments-table": "children",
        "segments-scatter": "figure",
    },
    inputs={**FILTERS, "renamed": Input("segments-renamed", "data")},
)
def update_segments(kit: Kit, renamed: Any = None) -> dict[str, Any]:
    # Sizes and profiles are the snapshot's: the date range does not change them.
    view = kit.view.with_(start=None, end=None)
    seg = kit.read("segments", view, charts=("segments-shares", "segments-table"))
    prof = kit.read("profiles", view, charts=("segments-profiles",))
    pal = kit.palette
    out = {
        "segments-shares": charts.segment_shares(seg, pal),
        "segments-profiles": charts.profile_heatmap(prof, pal),
        "segments-table": _table(seg, prof, pal),
    }
    # The scatter shows single customers: read only for a role that may receive them (the
    # exporter refuses the others anyway).
    if kit.may("customer_sample"):
        sample = kit.read("customer_sample", view, charts=("segments-scatter",))
        out["segments-scatter"] = charts.customer_scatter(sample, pal)
    else:
        out["segments-scatter"] = charts.empty_figure(
            f"Single customers: for the {get_export('customer_sample').role} role."
        )
    return out


@roles.callback(
    Output(SEGMENTS, "value", allow_duplicate=True),
    Input("segments-shares", "clickData"),
    State(SEGMENTS, "value"),
    prevent_initial_call=True,
    role="viewer",
)
def select_segment(click: Any, selected: Any) -> Any:
    """A click on a bar filters the dashboard to that segment; clicking it again clears."""
    try:
        point = click["points"][0]
        sid = point["customdata"]
        current = parse_segments(selected)
        (sid,) = parse_segments([sid])
    except (FilterError, KeyError, IndexError, TypeError, ValueError):
        return no_update
    return [] if current == (sid,) else [sid]


@roles.callback(
    Output("rename-segment", "options"),
    Input(SNAPSHOT, "value"),
    Input("segments-renamed", "data"),
    role=RENAME_ROLE,
)
def rename_options(snapshot: Any, _renamed: Any) -> list[dict[str, Any]]:
    try:
        snap = snapshots.get_snapshot(state().engine, parse_snapshot(snapshot))
    except (FilterError, snapshots.NoSnapshot):
        return []
    segs = snapshots.segments(state().engine, snap.id)
    return [
        {"label": f"#{r.segment_id} {r.name}", "value": int(r.segment_id)}
        for r in segs.itertuples()
    ]


@roles.callback(
    Output("rename-message", "children"),
    Output("segments-renamed", "data"),
    Output(SEGMENTS, "options", allow_duplicate=True),
    Input("rename-go", "n_clicks"),
    State("rename-segment", "value"),
    State("rename-name", "value"),
    State("segments-renamed", "data"),
    State(SNAPSHOT, "value"),
    prevent_initial_call=True,
    role=RENAME_ROLE,
)
def rename(
    clicks: Any, segment_id: Any, name: Any, count: Any = 0, snapshot: Any = None
) -> tuple[Any, Any, Any]:
    """Give a segment an analyst's name; it follows the segment into later snapshots."""
    if not clicks:
        return no_update, no_update, no_update
    try:
        (sid,) = parse_segments([segment_id]) if segment_id is not None else (None,)
        if sid is None:
            raise FilterError("Choose a segment to rename.")
        if not isinstance(name, str):
            raise FilterError("Type the new name.")
        new = rename_segment(state().engine, sid, name, by=current_user.email)
    except (FilterError, ValueError) as exc:
        return html.Span(str(exc), className="text-danger"), no_update, no_update
    done = html.Span(f"Segment {sid} is now called “{new}”.", className="text-success")
    bump = (count or 0) + 1 if isinstance(count, int) else 1
    options: Any
    try:  # the filter bar's labels carry the new name too
        options = segment_options(
            parse_snapshot(snapshot) or snapshots.get_snapshot(state().engine).id
        )
    except (FilterError, snapshots.NoSnapshot):
        options = no_update
    return done, bump, options
