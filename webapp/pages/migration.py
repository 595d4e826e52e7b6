"""Migration (/migration): customers and revenue moving between the segments of two snapshots.

The later snapshot is the global snapshot selector (default: the latest); the earlier one is
chosen here (default: the one before it). New customers come from "New customers", customers no
longer present go to "Gone". Segment ids are stable across refits, so a segment on both sides is
the same segment.
"""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, callback, dcc, html

from analytics.aggregates import GONE
from db import snapshots
from webapp import charts
from webapp.components import can, chart_card, graph, no_snapshot
from webapp.filters import (
    CONTROLS,
    FilterError,
    filter_bar,
    initial,
    page_header,
    parse_choice,
    parse_snapshot,
    parse_view,
    snapshot_options,
)
from webapp.pagekit import HANDLED, read
from webapp.state import state

dash.register_page(__name__, path="/migration", name="Migration", title="Migration")

MEASURES = ("customers", "gross_revenue")


def layout(**query: Any) -> html.Div:
    init = initial(query)
    if init is None:
        return no_snapshot("Migration")
    export = can("analyst")
    options, value = _earlier(init.snaps, init.snap.id)
    return html.Div(
        [
            page_header(
                "Migration",
                "How customers moved between segments from one refit to the next: who "
                "improved, who slipped, who is new and who is gone.",
            ),
            filter_bar(init, dates=False),
            dbc.Row(
                [
                    dbc.Col(html.Small("Compare with the earlier snapshot"), width="auto"),
                    dbc.Col(
                        dcc.Dropdown(
                            id="migration-from",
                            options=options,
                            value=value,
                            clearable=False,
                            searchable=False,
                            placeholder="No earlier snapshot",
                        ),
                        md=3,
                    ),
                    dbc.Col(
                        dbc.RadioItems(
                            id="migration-measure",
                            options=[
                                {"label": "Customers", "value": "customers"},
                                {"label": "Revenue", "value": "gross_revenue"},
                            ],
                            value="customers",
                            inline=True,
                            className="small",
                        ),
                        width="auto",
                    ),
                ],
                className="g-2 align-items-center mb-2",
            ),
            html.Div(id="migration-message"),
            html.Div(id="migration-summary", className="mb-2"),
            chart_card(
                "migration-sankey",
                "Flows between segments",
                "Left: segments in the earlier snapshot (and new customers). Right: segments "
                "in the later one (and customers gone). Width: customers, or their gross spend "
                "up to the later snapshot (the earlier one for gone customers).",
                graph("migration-sankey"),
                exportable=export,
            ),
            chart_card(
                "migration-matrix",
                "From × to",
                "Rows: segment in the earlier snapshot. Columns: segment in the later one. The "
                "diagonal is customers who stayed.",
                graph("migration-matrix"),
                exportable=export,
            ),
        ]
    )


def _earlier(snaps: list[Any], target_id: int) -> tuple[list[dict[str, Any]], int | None]:
    """The snapshots before `target_id` (newest first) and the default: the one just before."""
    options = [o for o in snapshot_options(snaps) if o["value"] < target_id]
    return options, options[0]["value"] if options else None


def summary(moves: pd.DataFrame, target: pd.DataFrame) -> str:
    """Plain-language headline: movement into the weakest segment (lowest spend per customer)."""
    if moves.empty or target.empty:
        return ""
    per_customer = target["gross_revenue"] / target["customers"].where(target["customers"] > 0)
    weakest = target.loc[per_customer.idxmin()]
    wid = int(weakest["segment_id"])
    into = moves[(moves["to_segment"] == wid) & (moves["from_segment"] != wid)]
    new = int(into.loc[into["from_segment"] == GONE, "customers"].sum())
    moved = int(into.loc[into["from_segment"] != GONE, "customers"].sum())
    stayed = int(
        moves.loc[
            (moves["from_segment"] == moves["to_segment"]) & (moves["from_segment"] != GONE),
            "customers",
        ].sum()
    )
    total = int(moves.loc[moves["from_segment"] != GONE, "customers"].sum())
    share = f" {stayed / total:.0%} of earlier customers stayed in their segment." if total else ""
    return (
        f"{moved:,} customers moved into “{weakest['name']}” (the segment with the lowest spend "
        f"per customer) from other segments, and {new:,} new customers joined it.{share}"
    )


@callback(
    Output("migration-sankey", "figure"),
    Output("migration-matrix", "figure"),
    Output({"type": "params", "chart": "migration-sankey"}, "data"),
    Output({"type": "params", "chart": "migration-matrix"}, "data"),
    Output("migration-summary", "children"),
    Output("migration-message", "children"),
    *CONTROLS,
    Input("migration-from", "value"),
    Input("migration-measure", "value"),
)
def update_migration(
    start: Any,
    end: Any,
    segments: Any,
    snapshot: Any,
    source: Any = None,
    measure: Any = "customers",
) -> tuple[Any, ...]:
    try:
        view = parse_view(start, end, segments, snapshot).with_(start=None, end=None)
        value = parse_choice(measure, MEASURES, "measure")
        engine = state().engine
        target = snapshots.get_snapshot(engine, view.snapshot_id)
        source_id = parse_snapshot(source)
        if source_id is None:
            if len(snapshots.published(engine)) < 2:
                raise FilterError(
                    "Only one snapshot so far: migration compares two. It appears after the "
                    "next refit (scheduled, `custseg refit`, or Model → Refit now)."
                )
            raise FilterError(
                f"Snapshot {target.id} is the oldest kept: choose a later one above to see who "
                "moved since it."
            )
        if source_id >= target.id:
            raise FilterError("Choose an earlier snapshot to compare with.")
        earlier = snapshots.get_snapshot(engine, source_id)
        moves, params = read(view.with_(compare_to=earlier.id), "migration")
        # The headline is about all customers, whatever segments the charts show.
        every = (
            read(view.with_(compare_to=earlier.id, segments=()), "migration")[0]
            if view.filters.segments
            else moves
        )
        target_segs = snapshots.segments(engine, target.id)
        pal_to = charts.Palette(target_segs)
        pal_from = charts.Palette(snapshots.segments(engine, earlier.id))
    except HANDLED as exc:
        blank = charts.empty_figure(str(exc))
        return blank, blank, None, None, None, dbc.Alert(str(exc), color="info", className="py-2")
    lead = (
        f"Snapshot {earlier.id} (as of {earlier.as_of}) → snapshot {target.id} "
        f"(as of {target.as_of}). "
    )
    return (
        charts.migration_sankey(moves, pal_from, pal_to, value),
        charts.migration_matrix(moves, pal_from, pal_to, value),
        params,
        params,
        html.P(lead + summary(every, target_segs), className="mb-0"),
        None,
    )


@callback(
    Output("migration-from", "options"),
    Output("migration-from", "value"),
    Input("f-snapshot", "value"),
    prevent_initial_call=True,
)
def earlier_choices(snapshot: Any) -> tuple[list[dict[str, Any]], Any]:
    """The earlier snapshot defaults to the one before the snapshot selected above."""
    try:
        target = snapshots.get_snapshot(state().engine, parse_snapshot(snapshot))
    except (FilterError, snapshots.NoSnapshot):
        return [], None
    return _earlier(snapshots.published(state().engine), target.id)
