"""Exports of the RFM lifecycle stages and of the choice of k: stages, clusters × stages, moves
between stages, and the clusters every k would give.

The stages and their suggested actions are computed at the refit (`analytics/rfm.py`,
`analytics/actions.py`); these exports read what the snapshot stores, and compute from its
customers only what depends on the filters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from analytics import actions, rfm
from analytics.exports.registry import Sources, export, in_segments
from analytics.exports.spec import FilterError, Filters

LIFECYCLE_COLUMNS = (
    "stage",
    "customers",
    "share",
    "gross_revenue",
    "aov",
    "repeat_rate",
    "revenue_share",
    "recency_days",
    "frequency",
    "monetary",
    "action",
    "action_rule",
    "action_why",
)
STAGE_MATRIX_COLUMNS = (
    "segment_id",
    "stage",
    "customers",
    "gross_revenue",
    "share_of_segment",
    "revenue_share_of_segment",
)
K_PREVIEW_COLUMNS = (
    "k",
    "cluster",
    "name",
    "customers",
    "share",
    "gross_revenue",
    "recency_days",
    "frequency",
    "monetary",
    "chosen",
)
STAGE_MIGRATION_COLUMNS = ("from_stage", "to_stage", "customers", "gross_revenue")


def in_stages(frame: pd.DataFrame, stages: Sequence[str], column: str) -> pd.DataFrame:
    return frame[frame[column].isin(stages)] if stages else frame


def _why(basis: Any) -> str | None:
    """The numbers behind an action, as one line (None without a basis: an old snapshot)."""
    return actions.explain(basis) if isinstance(basis, dict) else None


def _rule(basis: Any) -> str | None:
    return basis.get("rule") if isinstance(basis, dict) else None


@export(
    "lifecycle",
    reads=("stages", "customers"),
    columns=LIFECYCLE_COLUMNS,
    row="lifecycle stage (all eleven; with `--segment`, of those segments' customers)",
    options=("stages",),
)
def lifecycle(src: Sources, f: Filters) -> pd.DataFrame:
    """Customers, revenue, AOV, repeat rate, medians and suggested action per lifecycle stage."""
    stored = src.stages
    if stored.empty:  # a snapshot from before stages
        return pd.DataFrame(columns=list(LIFECYCLE_COLUMNS))
    stored = stored.set_index("stage").reindex(list(rfm.STAGES))
    if f.segments:
        # The figures of the chosen segments' customers; the advice stays the stage's.
        columns = ["segment_id", "lifecycle_stage", "recency_days", "frequency", "monetary"]
        members = in_segments(src.customers[columns], f.segments)
        frame = rfm.lifecycle(members).set_index("stage")
        medians = rfm.stage_profiles(members)[list(rfm.STAGE_MEDIANS)]
        frame = frame.join(medians)
    else:
        frame = stored[list(rfm.STAGE_FIGURES)].copy()
    total = float(frame["gross_revenue"].sum())
    frame["revenue_share"] = frame["gross_revenue"] / total if total else 0.0
    frame["action"] = stored["action"]
    frame["action_rule"] = [_rule(b) for b in stored["action_basis"]]
    frame["action_why"] = [_why(b) for b in stored["action_basis"]]
    out = frame.rename_axis("stage").reset_index()
    out["customers"] = out["customers"].fillna(0).astype(int)
    out["gross_revenue"] = out["gross_revenue"].astype(float).round(2)
    ratios = ["share", "revenue_share", "repeat_rate"]
    out[ratios] = out[ratios].astype(float).round(6)
    out["aov"] = out["aov"].astype(float).round(4)
    out[["recency_days", "frequency", "monetary"]] = (
        out[["recency_days", "frequency", "monetary"]].astype(float).round(2)
    )
    out = out.astype({c: object for c in ("stage", "action", "action_rule", "action_why")})
    out = in_stages(out, f.stages, "stage").reset_index(drop=True)
    return out[list(LIFECYCLE_COLUMNS)]


@export(
    "stage_matrix",
    reads=("customers",),
    columns=STAGE_MATRIX_COLUMNS,
    row="segment × lifecycle stage with customers",
    options=("stages",),
)
def stage_matrix(src: Sources, f: Filters) -> pd.DataFrame:
    """Clusters × lifecycle stages: the customers and revenue of each segment in each stage."""
    # The three columns first: a filter of every column of a million customers costs more
    # than the table.
    customers = in_segments(
        src.customers[["segment_id", "lifecycle_stage", "monetary"]], f.segments
    )
    customers = customers[customers["lifecycle_stage"].notna()]
    if customers.empty:
        return pd.DataFrame(columns=list(STAGE_MATRIX_COLUMNS))
    out = rfm.cross_table(customers)
    revenue = out.groupby("segment_id")["gross_revenue"].transform("sum")
    out["revenue_share_of_segment"] = np.where(revenue > 0, out["gross_revenue"] / revenue, 0.0)
    out["stage"] = out["stage"].astype(object)
    out["gross_revenue"] = out["gross_revenue"].astype(float).round(2)
    shares = ["share_of_segment", "revenue_share_of_segment"]
    out[shares] = out[shares].astype(float).round(6)
    out = in_stages(out, f.stages, "stage").reset_index(drop=True)
    return out[list(STAGE_MATRIX_COLUMNS)]


@export(
    "k_previews",
    reads=("k_previews", "snapshot"),
    columns=K_PREVIEW_COLUMNS,
    row="k fitted × cluster (1.. by revenue)",
)
def k_previews(src: Sources, f: Filters) -> pd.DataFrame:
    """The clusters each k of the refit would give: sizes, revenue and profile medians."""
    out = src.k_previews.sort_values(["k", "cluster"]).reset_index(drop=True)
    out = out[list(K_PREVIEW_COLUMNS[:-1])].copy()
    out["gross_revenue"] = out["gross_revenue"].astype(float).round(2)
    out["share"] = out["share"].astype(float).round(6)
    out["chosen"] = out["k"] == src.snapshot.k
    return out


def _stage_order(value: str) -> int:
    """(new) first, then the stages in map order, (gone) last."""
    if value == rfm.NEW:
        return -1
    if value == rfm.GONE:
        return len(rfm.STAGES)
    return rfm.STAGES.index(value) if value in rfm.STAGES else len(rfm.STAGES) + 1


@export(
    "stage_migration",
    reads=("stage_migration",),
    columns=STAGE_MIGRATION_COLUMNS,
    row='from × to lifecycle stage ("(new)" / "(gone)": customers who joined or left)',
    options=("compare_to", "stages"),
)
def stage_migration(src: Sources, f: Filters) -> pd.DataFrame:
    """Customers and their revenue moving between the lifecycle stages of two snapshots."""
    if f.segments:
        raise FilterError(
            "Moves between stages are of all customers: leave the segment filter empty."
        )
    moves, from_id = src.stage_migration(f.compare_to)
    if f.stages:
        moves = moves[moves["from_stage"].isin(f.stages) | moves["to_stage"].isin(f.stages)]
    out = moves[list(STAGE_MIGRATION_COLUMNS)].astype({"from_stage": object, "to_stage": object})
    out = out.sort_values(
        ["from_stage", "to_stage"], key=lambda col: col.map(_stage_order), kind="stable"
    ).reset_index(drop=True)
    out["customers"] = out["customers"].astype(int)
    out["gross_revenue"] = out["gross_revenue"].astype(float).round(2)
    out.attrs["provenance"] = {"from_snapshot_id": from_id}
    return out
