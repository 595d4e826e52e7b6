"""Exports of the model and the snapshots: scores per k, refit history, migration."""

from __future__ import annotations

import pandas as pd

from analytics.exports.registry import Sources, export
from analytics.exports.spec import Filters

HISTORY_COLUMNS = (
    "snapshot_id",
    "status",
    "trigger",
    "as_of",
    "started_at",
    "finished_at",
    "duration_s",
    "k",
    "silhouette",
    "customers",
    "stage",
    "error",
    "removed_batches",
)
MIGRATION_COLUMNS = ("from_segment", "to_segment", "customers", "gross_revenue")


@export(
    "migration",
    reads=("migration",),
    columns=MIGRATION_COLUMNS,
    row="from × to segment (segment -1: new / gone customers)",
    options=("compare_to",),
)
def migration(src: Sources, f: Filters) -> pd.DataFrame:
    """Customers and their revenue moving between the segments of two snapshots."""
    moves, from_id = src.migration(f.compare_to)
    if f.segments:
        moves = moves[moves["from_segment"].isin(f.segments) | moves["to_segment"].isin(f.segments)]
    cols = list(MIGRATION_COLUMNS)
    out = moves[cols].sort_values(["from_segment", "to_segment"]).reset_index(drop=True)
    out["gross_revenue"] = out["gross_revenue"].astype(float).round(2)  # sums of cents
    out.attrs["provenance"] = {"from_snapshot_id": from_id}
    return out


@export(
    "scores",
    reads=("scores", "snapshot"),
    columns=("k", "silhouette", "inertia", "davies_bouldin", "chosen"),
    row="k tried",
)
def scores(src: Sources, f: Filters) -> pd.DataFrame:
    """Model quality per k tried, the chosen k marked."""
    table = src.scores
    out = table[["k", "silhouette", "inertia", "davies_bouldin"]].sort_values("k").copy()
    out["chosen"] = out["k"] == src.snapshot.k
    return out.reset_index(drop=True)


@export("snapshots", reads=("history",), columns=HISTORY_COLUMNS, row="snapshot kept")
def snapshots(src: Sources, f: Filters) -> pd.DataFrame:
    """Every snapshot kept: status, times and size (newest first); `removed_batches` names the
    import batches removed since it was built from them (its figures include that data)."""
    cols = list(HISTORY_COLUMNS)
    return src.history[cols].sort_values("snapshot_id", ascending=False).reset_index(drop=True)
