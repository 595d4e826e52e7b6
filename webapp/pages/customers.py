"""Customers (/customers): look up one customer; list a segment's members for a campaign.

Member lists and their export are for analysts (checked in the callbacks, not only by hiding).
"""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, callback, dash_table, html
from dash.dash_table.Format import Format, Group, Scheme
from flask_login import current_user

from db import snapshots
from webapp.components import can, chart_card, money, no_snapshot, table_style
from webapp.filters import (
    CONTROLS,
    MAX_TEXT,
    FilterError,
    filter_bar,
    initial,
    page_header,
    parse_int,
    parse_view,
)
from webapp.pagekit import HANDLED, palette, read
from webapp.state import state

dash.register_page(__name__, path="/customers", name="Customers", title="Customers")

MEMBERS_ROLE = "analyst"  # customer-level data (ids, orders): docs/SECURITY.md
PAGE_SIZE = 25
MAX_PAGE = 1_000_000
MEMBER_COLUMNS = (
    ("customer_id", "Customer", "text"),
    ("segment_id", "Segment", "text"),
    ("recency_days", "Recency (days)", "numeric"),
    ("frequency", "Orders", "numeric"),
    ("monetary", "Spend", "numeric"),
    ("aov", "AOV", "numeric"),
    ("last_order_day", "Last order", "text"),
)

MONEY_COLUMNS = ("monetary", "aov")
# Thousands separator and two decimals, as `components.money` writes amounts elsewhere.
MONEY = Format(precision=2, scheme=Scheme.fixed, group=Group.yes)


def _column(cid: str, name: str, kind: str) -> dict[str, Any]:
    col: dict[str, Any] = {"id": cid, "name": name, "type": kind}
    if cid in MONEY_COLUMNS:
        col["format"] = MONEY
    return col


def layout(**query: Any) -> html.Div:
    init = initial(query)
    if init is None:
        return no_snapshot("Customers")
    members: Any
    if can(MEMBERS_ROLE):
        members = chart_card(
            "customers-members",
            "Members of the selected segments",
            "Every customer of the segments chosen above (all segments if none), with their "
            "features as of the snapshot. Download the list for a campaign.",
            html.Div(
                [
                    html.Div(id="members-count", className="small text-muted mb-1"),
                    dash_table.DataTable(
                        id="members-table",
                        columns=[_column(c, n, t) for c, n, t in MEMBER_COLUMNS],
                        page_current=0,
                        page_size=PAGE_SIZE,
                        page_action="custom",
                        **table_style(),
                        style_cell_conditional=[
                            {"if": {"column_type": "numeric"}, "textAlign": "right"}
                        ],
                    ),
                ]
            ),
        )
    else:
        members = None
    lookup_card: Any = dbc.Alert(
        "Customer lookups and member lists show single customers: they are for analysts. "
        "Ask an admin if you need them.",
        color="light",
        className="border small",
    )
    if can(MEMBERS_ROLE):
        lookup_card = chart_card(
            "customers-lookup",
            "Look up a customer",
            "A customer's orders up to the snapshot's as-of date (returns included) and "
            "their segment in every snapshot kept.",
            html.Div(
                [
                    dbc.InputGroup(
                        [
                            dbc.Input(
                                id="lookup-id",
                                placeholder="Customer id, e.g. 12347",
                                maxLength=MAX_TEXT,
                                debounce=True,
                                type="text",
                            ),
                            dbc.Button("Look up", id="lookup-go"),
                        ],
                        size="sm",
                        className="mb-2",
                        style={"maxWidth": "420px"},
                    ),
                    html.Div(id="lookup-result"),
                ]
            ),
            exportable=can("analyst"),
        )
    return html.Div(
        [
            page_header(
                "Customers",
                "Look up one customer, or list the members of a segment for a campaign.",
            ),
            filter_bar(init, dates=False),
            lookup_card,
            members,
        ]
    )


@callback(
    Output("lookup-result", "children"),
    Output({"type": "params", "chart": "customers-lookup"}, "data"),
    Input("lookup-go", "n_clicks"),
    Input("lookup-id", "value"),
    Input("f-snapshot", "value"),
)
def lookup(_clicks: Any, customer: Any, snapshot: Any) -> tuple[Any, Any]:
    """Analysts only: a customer's orders and segments are customer-level data."""
    if not (current_user.is_authenticated and current_user.has_role(MEMBERS_ROLE)):
        return html.Small("Customer lookups need the analyst role.", className="text-muted"), None
    if customer is None or customer == "":
        return html.Small("Type a customer id.", className="text-muted"), None
    try:
        if not isinstance(customer, str) or len(customer) > MAX_TEXT:
            raise FilterError("The customer id is not valid.")
        customer = customer.strip()
        view = parse_view(None, None, None, snapshot).with_(customer=customer)
        orders, params = read(view, "customer_orders")
        history = snapshots.customer_history(state().engine, customer)
        pal = palette(view)
    except HANDLED as exc:
        return dbc.Alert(str(exc), color="warning", className="py-2"), None
    if history.empty and orders.empty:
        return dbc.Alert(
            f"No customer “{customer}” in any snapshot kept.", color="light", className="border"
        ), None
    positive = orders[orders["total"] > 0]
    facts = html.Ul(
        [
            html.Li(f"{len(positive):,} orders, {len(orders) - len(positive):,} returns"),
            html.Li(f"Gross spend {money(float(positive['total'].sum()))}"),
            html.Li(
                f"First order {orders['day'].min() if len(orders) else '–'}, last "
                f"{orders['day'].max() if len(orders) else '–'}"
            ),
        ],
        className="small mb-2",
    )
    hist_rows = [
        html.Tr(
            [
                html.Td(f"#{int(r.snapshot_id)} (as of {r.as_of})"),
                html.Td(
                    [
                        html.Span("■ ", style={"color": pal.color(int(r.segment_id))}),
                        pal.name(int(r.segment_id)),
                    ]
                ),
                html.Td(f"{int(r.recency_days):,} days"),
                html.Td(f"{int(r.frequency):,} orders"),
                html.Td(money(float(r.monetary))),
            ]
        )
        for r in history.itertuples()
    ]
    order_rows = [
        html.Tr(
            [
                html.Td(str(r.day)),
                html.Td(money(float(r.total)), className="text-end"),
                html.Td("return" if r.total <= 0 else "", className="text-muted"),
            ]
        )
        for r in orders.itertuples()
    ]
    return (
        dbc.Row(
            [
                dbc.Col(
                    [
                        html.H6(["Customer ", html.Code(customer)]),
                        facts,
                        html.H6("Segment in each snapshot", className="mt-2"),
                        dbc.Table(html.Tbody(hist_rows), size="sm", className="small"),
                    ],
                    lg=7,
                ),
                dbc.Col(
                    [
                        html.H6("Orders"),
                        html.Div(
                            dbc.Table(html.Tbody(order_rows), size="sm", className="small"),
                            style={"maxHeight": "320px", "overflowY": "auto"},
                        ),
                    ],
                    lg=5,
                ),
            ]
        ),
        params,
    )


@callback(
    Output("members-table", "data"),
    Output("members-table", "page_count"),
    Output("members-count", "children"),
    Output({"type": "params", "chart": "customers-members"}, "data"),
    *CONTROLS,
    Input("members-table", "page_current"),
)
def members(start: Any, end: Any, segments: Any, snapshot: Any, page: Any = 0) -> tuple[Any, ...]:
    """Analysts only: a page of the member list."""
    if not (current_user.is_authenticated and current_user.has_role(MEMBERS_ROLE)):
        return [], 0, "Member lists need the analyst role.", None
    try:
        view = parse_view(None, None, segments, snapshot)
        n = parse_int(page if page is not None else 0, 0, MAX_PAGE, "page")
        engine = state().engine
        snap = snapshots.get_snapshot(engine, view.snapshot_id)
        snapshots.validate_segments(engine, snap.id, view.filters.segments)
        # One page of the `members` export; the download holds them all.
        part, total = snapshots.members_page(engine, snap, view.filters.segments, n, PAGE_SIZE)
        params = view.params("members")
        pal = palette(view)
    except HANDLED as exc:
        return [], 0, str(exc), None
    part = part.copy()
    part["segment_id"] = [pal.name(int(i)) for i in part["segment_id"]]
    part["monetary"] = part["monetary"].round(2)
    part["aov"] = part["aov"].round(2)
    part["last_order_day"] = part["last_order_day"].astype(str)
    pages = max(1, -(-total // PAGE_SIZE))
    which = (
        ", ".join(pal.name(s) for s in view.filters.segments)
        if view.filters.segments
        else "all segments"
    )
    count = f"{total:,} customers in {which}."
    return part[[c for c, _, _ in MEMBER_COLUMNS]].to_dict("records"), pages, count, params


@callback(
    Output("members-table", "page_current"),
    Input("f-segments", "value"),
    Input("f-snapshot", "value"),
    prevent_initial_call=True,
)
def first_page(_segments: Any, _snapshot: Any) -> int:
    """Another segment or snapshot: back to the first page of the member list."""
    return 0
