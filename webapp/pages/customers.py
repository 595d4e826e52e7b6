"""Customers (/customers): look up one customer; list a segment's members for a campaign.

The member list shows each customer's lifecycle stage, R/F/M scores, churn risk and 12-month
CLV; it filters by stage and by "high value, high risk" (beside the segment filter, kept in the
page's URL query as `stage` and `risk`) and sorts by any column over the whole list, on the
server (`Exporter.members_page`); its download holds the same filters. Single customers are for
analysts: the callbacks declare the analyst role, and the exports they read (`customer_orders`,
`members`, `predictions`) refuse other roles whatever a page shows.
"""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, dcc, html
from dash.dash_table.DataTable import DataTable
from dash.dash_table.Format import Format, Group, Scheme

from analytics.exports.spec import MAX_TEXT, parse_sort, parse_stages
from analytics.rfm import STAGES
from db import snapshots
from webapp import roles
from webapp.charts import stage_color
from webapp.components import (
    chart_card,
    label,
    money,
    no_snapshot,
    percent,
    predictions_note,
    table_style,
)
from webapp.filters import (
    FILTERS,
    SEGMENTS,
    SNAPSHOT,
    FilterError,
    filter_bar,
    initial,
    page_filter_id,
    page_header,
    parse_int,
    parse_text,
)
from webapp.pagekit import Extra, Kit, chart_callback
from webapp.roles import has_role
from webapp.state import state

dash.register_page(
    __name__, path="/customers", name="Customers", title="Customers", order=5, role="viewer"
)

MEMBERS_ROLE: roles.Role = "analyst"  # single customers (ids, orders): docs/SECURITY.md
PAGE_SIZE = 25
MAX_PAGE = 1_000_000
NOWRAP = {"whiteSpace": "nowrap"}
STAGE_FILTER = page_filter_id("stage")  # its values are the URL query's `stage`
RISK_FILTER = page_filter_id("risk")  # ?risk=high-value-high-risk
HIGH_VALUE_HIGH_RISK = "high-value-high-risk"
MEMBER_COLUMNS = (
    ("customer_id", "Customer", "text"),
    ("segment_id", "Segment", "text"),
    ("lifecycle_stage", "Stage", "text"),
    ("r_score", "R", "numeric"),
    ("f_score", "F", "numeric"),
    ("m_score", "M", "numeric"),
    ("recency_days", "Recency (days)", "numeric"),
    ("frequency", "Orders", "numeric"),
    ("monetary", "Spend", "numeric"),
    ("aov", "AOV", "numeric"),
    ("last_order_day", "Last order", "text"),
    ("churn_risk", "Churn risk", "numeric"),
    ("clv_12m", "12-month CLV", "numeric"),
)
SORTABLE = tuple(c for c, _, _ in MEMBER_COLUMNS)

MONEY_COLUMNS = ("monetary", "aov", "clv_12m")
# Thousands separator and two decimals, as `components.money` writes amounts elsewhere.
MONEY = Format(precision=2, scheme=Scheme.fixed, group=Group.yes)
PERCENT = Format(precision=0, scheme=Scheme.percentage)


def _column(cid: str, name: str, kind: str) -> Any:
    """A DataTable column (money with thousands separators and cents, risk in %)."""
    col: dict[str, Any] = {"id": cid, "name": name, "type": kind}
    if cid in MONEY_COLUMNS:
        col["format"] = MONEY
    elif cid == "churn_risk":
        col["format"] = PERCENT
    return col


def risk_filter_text() -> str:
    st = state().settings
    return (
        f"High value, high risk only: churn risk ≥ {st.high_risk:.0%} and 12-month CLV in "
        f"the top {st.high_value_share:.0%}"
    )


def _risk_query(value: object) -> bool:
    """Whether the page's URL query asks for the high value, high risk filter."""
    values = value if isinstance(value, list) else [value]
    return HIGH_VALUE_HIGH_RISK in values


def parse_risk(value: object) -> bool:
    """The high value, high risk switch's value: [] or [HIGH_VALUE_HIGH_RISK] (None: off)."""
    if value is None or value == []:
        return False
    if value == [HIGH_VALUE_HIGH_RISK]:
        return True
    raise FilterError("The high value, high risk filter is not valid.")


def linked_stages(value: object) -> list[str]:
    """The stages of the page's URL query (lenient: names that are no stage are dropped)."""
    values = value if isinstance(value, list) else [value]
    return [s for s in STAGES if s in values]


def layout(**query: Any) -> html.Div:
    init = initial(query)
    if init is None:
        return no_snapshot("Customers")
    members: Any
    extra: list[Any] = []
    if has_role(MEMBERS_ROLE):
        extra = [
            (
                "Lifecycle stages",
                dcc.Dropdown(
                    id=STAGE_FILTER,
                    options=[{"label": s, "value": s} for s in STAGES],
                    value=linked_stages(query.get("stage")),
                    multi=True,
                    placeholder="All lifecycle stages",
                ),
            ),
            html.Div(
                dbc.Checklist(
                    id=RISK_FILTER,
                    options=[{"label": "High value, high risk", "value": HIGH_VALUE_HIGH_RISK}],
                    value=[HIGH_VALUE_HIGH_RISK] if _risk_query(query.get("risk")) else [],
                    switch=True,
                    class_name="small",
                ),
                title=risk_filter_text(),
                className="pt-1",
            ),
        ]
        members = chart_card(
            "customers-members",
            "Members of the selected segments and stages",
            "Every customer of the segments and lifecycle stages chosen above (all if none), "
            "with their stage, R/F/M scores (1–5) and features as of the snapshot, their churn "
            "risk (the probability of no order in the next 90 days) and predicted 12-month "
            "value (CLV). Click a column's arrows to sort the whole list by it. "
            + risk_filter_text()
            + ". Download the list for a campaign: it holds the same filters.",
            html.Div(
                [
                    html.Div(id="members-count", className="small text-muted mb-1"),
                    html.Div(id="members-predictions-note", className="small text-muted mb-1"),
                    DataTable(
                        id="members-table",
                        columns=[_column(c, n, t) for c, n, t in MEMBER_COLUMNS],
                        page_current=0,
                        page_size=PAGE_SIZE,
                        page_action="custom",
                        sort_action="custom",
                        sort_mode="single",
                        sort_by=[],
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
    if has_role(MEMBERS_ROLE):
        lookup_card = chart_card(
            "customers-lookup",
            "Look up a customer",
            "A customer's orders up to the snapshot's as-of date (returns included) and "
            "their segment in every snapshot kept.",
            html.Div(
                [
                    label("Customer id", "lookup-id", hidden=True),
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
            exportable=True,
        )
    return html.Div(
        [
            page_header(
                "Customers",
                "Look up one customer, or list the members of a segment for a campaign.",
            ),
            filter_bar(init, dates=False, extra=extra),
            lookup_card,
            members,
        ]
    )


@chart_callback(
    "customers",
    {"customers-lookup": None},
    inputs={
        "clicks": Input("lookup-go", "n_clicks"),
        "customer": Input("lookup-id", "value"),
        "snapshot": FILTERS["snapshot"],
    },
    role=MEMBERS_ROLE,
    message_to="lookup-result",
)
def lookup(kit: Kit, clicks: Any = None, customer: Any = None) -> dict[str, Any]:
    """A customer's orders and their segment in every snapshot kept."""
    customer = parse_text(customer, "customer id")
    if not customer:
        return {"message": html.Small("Type a customer id.", className="text-muted")}
    view = kit.view.with_(customer=customer)
    orders = kit.read("customer_orders", view, charts=("customers-lookup",))
    history = snapshots.customer_history(state().engine, customer)
    pal = kit.palette
    if history.empty and orders.empty:
        kit.params.clear()
        return {
            "message": dbc.Alert(
                f"No customer “{customer}” in any snapshot kept.",
                color="light",
                className="border",
            )
        }
    positive = orders[orders["total"] > 0]
    now = history[history["snapshot_id"] == kit.snapshot.id]
    facts = html.Ul(
        [
            html.Li(_stage_fact(now, kit.snapshot.id), id="lookup-stage"),
            html.Li(_prediction_fact(kit, customer), id="lookup-prediction"),
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
                html.Td(f"#{int(r.snapshot_id)} (as of {r.as_of})", style=NOWRAP),
                html.Td(
                    [
                        html.Span("■ ", style={"color": pal.color(int(r.segment_id))}),
                        pal.name(int(r.segment_id)),
                    ]
                ),
                html.Td(_stage_text(r), style=NOWRAP),
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
    return {
        "message": dbc.Row(
            [
                dbc.Col(
                    [
                        html.H6(["Customer ", html.Code(customer)]),
                        facts,
                        html.H6("Segment and stage in each snapshot", className="mt-2"),
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
        )
    }


def _scores(r: Any) -> str:
    return f"R {int(r.r_score)} · F {int(r.f_score)} · M {int(r.m_score)}"


def _stage_text(r: Any) -> Any:
    """A snapshot's stage and scores of the customer ('–' before stages existed)."""
    if not isinstance(r.lifecycle_stage, str):
        return "–"
    return [
        html.Span("● ", style={"color": stage_color(r.lifecycle_stage)}),
        r.lifecycle_stage,
        html.Span(f" ({_scores(r)})", className="text-muted"),
    ]


def _stage_fact(now: Any, snapshot_id: int) -> Any:
    """The customer's lifecycle stage and scores in the selected snapshot."""
    if now.empty:
        return f"Not a customer in snapshot {snapshot_id}"
    r = next(now.itertuples())
    if not isinstance(r.lifecycle_stage, str):
        return f"No lifecycle stage in snapshot {snapshot_id} (made before stages)"
    return [
        "Lifecycle stage ",
        html.Strong(r.lifecycle_stage),
        f" ({_scores(r)}) in snapshot {snapshot_id}",
    ]


def _prediction_fact(kit: Kit, customer: str) -> Any:
    """The customer's churn risk, 12-month CLV and expected orders in the selected snapshot,
    and whether they count as high risk and high value."""
    snap = kit.snapshot
    note = predictions_note(snap, details=False)
    if note is not None:
        return html.Span(note, className="text-muted")
    preds = kit.read("predictions", kit.view.with_(customer=customer))
    if preds.empty:
        return f"No predictions for this customer in snapshot {snap.id}"
    r = preds.iloc[0]
    if isinstance(r["unscored_reason"], str):
        return f"Not scored in snapshot {snap.id}: {r['unscored_reason']}"
    risk = kit.read("revenue_at_risk", kit.view.with_(customer=None)).iloc[0]
    churn, clv = float(r["churn_risk"]), float(r["clv_12m"])
    high_risk = churn >= float(risk["high_risk_threshold"])
    value_from = risk["high_value_threshold"]
    high_value = value_from == value_from and clv >= float(value_from)
    share = kit.sources().snapshot.high_value_share
    return [
        "Churn risk ",
        html.Strong(percent(churn, 0)),
        html.Span(" (high)", className="text-danger") if high_risk else "",
        " · 12-month CLV ",
        html.Strong(money(clv)),
        html.Span(f" (top {share:.0%})", className="text-success") if high_value else "",
        f" · {float(r['expected_orders_90d']):.2f} orders expected in the next 90 days",
    ]


@chart_callback(
    "customers",
    {"customers-members": None},
    inputs={
        "segments": FILTERS["segments"],
        "snapshot": FILTERS["snapshot"],
        "stages": Input(STAGE_FILTER, "value"),
        "risk": Input(RISK_FILTER, "value"),
        "page": Input("members-table", "page_current"),
        "sort": Input("members-table", "sort_by"),
    },
    extras={
        "members-table": Extra(Output("members-table", "data"), []),
        "members-pages": Extra(Output("members-table", "page_count"), 0),
        "members-note": Extra(Output("members-predictions-note", "children"), None),
    },
    role=MEMBERS_ROLE,
    message_to="members-count",
)
def members(
    kit: Kit, stages: Any = None, risk: Any = None, page: Any = 0, sort: Any = None
) -> dict[str, Any]:
    """A page of the member list, sorted over the whole list (the download holds them all, by
    customer id)."""
    n = parse_int(page if page is not None else 0, 0, MAX_PAGE, "page")
    order = parse_sort(sort, SORTABLE)
    view = kit.view.with_(stages=parse_stages(stages), high_value_high_risk=parse_risk(risk))
    f = view.filters
    segments, chosen = f.segments, f.stages
    part, total = state().exporter.members_page(
        kit.sources(),
        segments,
        n,
        PAGE_SIZE,
        role=roles.role_of_user(),
        stages=chosen,
        high_value_high_risk=f.high_value_high_risk,
        sort=order,
    )
    kit.params["customers-members"] = view.params("members")
    pal = kit.palette
    part = part.copy()
    part["segment_id"] = [pal.name(int(i)) for i in part["segment_id"]]
    part["monetary"] = part["monetary"].round(2)
    part["aov"] = part["aov"].round(2)
    part["last_order_day"] = part["last_order_day"].astype(str)
    rows = part[[c for c, _, _ in MEMBER_COLUMNS]].astype(object)
    which = ", ".join(pal.name(s) for s in segments) if segments else "all segments"
    if chosen:
        which += f"; stage{'s' if len(chosen) > 1 else ''} {', '.join(chosen)}"
    count = f"{total:,} customers in {which}"
    if f.high_value_high_risk:
        count += "; " + _risk_count(kit)
    return {
        "members-table": rows.where(rows.notna(), None).to_dict("records"),
        "members-pages": max(1, -(-total // PAGE_SIZE)),
        "members-note": predictions_note(kit.snapshot, details=False),
        "message": f"{count}.",
    }


def _risk_count(kit: Kit) -> str:
    """What the high value, high risk filter keeps, with the thresholds and how many customers
    are at high risk and of high value on their own (the two overlap little when the same
    model predicts both: a customer likely to stay away is worth less next year)."""
    risk = kit.read("revenue_at_risk", kit.view.with_(segments=()))
    if risk.empty:
        return "high value, high risk (no predictions: none can be chosen)"
    r = risk.iloc[0]
    return (
        f"high value (12-month CLV ≥ {money(float(r['high_value_threshold']))}, the top "
        f"{kit.sources().snapshot.high_value_share:.0%}) and high risk (churn risk ≥ "
        f"{float(r['high_risk_threshold']):.0%}); of all customers scored, "
        f"{int(r['high_risk_customers']):,} are at high risk and "
        f"{int(r['high_value_customers']):,} of high value"
    )


@roles.callback(
    Output("members-table", "page_current"),
    Input(SEGMENTS, "value"),
    Input(SNAPSHOT, "value"),
    Input(STAGE_FILTER, "value"),
    Input(RISK_FILTER, "value"),
    Input("members-table", "sort_by"),
    prevent_initial_call=True,
    role=MEMBERS_ROLE,
)
def first_page(
    _segments: Any, _snapshot: Any, _stages: Any = None, _risk: Any = None, _sort: Any = None
) -> int:
    """Another segment, snapshot, stage, filter or order: back to the first page of the list."""
    return 0
