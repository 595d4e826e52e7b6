"""Segments (/segments): how big and valuable each segment is, what sets it apart, and what to
do about it.

A click on a segment's bar filters the whole dashboard to that segment (a second click clears
it). Analysts can rename a segment; the name follows it into later snapshots. Beside the
clusters, the RFM lifecycle stages: a grid in the stage map's R × F layout (customers, revenue
and the suggested action of each stage) and the cross-table of segments × stages.
"""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, State, dcc, html, no_update
from flask_login import current_user

from analytics.exports import get as get_export
from analytics.rfm import STAGE_RULES, STAGE_TABLE, STAGES
from db import snapshots
from db.segment_names import rename_segment
from webapp import charts, roles
from webapp.components import (
    PREDICTION_LABELS,
    chart_card,
    choice,
    field,
    graph,
    info,
    money,
    no_snapshot,
    percent,
    predictions_note,
    predictions_status,
)
from webapp.filters import (
    FILTERS,
    SEGMENTS,
    SNAPSHOT,
    FilterError,
    filter_bar,
    initial,
    page_header,
    parse_choice,
    parse_segments,
    parse_snapshot,
    segment_options,
)
from webapp.pagekit import Kit, chart_callback, message
from webapp.roles import has_role
from webapp.state import state

dash.register_page(
    __name__, path="/segments", name="Segments", title="Segments", order=1, role="viewer"
)

RENAME_ROLE: roles.Role = "analyst"
MEASURES = ("customers", "gross_revenue")


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
                    field(
                        "Segment to rename",
                        "rename-segment",
                        dcc.Dropdown(
                            id="rename-segment",
                            placeholder="Segment to rename",
                            clearable=False,
                        ),
                        hidden=True,
                        md=4,
                    ),
                    field(
                        "New name",
                        "rename-name",
                        dbc.Input(
                            id="rename-name", placeholder="New name", maxLength=80, type="text"
                        ),
                        hidden=True,
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
                "the centre of the K-Means cluster in original units under 'Centroid'. "
                "Predicted 12-month value: the sum of its customers' 12-month CLV (their mean "
                "below); high churn risk: the share of its customers with a churn risk of at "
                f"least {state().settings.high_risk:.0%} (CUSTSEG_HIGH_RISK), as of the "
                "snapshot's date.",
                html.Div(id="segments-table"),
                exportable=export,
                footer=html.Div(rename),
            ),
            chart_card(
                "segments-stages",
                "Lifecycle stages",
                "Every customer also has R, F and M scores (1–5: quintiles of recency, orders and "
                "spend among the snapshot's customers) and a stage of the RFM segment map, laid "
                "out here by R (columns) and F (rows); Hibernating and Lost share a corner, split "
                "by M. Each cell: the stage's customers and revenue (of the segments chosen "
                "above) and its suggested action; hover the ? for the numbers behind it.",
                html.Div(
                    [
                        choice(
                            "segments-stage-measure",
                            {"customers": "Shade by customers", "gross_revenue": "by revenue"},
                            "customers",
                            "small mb-1",
                        ),
                        html.Div(id="segments-stages-message"),
                        html.Div(id="segments-stages"),
                    ]
                ),
                exportable=export,
            ),
            chart_card(
                "segments-stage-matrix",
                "Segments × lifecycle stages",
                "How each segment's customers spread over the lifecycle stages. Colour: the "
                "cell's share of the segment's customers (or revenue, as chosen above); text: "
                "the customers (or revenue) in the cell.",
                graph("segments-stage-matrix"),
                exportable=export,
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


def _table(
    frame: pd.DataFrame, profiles: pd.DataFrame, pal: charts.Palette, snap: Any = None
) -> html.Div:
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
                html.Th(
                    ["Predicted", html.Br(), "12-month value"],
                    className="text-end",
                    title="Sum of the customers' predicted 12-month CLV; below: per customer",
                ),
                html.Th(
                    ["High churn", html.Br(), "risk"],
                    className="text-end",
                    title=f"Share of the customers with a churn risk of at least "
                    f"{state().settings.high_risk:.0%} (no order in the next 90 days)",
                ),
                html.Th(["Centroid", html.Br(), "R / F / M"], className="text-end"),
                html.Th("Suggested action"),
            ]
        )
    )
    status = predictions_status(snap) if snap is not None else "done"
    pending = PREDICTION_LABELS.get(status, "–").removeprefix("Predictions ")
    rows = []
    for r in frame.itertuples():
        sid = int(r.segment_id)
        if status != "done":
            value: Any = html.Span(pending, className="text-muted small")
            risk: Any = value
        else:
            value = [
                money(_num(r.clv_12m_total)),
                html.Div(f"{money(_num(r.clv_12m_mean))} each", className="small text-muted"),
            ]
            risk = percent(_num(r.high_risk_share))
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
                    html.Td(value, className="text-end", style={"whiteSpace": "nowrap"}),
                    html.Td(risk, className="text-end"),
                    html.Td(cen_text, className="text-end small", style={"whiteSpace": "nowrap"}),
                    html.Td(_action(r.action, r.action_why), className="small"),
                ]
            )
        )
    table = dbc.Table([head, html.Tbody(rows)], hover=True, size="sm", className="mb-0")
    note = predictions_note(snap, details=False) if snap is not None else None
    return html.Div(
        [html.Small(note, className="text-muted", id="segments-predictions-note"), table]
        if note
        else [table]
    )


def _num(value: Any) -> float | None:
    """A number of a frame's cell (None for a missing value)."""
    if value is None or value != value:  # None or NaN
        return None
    return float(value)


def _action(action: Any, why: Any, scope: str = "") -> Any:
    """A suggested action and, in the ? tooltip, the numbers that triggered it."""
    if not isinstance(action, str):
        return html.Span("–", title="No action: this snapshot was made before actions.")
    if not isinstance(why, str):
        return html.Span(action, className="action")
    return html.Span([action, info(f"Why{scope}: {why}")], className="action")


def _span(low: int, high: int) -> str:
    return str(low) if low == high else f"{low}–{high}"


# Each stage's place in the grid, from the rule table: columns 2-6 are R 1-5, and each F score
# (5 at the top) takes two rows, so stages that share an R x F region (Hibernating and Lost,
# told apart by M) split it, the higher spend above. Column 1 and the last row: axis labels.
def _stage_places() -> dict[str, dict[str, str]]:
    regions: dict[tuple[tuple[int, int], tuple[int, int]], list[tuple[int, str, str]]] = {}
    for stage, (r0, r1), (f0, f1), _ in STAGE_RULES:
        cell = STAGE_TABLE[r0 - 1, f0 - 1]  # the stage of each M in the region's first cell
        ms = [m + 1 for m in range(5) if STAGES[int(cell[m])] == stage]
        regions.setdefault(((r0, r1), (f0, f1)), []).append(
            (max(ms), stage, f"M {_span(min(ms), max(ms))}")
        )
    places = {}
    for ((r0, r1), (f0, f1)), members in regions.items():
        top, rows = 2 * (5 - f1) + 1, 2 * (f1 - f0 + 1)
        members.sort(reverse=True)  # the highest spend above
        for n, (_, stage, m_text) in enumerate(members):
            first = top + n * rows // len(members)
            last = top + (n + 1) * rows // len(members)
            scores = f"R {_span(r0, r1)} · F {_span(f0, f1)}"
            places[stage] = {
                "gridColumn": f"{r0 + 1} / {r1 + 2}",
                "gridRow": f"{first} / {last}",
                "scores": scores + (f" · {m_text}" if len(members) > 1 else ""),
            }
    return places


STAGE_PLACES = _stage_places()
SHADE = (76, 120, 168)  # the charts' blue
# Inline styles (no stylesheet of the page's own): R 1-5 in five equal columns after the F labels.
GRID = {
    "display": "grid",
    "gridTemplateColumns": "2.2rem repeat(5, minmax(0, 1fr))",
    "gridTemplateRows": "repeat(10, minmax(2.7rem, auto)) auto",
    "gap": "4px",
}
AXIS = {
    "gridColumn": "1",
    "gridRow": "11",
    "alignSelf": "center",
    "textAlign": "center",
    "fontSize": "12px",
    "color": "#6c757d",
}
CELL = {"padding": "4px 8px 6px", "borderRadius": "4px", "fontSize": "13px", "lineHeight": "1.3"}


def stage_grid(stages: pd.DataFrame, measure: str, scope: str = "") -> html.Div:
    """The `lifecycle` export as a grid in the R x F layout of the RFM segment map: each
    stage's customers, revenue and action, shaded by the chosen measure's share."""
    key = "share" if measure == "customers" else "revenue_share"
    top = float(stages[key].max()) if len(stages) else 0.0
    cells: list[Any] = []
    for f in range(5, 0, -1):
        cells.append(
            html.Div(
                f"F {f}",
                className="stage-axis",
                style={**AXIS, "gridRow": f"{2 * (5 - f) + 1} / {2 * (5 - f) + 3}"},
            )
        )
    for r in range(1, 6):
        cells.append(
            html.Div(f"R {r}", className="stage-axis", style={**AXIS, "gridColumn": str(r + 1)})
        )
    for row in stages.itertuples():
        place = STAGE_PLACES[row.stage]
        value = float(getattr(row, key)) if row.customers else 0.0
        # Light enough at the most for dark text to stay readable.
        alpha = 0.04 + 0.46 * (value / top) if top else 0.04
        style = {
            **CELL,
            "gridColumn": place["gridColumn"],
            "gridRow": place["gridRow"],
            "background": f"rgba({SHADE[0]},{SHADE[1]},{SHADE[2]},{alpha:.3f})",
            "color": "#212529",
            "borderTop": f"4px solid {charts.stage_color(row.stage)}",
        }
        customers = f"{int(row.customers):,} customers ({row.share:.0%})"
        revenue = f"{money(row.gross_revenue)} revenue ({row.revenue_share:.0%})"
        first, second = (customers, revenue) if measure == "customers" else (revenue, customers)
        head = html.Div(
            [
                html.Strong(row.stage, className="me-2"),
                html.Small(place["scores"], className="stage-scores"),
            ],
            className="d-flex justify-content-between flex-wrap",
        )
        body: list[Any] = [html.Div("No customers", className="text-muted")]
        if row.customers:
            body = [
                html.Div(first, className="stage-main fw-semibold", style={"fontSize": "15px"}),
                html.Div(second, className="small"),
                html.Div(
                    _action(row.action, row.action_why, scope), className="small mt-1 stage-action"
                ),
            ]
        cells.append(
            html.Div(
                [head, *body],
                className="stage-cell" + (" stage-empty" if not row.customers else ""),
                style=style,
                **{"data-stage": row.stage},
            )
        )
    return html.Div(
        [
            html.Div(cells, className="stage-grid mb-1", style=GRID),
            html.Small(
                "R: recency score (5: ordered most recently) · F: frequency score (5: most "
                "orders) · M: spend score · quintiles among the snapshot's customers.",
                className="text-muted",
            ),
        ]
    )


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
        "segments-table": _table(seg, prof, pal, kit.snapshot),
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


@chart_callback(
    "segments",
    {"segments-stages": "children", "segments-stage-matrix": "figure"},
    inputs={
        "segments": FILTERS["segments"],
        "snapshot": FILTERS["snapshot"],
        "measure": Input("segments-stage-measure", "value"),
        "renamed": Input("segments-renamed", "data"),
    },
    message_to="segments-stages-message",
    note_color="info",
)
def update_stages(kit: Kit, measure: Any = "customers", renamed: Any = None) -> dict[str, Any]:
    """The lifecycle stage grid and the segments x stages cross-table (aggregates: viewers)."""
    value = parse_choice(measure, MEASURES, "measure")
    stages = kit.read("lifecycle", charts=("segments-stages",))
    if stages.empty:
        kit.params.clear()
        return {
            "message": message(
                "This snapshot has no lifecycle stages: it was made before they existed. The "
                "next refit adds them.",
                "info",
            )
        }
    matrix = kit.read("stage_matrix", charts=("segments-stage-matrix",))
    scope = " (the stage across all customers)" if kit.view.filters.segments else ""
    return {
        "segments-stages": stage_grid(stages, value, scope),
        "segments-stage-matrix": charts.stage_matrix_heatmap(matrix, kit.palette, value),
    }


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
