"""Overview (/): headline KPIs against the previous period, and revenue by segment over time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Output, html

from analytics.digest import change_text
from analytics.metrics import DEFINITIONS
from webapp import charts
from webapp.components import chart_card, graph, integer, money, no_snapshot
from webapp.components import percent as pct
from webapp.filters import filter_bar, initial, page_header
from webapp.pagekit import Extra, Kit, auto_granularity, chart_callback
from webapp.roles import has_role
from webapp.state import state

dash.register_page(
    __name__,
    path="/",
    name="Overview",
    title="Overview · Customer segmentation",
    order=0,
    role="viewer",
)

Format = Callable[[Any], str]
CARDS: tuple[tuple[str, str, Format], ...] = (
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
    export = has_role("analyst")
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


KPI_OUTPUTS = {f"kpi-{key}": Extra(Output(f"kpi-{key}", "children"), "–") for key, _, _ in CARDS}
CHANGE_OUTPUTS = {
    f"kpi-{key}-change": Extra(Output(f"kpi-{key}-change", "children"), "") for key, _, _ in CARDS
}


@chart_callback(
    "overview",
    {"overview-kpis": None, "overview-trend": "figure"},
    extras={
        **KPI_OUTPUTS,
        **CHANGE_OUTPUTS,
        "overview-compare": Extra(Output("overview-compare", "children"), ""),
    },
)
def update_overview(kit: Kit) -> dict[str, Any]:
    snap = kit.snapshot
    kpis = kit.read("kpi_comparison", charts=("overview-kpis",))
    granularity = auto_granularity(kit.view, snap.data_start, snap.data_end)
    sales = kit.read("sales", kit.view.with_(granularity=granularity), charts=("overview-trend",))
    rows = kpis.set_index("metric")
    out: dict[str, Any] = {}
    for key, _, fmt in CARDS:
        row = rows.loc[key]
        value = _num(row["current"])
        if fmt is integer and value is not None:
            value = int(value)
        out[f"kpi-{key}"] = fmt(value)
        diff = _num(row["difference"]) or 0.0
        text = change_text(_num(row["change"]), _num(row["difference"]), key)
        good = diff >= 0 if key != "returns" else diff <= 0
        out[f"kpi-{key}-change"] = (
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
    out["overview-compare"] = compare
    out["overview-trend"] = charts.revenue_trend(sales, kit.palette, granularity)
    return out


def _num(value: Any) -> float | None:
    if value is None or value != value:  # None or NaN
        return None
    return float(value)
