"""Exports of orders: KPIs, sales over time, order values, repeat rates, one customer's orders.

All read the snapshot's `OrderIndex` (analytics/orderindex.py): per-segment sorted arrays whose
figures for any date range and segments are binary searches and running sums. The pandas
definitions they are tested against are in tests/reference.py.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pandas as pd

from analytics.exports.registry import Sources, export
from analytics.exports.spec import Filters
from analytics.metrics import KPI_ORDER

KPI_COLUMNS = KPI_ORDER
SALES_COLUMNS = (
    "period",
    "segment_id",
    "orders",
    "customers",
    "gross_revenue",
    "net_revenue",
    "aov",
    "revenue_share",
)
QUANTILE_COLUMNS = ("mean", "min", "p05", "q1", "median", "q3", "p95", "max")


@export(
    "kpis",
    reads=("orders", "snapshot"),
    columns=KPI_COLUMNS,
    row="—",
)
def kpis(src: Sources, f: Filters) -> pd.DataFrame:
    """The headline figures of the orders in the range and segments."""
    figures = src.orders.kpis(f.start, f.end, f.segments, src.snapshot.active_days)
    return pd.DataFrame([figures.as_dict()], columns=list(KPI_COLUMNS))


def previous_period(start: date, end: date) -> tuple[date, date]:
    """The period of the same length that ends the day before `start`."""
    days = (end - start).days + 1
    prev_end = start - timedelta(days=1)
    return prev_end - timedelta(days=days - 1), prev_end


@export(
    "kpi_comparison",
    reads=("orders", "snapshot"),
    columns=(
        "metric",
        "current",
        "previous",
        "difference",
        "change",
        "current_start",
        "current_end",
        "previous_start",
        "previous_end",
    ),
    row="KPI",
)
def kpi_comparison(src: Sources, f: Filters) -> pd.DataFrame:
    """Each KPI in the period and in the previous period of equal length, with the change.

    Where the filter leaves a bound open, the snapshot's data window gives it.
    """
    snap = src.snapshot
    assert snap.data_start is not None and snap.data_end is not None
    start, end = f.start or snap.data_start, f.end or snap.data_end
    prev_start, prev_end = previous_period(start, end)
    now = kpis(src, replace(f, start=start, end=end)).iloc[0]
    before = kpis(src, replace(f, start=prev_start, end=prev_end)).iloc[0]
    rows = []
    for metric in KPI_ORDER:
        cur = None if pd.isna(now[metric]) else float(now[metric])
        prev = None if pd.isna(before[metric]) else float(before[metric])
        diff = cur - prev if cur is not None and prev is not None else None
        change = diff / abs(prev) if diff is not None and prev else None
        rows.append(
            {
                "metric": metric,
                "current": cur,
                "previous": prev,
                "difference": diff,
                "change": change,
                "current_start": start,
                "current_end": end,
                "previous_start": prev_start,
                "previous_end": prev_end,
            }
        )
    return pd.DataFrame(rows)


@export(
    "sales",
    reads=("orders",),
    columns=SALES_COLUMNS,
    row="period × segment",
    options=("granularity",),
)
def sales(src: Sources, f: Filters) -> pd.DataFrame:
    """Per period and segment: orders, customers, gross and net revenue, AOV, revenue share."""
    return sales_columns(src.orders.sales(f.start, f.end, f.segments, f.granularity))


def sales_columns(out: pd.DataFrame) -> pd.DataFrame:
    """AOV and the share of the period's revenue added to a rollup by period and segment."""
    out["aov"] = (out["gross_revenue"] / out["orders"].where(out["orders"] > 0)).round(4)
    period_total = out.groupby("period")["gross_revenue"].transform("sum")
    out["revenue_share"] = (out["gross_revenue"] / period_total.where(period_total > 0)).round(6)
    keys = ["period", "segment_id"]
    return out[list(SALES_COLUMNS)].sort_values(keys).reset_index(drop=True)


@export(
    "aov_distribution",
    reads=("orders",),
    columns=("segment_id", "orders", *QUANTILE_COLUMNS),
    row="segment",
)
def aov_distribution(src: Sources, f: Filters) -> pd.DataFrame:
    """Per segment: the distribution of positive order totals in the range (box-plot figures)."""
    out = src.orders.aov_distribution(f.start, f.end, f.segments)
    cols = list(QUANTILE_COLUMNS)
    out[cols] = out[cols].astype(float).round(4)
    return out


@export(
    "repeat_rate",
    reads=("orders",),
    columns=("segment_id", "customers", "repeat_customers", "repeat_rate"),
    row="segment",
)
def repeat_rate(src: Sources, f: Filters) -> pd.DataFrame:
    """Per segment: customers with a positive order in the range, those with two or more."""
    return src.orders.repeat_rate(f.start, f.end, f.segments)


@export(
    "customer_orders",
    reads=("orders",),
    columns=("customer_id", "day", "segment_id", "total"),
    row="order of `--customer ID`",
    role="analyst",
    options=("customer",),
)
def customer_orders(src: Sources, f: Filters) -> pd.DataFrame:
    """Every order of one customer up to the snapshot's as-of date (returns included)."""
    if not f.customer:
        raise ValueError("customer_orders needs a customer id")
    o = src.orders.customer_orders(f.customer)
    out = o.sort_values(["day", "total"]).reset_index(drop=True)
    out["day"] = out["day"].dt.date
    out["total"] = out["total"].astype(float).round(2)  # sums of line amounts in cents
    return out[["customer_id", "day", "segment_id", "total"]]
