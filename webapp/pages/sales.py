"""Sales & AOV (/sales): revenue, orders and AOV over time per segment, shares, order values."""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, callback, html

from analytics.exports import GRANULARITIES
from webapp import charts
from webapp.components import can, chart_card, graph, no_snapshot
from webapp.filters import CONTROLS, filter_bar, initial, page_header, parse_choice, parse_view
from webapp.pagekit import HANDLED, palette, read

dash.register_page(__name__, path="/sales", name="Sales & AOV", title="Sales & AOV")


def layout(**query: Any) -> html.Div:
    init = initial(query)
    if init is None:
        return no_snapshot("Sales & AOV")
    export = can("analyst")
    return html.Div(
        [
            page_header(
                "Sales & AOV",
                "How much each segment buys over time, how much per order, and its share of "
                "revenue.",
            ),
            filter_bar(init),
            html.Div(id="sales-message"),
            chart_card(
                "sales-time",
                "Revenue, orders and AOV over time",
                "Per period and segment: gross revenue (positive orders), number of positive "
                "orders, and AOV = gross revenue / positive orders. Returns count only in net "
                "revenue (in the download, where customers with only returns are segment 0).",
                html.Div(
                    [
                        dbc.RadioItems(
                            id="sales-granularity",
                            options=[{"label": g.title(), "value": g} for g in GRANULARITIES],
                            value="month",
                            inline=True,
                            className="small mb-1",
                        ),
                        graph("sales-time"),
                    ]
                ),
                exportable=export,
            ),
            dbc.Row(
                [
                    dbc.Col(
                        chart_card(
                            "sales-share",
                            "Share of revenue over time",
                            "Each segment's share of the period's gross revenue.",
                            graph("sales-share"),
                            exportable=export,
                        ),
                        lg=6,
                    ),
                    dbc.Col(
                        chart_card(
                            "sales-aov",
                            "Order values per segment",
                            "Positive order totals in the range: box from the lower to the upper "
                            "quartile, line at the median, dashed line at the mean, whiskers at "
                            "the 5th and 95th percentiles.",
                            graph("sales-aov"),
                            exportable=export,
                        ),
                        lg=6,
                    ),
                ]
            ),
        ]
    )


@callback(
    Output("sales-time", "figure"),
    Output("sales-share", "figure"),
    Output("sales-aov", "figure"),
    Output({"type": "params", "chart": "sales-time"}, "data"),
    Output({"type": "params", "chart": "sales-share"}, "data"),
    Output({"type": "params", "chart": "sales-aov"}, "data"),
    Output("sales-message", "children"),
    *CONTROLS,
    Input("sales-granularity", "value"),
)
def update_sales(
    start: Any, end: Any, segments: Any, snapshot: Any, granularity: Any = "month"
) -> tuple[Any, ...]:
    try:
        view = parse_view(start, end, segments, snapshot)
        view = view.with_(granularity=parse_choice(granularity, GRANULARITIES, "period"))
        sales, sales_params = read(view, "sales")
        dist, dist_params = read(view, "aov_distribution")
        pal = palette(view)
    except HANDLED as exc:
        blank = charts.empty_figure(str(exc))
        alert = dbc.Alert(str(exc), color="warning", className="py-2")
        return blank, blank, blank, None, None, None, alert
    g = view.filters.granularity
    return (
        charts.sales_over_time(sales, pal, g),
        charts.revenue_share(sales, pal),
        charts.aov_boxes(dist, pal),
        sales_params,
        sales_params,
        dist_params,
        None,
    )
