"""Overview (/): the headline KPIs for a date range and segments, from the latest snapshot."""

from __future__ import annotations

from datetime import date

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, callback, dcc, html

from analytics.exports import Filters
from analytics.metrics import DEFINITIONS
from db import snapshots
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
    try:
        snap = snapshots.get_snapshot(state().engine)
    except snapshots.NoSnapshot:
        return html.Div(
            [
                html.H2("Overview"),
                empty_state(
                    "No snapshot yet",
                    "Import transactions (`custseg import FILE` or `custseg demo-data`), then "
                    "make the first snapshot with `custseg refit`, and reload this page.",
                ),
            ]
        )
    first, last = snap.data_start, snap.data_end
    segs = snapshots.segments(state().engine, snap.id)
    options = [
        {"label": f"{r.name} ({r.customers:,})", "value": int(r.segment_id)}
        for r in segs.itertuples()
    ]
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
                    dbc.Col(
                        dcc.Dropdown(
                            id="overview-segments",
                            options=options,
                            multi=True,
                            placeholder="All segments",
                        ),
                        md=4,
                    ),
                    dbc.Col(
                        html.Small(
                            f"Snapshot {snap.id} · as of {snap.as_of} · data {first} .. {last}",
                            className="text-muted",
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
    Input("overview-segments", "value"),
)
def update_kpis(
    start_date: str | None, end_date: str | None, segment_ids: list[int] | None = None
) -> list[str]:
    def unavailable(message: str) -> list[str]:
        return ["–"] * len(CARDS) + [message]

    try:
        start, end = parse_day(start_date), parse_day(end_date)
    except ValueError:
        return unavailable("The date range is not valid (use YYYY-MM-DD).")
    if start and end and start > end:
        return unavailable("The start date is after the end date.")
    if segment_ids is not None and (
        not isinstance(segment_ids, list)
        or not all(isinstance(i, int) and not isinstance(i, bool) for i in segment_ids)
    ):
        return unavailable("The segment filter is not valid.")
    st = state()
    filters = Filters(start, end, tuple(segment_ids or ()))
    try:
        frame, _ = snapshots.export_frame(st.engine, "kpis", filters, None, st.settings.active_days)
    except (snapshots.NoSnapshot, ValueError) as exc:
        return unavailable(str(exc))
    figures = frame.to_dict("records")[0]
    note = f"Orders from {start or 'the first order'} to {end or 'the last order'}, both inclusive."
    values = [None if v != v else v for v in (figures[key] for key, _, _ in CARDS)]  # NaN -> None
    return [fmt(v) for (_, _, fmt), v in zip(CARDS, values, strict=True)] + [note]  # type: ignore[operator]
