"""The pre-aggregated tables pages read, computed from orders with their segment (pure)."""

from __future__ import annotations

import pandas as pd

NEW = -1  # from_segment of customers new since the previous snapshot
GONE = -1  # to_segment of customers no longer in this snapshot


def rollup(orders: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per group of `keys`: orders and customers (positive orders), returns, gross and net revenue.

    `orders`: customer_id, total and the key columns; one row per order, returns included.
    """
    positive = orders["total"] > 0
    pos = orders[positive].groupby(keys)
    out = pd.DataFrame(
        {
            "orders": pos.size(),
            "customers": pos["customer_id"].nunique(),
            "returns": orders[~positive].groupby(keys).size(),
            "gross_revenue": pos["total"].sum(),
            "net_revenue": orders.groupby(keys)["total"].sum(),
        }
    ).fillna(0)
    out[["orders", "customers", "returns"]] = out[["orders", "customers", "returns"]].astype(int)
    return out


def month_start(ts: pd.Series) -> pd.Series:
    return ts.dt.to_period("M").dt.to_timestamp()


def retention(orders: pd.DataFrame) -> pd.DataFrame:
    """Per cohort month x months since first order x segment: cohort size, active customers,
    revenue. A customer's cohort is the month of their first positive order.

    Every cohort and segment has a row for every month from its cohort month to the data end
    (the month of the last order, returns included), zeros included: a month nobody came back
    is 0%, not missing.
    """
    keys = ["cohort", "months_since_first", "segment_id"]
    cols = ["cohort", "months_since_first", "segment_id", "cohort_size", "customers", "revenue"]
    pos = orders[orders["total"] > 0]
    if pos.empty:
        return pd.DataFrame(columns=cols)
    month = month_start(pos["ordered_at"])
    cohort = month.groupby(pos["customer_id"]).transform("min")
    frame = pd.DataFrame(
        {
            "customer_id": pos["customer_id"],
            "segment_id": pos["segment_id"],
            "cohort": cohort,
            "months_since_first": (month.dt.year - cohort.dt.year) * 12
            + (month.dt.month - cohort.dt.month),
            "total": pos["total"],
        }
    )
    g = frame.groupby(keys)
    active = pd.DataFrame({"customers": g["customer_id"].nunique(), "revenue": g["total"].sum()})
    sizes = (
        frame.groupby(["cohort", "segment_id"])["customer_id"]
        .nunique()
        .rename("cohort_size")
        .reset_index()
    )
    end = month_start(orders["ordered_at"]).max()
    spans = (end.year - sizes["cohort"].dt.year) * 12 + (end.month - sizes["cohort"].dt.month) + 1
    grid = sizes.loc[sizes.index.repeat(spans)].reset_index(drop=True)
    grid["months_since_first"] = grid.groupby(["cohort", "segment_id"]).cumcount()
    out = grid.join(active, on=keys)
    out[["customers", "revenue"]] = out[["customers", "revenue"]].fillna(0)
    out["customers"] = out["customers"].astype(int)
    out["cohort"] = out["cohort"].dt.date
    return out[cols].sort_values(keys).reset_index(drop=True)


def migration(previous: pd.DataFrame, current: pd.DataFrame) -> pd.DataFrame:
    """Customers and revenue moving between segments of two snapshots.

    Both frames: customer_id, segment_id, monetary. New customers come from segment -1, gone
    customers go to segment -1; revenue is the current monetary value (previous for gone ones).
    """
    merged = previous[["customer_id", "segment_id", "monetary"]].merge(
        current[["customer_id", "segment_id", "monetary"]],
        on="customer_id",
        how="outer",
        suffixes=("_from", "_to"),
    )
    merged["from_segment"] = merged["segment_id_from"].fillna(NEW).astype(int)
    merged["to_segment"] = merged["segment_id_to"].fillna(GONE).astype(int)
    merged["gross_revenue"] = merged["monetary_to"].fillna(merged["monetary_from"]).fillna(0.0)
    g = merged.groupby(["from_segment", "to_segment"])
    out = pd.DataFrame({"customers": g.size(), "gross_revenue": g["gross_revenue"].sum()})
    return out.reset_index()
