"""Overview (/): headline KPIs against the previous period, and revenue by segment over time."""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Output, callback, html

from analytics.metrics import DEFINITIONS
from webapp import charts
from webapp.components import can, change_text, chart_card, graph, integer, money, no_snapshot
from webapp.components import percent as pct
from webapp.filters import CONTROLS, filter_bar, initial, page_header, parse_view
from webapp.pagekit import HANDLED, auto_granularity, palette, read, snapshot_of
from webapp.state import state

dash.register_page(__name__, path="/", name="Overview", title="Overview · Customer segmentation")

CARDS = (
    ("customers", "Customers", integer),
    ("active_customers", "Active customers", integer),
    ("orders", "Orders", integer),
    ("returns", "Returns", integer),
    ("gross_revenue", "Gross revenue", money),
    ("net_revenue", "Net revenue", money),
    ("aov", "AOV", money),
    ("repeat_rate", "Repeat rate", pct),
)


def _card(key: str, label: str, definition: str) -> dbc.Col:
    return dbc.Col(
        html.Div(
            [
                html.Div(label, className="text-muted small", title=definition),
                html.Div("…", className="fs-5 fw-semibold", id=f"kpi-{key}"),
                html.Div("", className="small", id=f"kpi-{key}-change"),
            ],
            className="border rounded p-2 h-100",
            title=definition,
        ),
        xs=6,
        md=3,
        xl=True,
    )


def layout(**query: Any) -> html.Div:
    init = initial(query)
    if init is None:
        return no_snapshot("Overview")
    days = state().settings.active_days
    cards = dbc.Row(
        [_card(key, label, DEFINITIONS[key].format(active_days=days)) for key, label, _ in CARDS],
        className="g-2",
    )
    export = can("analyst")
    return html.Div(
        [
            page_header(
                "Overview",
                "Headline figures for the period and segments chosen, against the previous "
                "period of the same length.",
            ),
            filter_bar(init),
            html.Div(id="overview-message"),
            chart_card(
                "overview-kpis",
                "Headline figures",
                "Each figure for the chosen period; below it, the change against the period of "
                "the same length just before. Hover a label for its definition.",
                html.Div([cards, html.Div(id="overview-compare", className="small mt-2")]),
                exportable=export,
            ),
            chart_card(
                "overview-trend",
                "Gross revenue by segment",
                "Gross revenue (positive orders) per day, week or month, stacked by segment.",
                graph("overview-trend"),
                exportable=export,
            ),
        ]
    )


@callback(
    [Output(f"kpi-{key}", "children") for key, _, _ in CARDS],
    [Output(f"kpi-{key}-change", "children") for key, _, _ in CARDS],
    Output("overview-compare", "children"),
    Output("overview-trend", "figure"),
    Output({"type": "params", "chart": "overview-kpis"}, "data"),
    Output({"type": "params", "chart": "overview-trend"}, "data"),
    Output("overview-message", "children"),
    *CONTROLS,
)
def update_overview(start: Any, end: Any, segments: Any, snapshot: Any) -> tuple[Any, ...]:
    n = len(CARDS)
    try:
        view = parse_view(start, end, segments, snapshot)
        snap = snapshot_of(view)
        kpis, kpi_params = read(view, "kpi_comparison")
        granularity = auto_granularity(view, snap.data_start, snap.data_end)
        trend_view = view.with_(granularity=granularity)
        sales, trend_params = read(trend_view, "sales")
        pal = palette(view)
    except HANDLED as exc:
        blank = charts.empty_figure(str(exc))
        return (
            *["–"] * n,
            *[""] * n,
            "",
            blank,
            None,
            None,
            dbc.Alert(str(exc), color="warning", className="py-2"),
        )
    rows = kpis.set_index("metric")
    values, changes = [], []
    for key, _, fmt in CARDS:
        row = rows.loc[key]
        value = _num(row["current"])
        if fmt is integer and value is not None:
            value = int(value)
        values.append(fmt(value))  # type: ignore[operator]
        diff = _num(row["difference"]) or 0.0
        text = change_text(_num(row["change"]), _num(row["difference"]), key)
        good = diff >= 0 if key != "returns" else diff <= 0
        changes.append(
            html.Span(text, className=("text-success" if good else "text-danger"))
            if text != "–"
            else html.Span("no earlier data", className="text-muted")
        )
    first = rows.iloc[0]
    compare = (
        f"Period {first['current_start']} to {first['current_end']} (inclusive) against "
        f"{first['previous_start']} to {first['previous_end']}."
    )
    if snap.data_start and first["previous_start"] < snap.data_start:
        compare += (
            f" The earlier period starts before the first order ({snap.data_start}), so it "
            "covers fewer days of data."
        )
    return (
        *values,
        *changes,
        compare,
        charts.revenue_trend(sales, pal, granularity),
        kpi_params,
        trend_params,
        None,
    )


def _num(value: Any) -> float | None:
    if value is None or value != value:  # None or NaN
        return None
    return float(value)
