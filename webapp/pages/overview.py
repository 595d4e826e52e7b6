"""Overview (/): the headline KPIs for a date range."""

from __future__ import annotations

from datetime import date

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, callback, dcc, html

from analytics.metrics import DEFINITIONS, kpis
from db.queries import data_window, load_orders
from webapp.components import empty_state, integer, kpi_card, money, percent
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
    ("repeat_rate", "Repeat rate", percent),
)


def parse_day(value: str | None) -> date | None:
    if not value:
        return None
    return date.fromisoformat(str(value)[:10])


def layout(**_query: str) -> html.Div:
    first, last = data_window(state().engine)
    if first is None:
        return html.Div(
            [
                html.H2("Overview"),
                empty_state(
                    "No transactions yet",
                    "Import a file with `custseg import FILE` (or `custseg demo-data`), "
                    "then reload this page.",
                ),
            ]
        )
    return html.Div(
        [
            dbc.Row(
                [
                    dbc.Col(html.H2("Overview", className="mb-0"), width="auto"),
                    dbc.Col(
                        dcc.DatePickerRange(
                            id="overview-dates",
                            min_date_allowed=first,
                            max_date_allowed=last,
                            start_date=first,
                            end_date=last,
                            display_format="YYYY-MM-DD",
                        ),
                        width="auto",
                    ),
                ],
                className="align-items-center mb-3 g-3",
            ),
            dbc.Row(
                [
                    kpi_card(
                        f"kpi-{key}",
                        label,
                        "…",
                        DEFINITIONS[key].format(active_days=state().settings.active_days),
                    )
                    for key, label, _ in CARDS
                ],
                className="g-3",
            ),
            html.Div(id="overview-note", className="text-muted small"),
        ]
    )


@callback(
    [Output(f"kpi-{key}", "children") for key, _, _ in CARDS],
    Output("overview-note", "children"),
    Input("overview-dates", "start_date"),
    Input("overview-dates", "end_date"),
)
def update_kpis(start_date: str | None, end_date: str | None) -> list[str]:
    try:
        start, end = parse_day(start_date), parse_day(end_date)
    except ValueError:
        return ["–"] * len(CARDS) + ["The date range is not valid (use YYYY-MM-DD)."]
    if start and end and start > end:
        return ["–"] * len(CARDS) + ["The start date is after the end date."]
    st = state()
    orders = load_orders(st.engine, start, end)
    figures = kpis(orders, start, end, st.settings.active_days).as_dict()
    note = f"Orders from {start or 'the first order'} to {end or 'the last order'}, both inclusive."
    return [fmt(figures[key]) for key, _, fmt in CARDS] + [note]  # type: ignore[operator]
