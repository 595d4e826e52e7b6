"""The metric definitions of docs/METRICS.md, as pure functions over an order table.

An *order table* has one row per order: customer_id, order_id, ordered_at (the order's first
line), total (sum of its lines). Orders with total <= 0 are returns/cancellations: they count in
net revenue only. Lines without a customer id never reach an order table.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import date, timedelta

import pandas as pd

DEFINITIONS = {
    "customers": "Customers with at least one positive order in the period.",
    "active_customers": "Customers with a positive order in the last {active_days} days of the "
    "period.",
    "orders": "Orders with a positive total (sum of their lines) in the period.",
    "returns": "Orders with a total of zero or less (returns and cancellations).",
    "gross_revenue": "Sum of positive order totals.",
    "net_revenue": "Sum of all order totals, returns included.",
    "aov": "Average order value: gross revenue / number of positive orders.",
    "repeat_rate": "Share of customers with two or more positive orders in the period.",
}


@dataclass(frozen=True)
class Kpis:
    customers: int
    active_customers: int
    orders: int
    returns: int
    gross_revenue: float
    net_revenue: float
    aov: float | None
    repeat_rate: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


KPI_ORDER = tuple(f.name for f in fields(Kpis))  # the headline figures, in their usual order


def filter_period(orders: pd.DataFrame, start: date | None, end: date | None) -> pd.DataFrame:
    """Orders whose date lies in [start, end], both days inclusive."""
    day = orders["ordered_at"].dt.normalize()
    mask = pd.Series(True, index=orders.index)
    if start is not None:
        mask &= day >= pd.Timestamp(start)
    if end is not None:
        mask &= day <= pd.Timestamp(end)
    return orders[mask]


def kpis(
    orders: pd.DataFrame,
    start: date | None = None,
    end: date | None = None,
    active_days: int = 90,
) -> Kpis:
    """The headline figures (docs/METRICS.md) of the orders in [start, end]."""
    period = filter_period(orders, start, end)
    positive = period[period["total"] > 0]
    per_customer = positive.groupby("customer_id").size()
    n_orders = len(positive)
    gross = float(positive["total"].sum())
    if end is None:
        end = period["ordered_at"].max().date() if len(period) else None
    active = 0
    if end is not None and len(positive):
        since = pd.Timestamp(end - timedelta(days=active_days - 1))
        active = int(positive.loc[positive["ordered_at"] >= since, "customer_id"].nunique())
    return Kpis(
        customers=int(len(per_customer)),
        active_customers=active,
        orders=n_orders,
        returns=int((period["total"] <= 0).sum()),
        gross_revenue=round(gross, 2),
        net_revenue=round(float(period["total"].sum()), 2),
        aov=gross / n_orders if n_orders else None,
        repeat_rate=float((per_customer >= 2).mean()) if len(per_customer) else None,
    )
