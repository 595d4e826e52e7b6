"""Retention (/retention): cohort heatmap, month-m retention across cohorts, repeat rates.

The date range selects cohorts (the month of a customer's first positive order) and counts
their activity up to the end of the range (docs/METRICS.md).
"""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html

from analytics.exports import MAX_RETENTION_MONTH
from db import snapshots
from webapp import charts, roles
from webapp.components import beside, chart_card, graph, no_snapshot
from webapp.filters import (
    FILTERS,
    SNAPSHOT,
    FilterError,
    filter_bar,
    initial,
    page_header,
    parse_int,
    parse_segments,
    parse_snapshot,
)
from webapp.pagekit import Kit, chart_callback
from webapp.roles import has_role
from webapp.state import state

dash.register_page(
    __name__, path="/retention", name="Retention", title="Retention", order=2, role="viewer"
)

ALL = "all"


def _heat_options(snapshot_id: int) -> list[dict[str, str]]:
    segs = snapshots.segments(state().engine, snapshot_id)
    return [{"label": "All customers in the filter", "value": ALL}] + [
        {"label": r.name, "value": str(int(r.segment_id))} for r in segs.itertuples()
    ]


def layout(**query: Any) -> html.Div:
    init = initial(query)
    if init is None:
        return no_snapshot("Retention")
    export = has_role("analyst")
    heat_options = _heat_options(init.snap.id)
    return html.Div(
        [
            page_header(
                "Retention",
                "Do customers come back? Cohorts are the month of a customer's first order; the "
                "date range picks the cohorts and counts their orders up to its end.",
            ),
            filter_bar(init),
            html.Div(id="retention-message"),
            chart_card(
                "retention-heatmap",
                "Cohort retention",
                "Row: customers whose first positive order was in that month (size in brackets). "
                "Column m: the share of them with a positive order m months later. Month 0 is "
                "100% by definition. Activity counts by calendar month: the month of the range's "
                "end day counts whole.",
                html.Div(
                    [
                        dbc.Row(
                            beside(
                                "Heatmap of",
                                "retention-of",
                                dcc.Dropdown(
                                    id="retention-of",
                                    options=heat_options,
                                    value=ALL,
                                    clearable=False,
                                    searchable=False,
                                ),
                                md=4,
                            ),
                            className="g-2 align-items-center mb-2",
                        ),
                        graph("retention-heatmap"),
                    ]
                ),
                exportable=export,
            ),
            dbc.Row(
                [
                    dbc.Col(
                        chart_card(
                            "retention-trend",
                            "Month-m retention by cohort",
                            "For each cohort and segment, the share of customers who ordered "
                            "again m months after their first order. Only cohorts for which "
                            "month m has happened within the range.",
                            html.Div(
                                [
                                    dbc.Row(
                                        beside(
                                            "Month m =",
                                            "retention-month",
                                            dbc.Input(
                                                id="retention-month",
                                                type="number",
                                                min=1,
                                                max=MAX_RETENTION_MONTH,
                                                step=1,
                                                value=1,
                                                size="sm",
                                                debounce=True,
                                            ),
                                            width=2,
                                        ),
                                        className="g-2 align-items-center mb-2",
                                    ),
                                    graph("retention-trend"),
                                ]
                            ),
                            exportable=export,
                        ),
                        lg=7,
                    ),
                    dbc.Col(
                        chart_card(
                            "retention-repeat",
                            "Repeat purchase rate",
                            "Share of each segment's customers with two or more positive orders "
                            "in the date range.",
                            graph("retention-repeat"),
                            exportable=export,
                        ),
                        lg=5,
                    ),
                ]
            ),
        ]
    )


@chart_callback(
    "retention",
    {"retention-heatmap": "figure", "retention-trend": "figure", "retention-repeat": "figure"},
    inputs={
        **FILTERS,
        "heat_of": Input("retention-of", "value"),
        "month": Input("retention-month", "value"),
    },
)
def update_retention(kit: Kit, heat_of: Any = ALL, month: Any = 1) -> dict[str, Any]:
    view = kit.view
    heat_view = view
    if heat_of not in (None, ALL):
        if not isinstance(heat_of, str) or not heat_of.lstrip("-").isdigit():
            raise FilterError("The heatmap's segment is not valid.")
        (one,) = parse_segments([int(heat_of)])
        heat_view = view.with_(segments=(one,))
    m = parse_int(month if month is not None else 1, 1, MAX_RETENTION_MONTH, "month")
    heat = kit.read("retention", heat_view, charts=("retention-heatmap",))
    trend = kit.read("retention_trend", view.with_(month=m), charts=("retention-trend",))
    repeat = kit.read("repeat_rate", view, charts=("retention-repeat",))
    pal = kit.palette
    return {
        "retention-heatmap": charts.retention_heatmap(heat),
        "retention-trend": charts.retention_trend(trend, pal, m),
        "retention-repeat": charts.repeat_rate_bars(repeat, pal),
    }


@roles.callback(
    Output("retention-of", "options"),
    Output("retention-of", "value"),
    Input(SNAPSHOT, "value"),
    State("retention-of", "value"),
    prevent_initial_call=True,
    role="viewer",
)
def heatmap_choices(snapshot: Any, current: Any) -> tuple[list[dict[str, str]], str]:
    """The heatmap's segments follow the snapshot selector."""
    try:
        snap = snapshots.get_snapshot(state().engine, parse_snapshot(snapshot))
    except (FilterError, snapshots.NoSnapshot):
        return [{"label": "All customers in the filter", "value": ALL}], ALL
    options = _heat_options(snap.id)
    keep = current if any(o["value"] == current for o in options) else ALL
    return options, keep
