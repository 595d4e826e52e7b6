"""RFM scores (1-5) and lifecycle stages of a snapshot's customers (pure).

Scores are quintiles of all the snapshot's customers, computed as of its as-of date:
R of recency (fewer days = higher score), F of frequency, M of monetary value. A customer's score
is 1 + floor(5 * w / n), where w is the number of customers with a strictly worse value and n the
number of customers: the quintile where the customer's group of equal values starts. Equal values
always score the same (a rank "first" would split identical one-order customers over scores 1-3
by customer id), the lowest value always scores 1 and the best quintile 5; a value shared by many
customers (one order is often over half of them) takes one score, and the scores just above it
stay empty. Integer arithmetic, so no edge falls on a rounding error.

The stage comes from the R and F scores through the widely used R x F segment map (one table,
STAGE_RULES, below), with its low corner split by M into Hibernating and Lost. docs/FEATURES.md
has the table and the reasons.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

STAGES = (
    "Champions",
    "Loyal",
    "Potential loyalists",
    "New customers",
    "Promising",
    "Need attention",
    "About to sleep",
    "At risk",
    "Can't lose them",
    "Hibernating",
    "Lost",
)

# stage, (R from, to), (F from, to), (M from, to): the first row that matches a customer wins.
STAGE_RULES: tuple[tuple[str, tuple[int, int], tuple[int, int], tuple[int, int]], ...] = (
    # stage                 R        F        M
    ("Champions", (5, 5), (4, 5), (1, 5)),
    ("Loyal", (3, 4), (4, 5), (1, 5)),
    ("Potential loyalists", (4, 5), (2, 3), (1, 5)),
    ("New customers", (5, 5), (1, 1), (1, 5)),
    ("Promising", (4, 4), (1, 1), (1, 5)),
    ("Need attention", (3, 3), (3, 3), (1, 5)),
    ("About to sleep", (3, 3), (1, 2), (1, 5)),
    ("Can't lose them", (1, 2), (5, 5), (1, 5)),
    ("At risk", (1, 2), (3, 4), (1, 5)),
    ("Lost", (1, 2), (1, 2), (1, 2)),
    ("Hibernating", (1, 2), (1, 2), (1, 5)),
)
NEW = "(new)"  # from_stage of customers new since the previous snapshot
GONE = "(gone)"  # to_stage of customers no longer in this snapshot
# A stage's medians (`stage_profiles`) kept with its `lifecycle` figures; together, the figures
# of a stage as a snapshot stores them (snapshot_stages).
STAGE_MEDIANS = ("recency_days", "frequency", "monetary")
STAGE_FIGURES = ("customers", "share", "gross_revenue", "aov", "repeat_rate", *STAGE_MEDIANS)


def _stage_table() -> np.ndarray:
    """STAGE_RULES as a 5 x 5 x 5 lookup of stage positions (in STAGES), by R, F, M - 1."""
    table = np.full((5, 5, 5), -1, dtype=np.int8)
    for stage, (r0, r1), (f0, f1), (m0, m1) in reversed(STAGE_RULES):  # earlier rows win
        table[r0 - 1 : r1, f0 - 1 : f1, m0 - 1 : m1] = STAGES.index(stage)
    if (table < 0).any():
        raise AssertionError("STAGE_RULES leave some R, F, M scores without a stage")
    return table


STAGE_TABLE = _stage_table()


def quintile_scores(values: pd.Series | np.ndarray, higher_is_better: bool = True) -> np.ndarray:
    """1 + floor(5 * (customers with a strictly worse value) / customers), as int8 in 1..5."""
    v = np.asarray(values, dtype=float)
    if not higher_is_better:
        v = -v
    n = len(v)
    if n == 0:
        return np.zeros(0, dtype=np.int8)
    # In sorted order, the customers worse than a value are the positions before its tie group.
    order = np.argsort(v, kind="stable")
    ordered = v[order]
    starts = np.empty(n, dtype=bool)
    starts[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=starts[1:])
    first = np.maximum.accumulate(np.where(starts, np.arange(n), 0))
    worse = np.empty(n, dtype=np.int64)
    worse[order] = first
    return (1 + (5 * worse) // n).astype(np.int8)


def stage_names(r: np.ndarray, f: np.ndarray, m: np.ndarray) -> np.ndarray:
    """The lifecycle stage of each (R, F, M) score triple."""
    idx = STAGE_TABLE[np.asarray(r) - 1, np.asarray(f) - 1, np.asarray(m) - 1]
    return np.asarray(STAGES, dtype=object)[idx]


def scores(customers: pd.DataFrame) -> pd.DataFrame:
    """r_score, f_score, m_score and lifecycle_stage of every customer, on `customers`' index.

    `customers`: recency_days, frequency, monetary, one row per customer of the snapshot.
    """
    r = quintile_scores(customers["recency_days"], higher_is_better=False)
    f = quintile_scores(customers["frequency"])
    m = quintile_scores(customers["monetary"])
    return pd.DataFrame(
        {"r_score": r, "f_score": f, "m_score": m, "lifecycle_stage": stage_names(r, f, m)},
        index=customers.index,
    )


def lifecycle(customers: pd.DataFrame) -> pd.DataFrame:
    """One row per stage, in STAGES order: stage, customers, share, gross_revenue, aov, repeat_rate.

    `customers`: lifecycle_stage, frequency, monetary. Every stage has a row; an empty stage has
    0 customers and no AOV or repeat rate (NaN). `share` is of the customers given.
    """
    total = len(customers)
    g = customers.groupby("lifecycle_stage", sort=False)
    agg = pd.DataFrame(
        {
            "customers": g.size(),
            "gross_revenue": g["monetary"].sum(),
            "orders": g["frequency"].sum(),
            "repeaters": g["frequency"].agg(lambda f: int((f >= 2).sum())),
        }
    ).reindex(list(STAGES))
    counts = agg["customers"].fillna(0).astype(int)
    out = pd.DataFrame(
        {
            "stage": list(STAGES),
            "customers": counts.to_numpy(),
            "share": (counts / total).to_numpy() if total else np.zeros(len(STAGES)),
            "gross_revenue": agg["gross_revenue"].fillna(0.0).to_numpy(dtype=float),
            "aov": (agg["gross_revenue"] / agg["orders"]).to_numpy(dtype=float),
            "repeat_rate": (agg["repeaters"] / agg["customers"]).to_numpy(dtype=float),
        }
    )
    return out


def stage_profiles(customers: pd.DataFrame) -> pd.DataFrame:
    """Per stage present (index: stage, STAGES order): customers, gross_revenue and the medians
    recency_days, frequency, monetary (what analytics.actions reads)."""
    g = customers.groupby("lifecycle_stage", sort=False)
    prof = pd.DataFrame(
        {
            "customers": g.size(),
            "gross_revenue": g["monetary"].sum(),
            "recency_days": g["recency_days"].median(),
            "frequency": g["frequency"].median(),
            "monetary": g["monetary"].median(),
        }
    )
    return prof.reindex([s for s in STAGES if s in prof.index])


def cross_table(customers: pd.DataFrame) -> pd.DataFrame:
    """Clusters x stages: segment_id, stage, customers, gross_revenue, share_of_segment.

    One row per non-empty cell, by segment id and then STAGES order. `customers`: segment_id,
    lifecycle_stage, monetary.
    """
    g = customers.groupby(["segment_id", "lifecycle_stage"], sort=False)
    out = pd.DataFrame({"customers": g.size(), "gross_revenue": g["monetary"].sum()})
    out = out.reset_index().rename(columns={"lifecycle_stage": "stage"})
    sizes = out.groupby("segment_id")["customers"].transform("sum")
    out["share_of_segment"] = out["customers"] / sizes
    out["_order"] = out["stage"].map({s: i for i, s in enumerate(STAGES)})
    out = out.sort_values(["segment_id", "_order"]).drop(columns="_order")
    return out.reset_index(drop=True)


def stage_migration(previous: pd.DataFrame, current: pd.DataFrame) -> pd.DataFrame:
    """Customers and revenue moving between the stages of two snapshots.

    Both frames: customer_id, lifecycle_stage, monetary. New customers come from NEW, gone
    customers go to GONE; revenue is the current monetary value (previous for gone ones), as in
    analytics.aggregates.migration. Customers without a stage in `previous` (a snapshot from
    before stages) make the result empty: there is nothing to compare with.
    """
    cols = ["from_stage", "to_stage", "customers", "gross_revenue"]
    if previous["lifecycle_stage"].isna().any():
        return pd.DataFrame(columns=cols)
    merged = previous[["customer_id", "lifecycle_stage", "monetary"]].merge(
        current[["customer_id", "lifecycle_stage", "monetary"]],
        on="customer_id",
        how="outer",
        suffixes=("_from", "_to"),
    )
    merged["from_stage"] = merged["lifecycle_stage_from"].fillna(NEW)
    merged["to_stage"] = merged["lifecycle_stage_to"].fillna(GONE)
    merged["gross_revenue"] = merged["monetary_to"].fillna(merged["monetary_from"]).fillna(0.0)
    g = merged.groupby(["from_stage", "to_stage"])
    out = pd.DataFrame({"customers": g.size(), "gross_revenue": g["gross_revenue"].sum()})
    return out.reset_index()[cols]
