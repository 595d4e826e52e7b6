"""Migration (/migration): customers and revenue moving between the segments, or the lifecycle
stages, of two snapshots.

The later snapshot is the global snapshot selector (default: the latest); the earlier one is
chosen here (default: the one before it). New customers come from "New customers", customers no
longer present go to "Gone". Segment ids are stable across refits, so a segment on both sides is
the same segment. A switch shows the flows between lifecycle stages instead (`stage_migration`):
those are of all customers, whatever the segment filter.
"""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, dcc, html

from analytics.aggregates import GONE
from analytics.rfm import GONE as STAGE_GONE
from analytics.rfm import NEW
from db import snapshots
from webapp import charts, roles
from webapp.components import beside, chart_card, choice, graph, no_snapshot
from webapp.filters import (
    FILTERS,
    SNAPSHOT,
    FilterError,
    filter_bar,
    initial,
    page_header,
    parse_choice,
    parse_snapshot,
    snapshot_options,
)
from webapp.pagekit import Extra, Kit, chart_callback, sources
from webapp.roles import has_role
from webapp.state import state

dash.register_page(
    __name__, path="/migration", name="Migration", title="Migration", order=4, role="viewer"
)

MEASURES = ("customers", "gross_revenue")
BETWEEN = ("segments", "stages")
# Stages a customer is slipping away in: the summary counts moves into them.
LAPSING_STAGES = ("At risk", "Can't lose them", "Hibernating", "Lost")


def layout(**query: Any) -> html.Div:
    init = initial(query)
    if init is None:
        return no_snapshot("Migration")
    export = has_role("analyst")
    options, value = _earlier(init.snaps, init.snap.id)
    return html.Div(
        [
            page_header(
                "Migration",
                "How customers moved between segments, or between lifecycle stages, from one "
                "refit to the next: who improved, who slipped, who is new and who is gone.",
            ),
            filter_bar(init, dates=False),
            dbc.Row(
                [
                    *beside(
                        "Compare with the earlier snapshot",
                        "migration-from",
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
                        choice(
                            "migration-between",
                            {"segments": "Segments", "stages": "Lifecycle stages"},
                            "segments",
                        ),
                        width="auto",
                        className="border-end pe-3",
                    ),
                    dbc.Col(
                        choice(
                            "migration-measure",
                            {"customers": "Customers", "gross_revenue": "Revenue"},
                            "customers",
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
                "Flows between the two snapshots",
                "Left: segments (or lifecycle stages) in the earlier snapshot, and new customers. "
                "Right: the same in the later one, and customers gone. Width: customers, or "
                "their gross spend up to the later snapshot (the earlier one for gone "
                "customers).",
                graph("migration-sankey"),
                exportable=export,
            ),
            chart_card(
                "migration-matrix",
                "From × to",
                "Rows: segment (or stage) in the earlier snapshot. Columns: segment (or stage) "
                "in the later one. The diagonal is customers who stayed.",
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


def stage_summary(moves: pd.DataFrame) -> str:
    """Plain-language headline of stage moves: into the lapsing stages, and who stayed."""
    if moves.empty:
        return ""
    known = moves[(moves["from_stage"] != NEW) & (moves["to_stage"] != STAGE_GONE)]
    into = known[known["to_stage"].isin(LAPSING_STAGES) & ~known["from_stage"].isin(LAPSING_STAGES)]
    stayed = int(known.loc[known["from_stage"] == known["to_stage"], "customers"].sum())
    earlier = int(moves.loc[moves["from_stage"] != NEW, "customers"].sum())
    share = (
        f" {stayed / earlier:.0%} of earlier customers stayed in their stage." if earlier else ""
    )
    return (
        f"{int(into['customers'].sum()):,} customers slipped into the lapsing stages "
        f"({', '.join(LAPSING_STAGES)}) from the others.{share}"
    )


@chart_callback(
    "migration",
    {"migration-sankey": "figure", "migration-matrix": "figure"},
    inputs={
        **FILTERS,
        "source": Input("migration-from", "value"),
        "measure": Input("migration-measure", "value"),
        "between": Input("migration-between", "value"),
    },
    extras={"migration-summary": Extra(Output("migration-summary", "children"))},
    note_color="info",
)
def update_migration(
    kit: Kit, source: Any = None, measure: Any = "customers", between: Any = "segments"
) -> dict[str, Any]:
    view = kit.view.with_(start=None, end=None)
    value = parse_choice(measure, MEASURES, "measure")
    kind = parse_choice(between if between is not None else "segments", BETWEEN, "flows")
    target = kit.snapshot
    source_id = parse_snapshot(source)
    if source_id is None:
        if len(snapshots.published(state().engine)) < 2:
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
    earlier = sources(source_id).snap
    lead = (
        f"Snapshot {earlier.id} (as of {earlier.as_of}) → snapshot {target.id} "
        f"(as of {target.as_of}). "
    )
    if kind == "stages":
        # Stages are of all customers: the segment filter does not split them.
        staged = view.with_(compare_to=earlier.id, segments=())
        moves = kit.read("stage_migration", staged, charts=("migration-sankey", "migration-matrix"))
        if moves.empty:
            kit.params.clear()
            raise FilterError(
                f"Snapshot {earlier.id} has no lifecycle stages (it was made before they "
                "existed): choose a later one, or compare segments."
            )
        note = (
            " Stages are of all customers, whatever the segment filter."
            if (view.filters.segments)
            else ""
        )
        return {
            "migration-sankey": charts.stage_migration_sankey(moves, value),
            "migration-matrix": charts.stage_migration_matrix(moves, value),
            "migration-summary": html.P(lead + stage_summary(moves) + note, className="mb-0"),
        }
    moved = view.with_(compare_to=earlier.id)
    moves = kit.read("migration", moved, charts=("migration-sankey", "migration-matrix"))
    # The headline is about all customers, whatever segments the charts show.
    every = kit.read("migration", moved.with_(segments=())) if view.filters.segments else moves
    pal_to = kit.palette
    pal_from = charts.Palette(sources(earlier.id).segments)
    return {
        "migration-sankey": charts.migration_sankey(moves, pal_from, pal_to, value),
        "migration-matrix": charts.migration_matrix(moves, pal_from, pal_to, value),
        "migration-summary": html.P(lead + summary(every, kit.segments), className="mb-0"),
    }


@roles.callback(
    Output("migration-from", "options"),
    Output("migration-from", "value"),
    Input(SNAPSHOT, "value"),
    prevent_initial_call=True,
    role="viewer",
)
def earlier_choices(snapshot: Any) -> tuple[list[dict[str, Any]], Any]:
    """The earlier snapshot defaults to the one before the snapshot selected above."""
    try:
        target = snapshots.get_snapshot(state().engine, parse_snapshot(snapshot))
    except (FilterError, snapshots.NoSnapshot):
        return [], None
    return _earlier(snapshots.published(state().engine), target.id)
