"""Sales & AOV (/sales): revenue, orders and AOV over time per segment, shares, order values."""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, html

from analytics.exports import GRANULARITIES
from webapp import charts
from webapp.components import chart_card, choice, graph, no_snapshot
from webapp.filters import FILTERS, filter_bar, initial, page_header, parse_choice
from webapp.pagekit import Kit, chart_callback
from webapp.roles import has_role

dash.register_page(
    __name__, path="/sales", name="Sales & AOV", title="Sales & AOV", order=3, role="viewer"
)


def layout(**query: Any) -> html.Div:
    init = initial(query)
    if init is None:
        return no_snapshot("Sales & AOV")
    export = has_role("analyst")
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
                        choice(
                            "sales-granularity",
                            {g: g.title() for g in GRANULARITIES},
                            "month",
                            "small mb-1",
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


@chart_callback(
    "sales",
    {"sales-time": "figure", "sales-share": "figure", "sales-aov": "figure"},
    inputs={**FILTERS, "granularity": Input("sales-granularity", "value")},
)
def update_sales(kit: Kit, granularity: Any = "month") -> dict[str, Any]:
    view = kit.view.with_(granularity=parse_choice(granularity, GRANULARITIES, "period"))
    sales = kit.read("sales", view, charts=("sales-time", "sales-share"))
    dist = kit.read("aov_distribution", view, charts=("sales-aov",))
    pal = kit.palette
    g = view.filters.granularity
    return {
        "sales-time": charts.sales_over_time(sales, pal, g),
        "sales-share": charts.revenue_share(sales, pal),
        "sales-aov": charts.aov_boxes(dist, pal),
    }
