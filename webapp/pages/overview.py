"""Overview (/): headline KPIs against the previous period, revenue at risk (the 12-month CLV
of customers at high churn risk, from the snapshot's predictions) and revenue by segment over
time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Output, html

from analytics.digest import change_text
from analytics.metrics import DEFINITIONS
from webapp import charts
from webapp.components import (
    PREDICTION_LABELS,
    chart_card,
    graph,
    integer,
    money,
    no_snapshot,
    predictions_note,
    predictions_status,
)
from webapp.components import percent as pct
from webapp.filters import FILTERS, filter_bar, initial, page_header
from webapp.pagekit import Extra, Kit, auto_granularity, chart_callback, message
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


def _box(label: html.Div, value_id: str, under: html.Div, definition: str, **col: Any) -> dbc.Col:
    """A figure (filled by the callback) between its label and a line under it, in a bordered
    box whose tooltip is its definition."""
    return dbc.Col(
        html.Div(
            [label, html.Div("…", className="fs-5 fw-semibold", id=value_id), under],
            className="border rounded p-2 h-100",
            title=definition,
        ),
        **col,
    )


def _card(key: str, label: str, definition: str) -> dbc.Col:
    return _box(
        html.Div(label, className="text-muted small", title=definition),
        f"kpi-{key}",
        html.Div("", className="small", id=f"kpi-{key}-change"),
        definition,
        xs=6,
        md=3,
        xl=True,
    )


def risk_definition() -> str:
    """What "revenue at risk" means, with this installation's thresholds."""
    st = state().settings
    return (
        "Revenue at risk: the predicted value of the next 12 months (CLV, discounted at "
        f"{st.clv_discount_rate:.0%} a year) of the customers at high churn risk, i.e. a "
        f"probability of at least {st.high_risk:.0%} (CUSTSEG_HIGH_RISK) that they place no "
        "order in the next 90 days. High value: the top "
        f"{st.high_value_share:.0%} of customers by 12-month CLV (CUSTSEG_HIGH_VALUE_SHARE). "
        "Predicted as of the snapshot's date: the segment filter applies, the dates do not."
    )


def _risk_box(key: str, label: str, definition: str) -> dbc.Col:
    return _box(
        html.Div(label, className="text-muted small"),
        f"risk-{key}",
        html.Div("", className="small text-muted", id=f"risk-{key}-detail"),
        definition,
        xs=6,
        lg=3,
    )


RISK_BOXES = (
    ("revenue_at_risk", "Revenue at risk"),
    ("clv", "Predicted 12-month value"),
    ("high_risk", "Customers at high churn risk"),
    ("high_value_high_risk", "High value, high risk"),
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
                "overview-risk",
                "Revenue at risk",
                risk_definition(),
                html.Div(
                    [
                        html.Div(id="overview-risk-message"),
                        dbc.Row(
                            [_risk_box(key, label, risk_definition()) for key, label in RISK_BOXES],
                            className="g-2",
                        ),
                        html.P(
                            risk_definition(),
                            id="risk-definition",
                            className="small text-muted mt-2 mb-0",
                        ),
                    ]
                ),
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


RISK_OUTPUTS = {
    f"risk-{key}{part}": Extra(Output(f"risk-{key}{part}", "children"), "–" if not part else "")
    for key, _ in RISK_BOXES
    for part in ("", "-detail")
}


@chart_callback(
    "overview",
    {"overview-risk": None},
    inputs={"segments": FILTERS["segments"], "snapshot": FILTERS["snapshot"]},
    extras=RISK_OUTPUTS,
    message_to="overview-risk-message",
    note_color="info",
)
def update_risk(kit: Kit) -> dict[str, Any]:
    """Revenue at risk and the predicted value of the chosen segments (the snapshot's
    predictions: the dates do not change them); what is missing while they are not there."""
    snap = kit.snapshot
    note = predictions_note(snap, details=False)
    if note is not None:
        status = predictions_status(snap)
        return {
            "message": message(note, "danger" if status == "failed" else "info"),
            "risk-revenue_at_risk": PREDICTION_LABELS.get(status, "No predictions"),
        }
    risk = kit.read("revenue_at_risk", charts=("overview-risk",))
    if risk.empty:
        return {"message": message("No customer of this snapshot has predictions.", "info")}
    r = risk.iloc[0]
    scored = int(r["customers_scored"])
    unscored = int(r["customers"]) - scored
    share = _num(r["high_risk_share"])
    hv = _num(r["high_value_threshold"])
    total = _num(r["clv_12m_total"]) or 0.0
    at_risk = _num(r["revenue_at_risk"]) or 0.0
    return {
        "risk-revenue_at_risk": money(at_risk),
        "risk-revenue_at_risk-detail": (
            f"{pct(at_risk / total) if total else '–'} of the predicted 12-month value"
        ),
        "risk-clv": money(total),
        "risk-clv-detail": f"of {scored:,} customers scored"
        + (f"; {unscored:,} not scored (no positive order)" if unscored else ""),
        "risk-high_risk": integer(int(r["high_risk_customers"])),
        "risk-high_risk-detail": f"{pct(share)} of those scored (churn risk ≥ "
        f"{float(r['high_risk_threshold']):.0%})",
        "risk-high_value_high_risk": integer(int(r["high_value_high_risk_customers"])),
        "risk-high_value_high_risk-detail": f"{money(_num(r['high_value_revenue_at_risk']))} "
        f"at risk; high value: 12-month CLV ≥ {money(hv)}",
    }


def _num(value: Any) -> float | None:
    if value is None or value != value:  # None or NaN
        return None
    return float(value)
