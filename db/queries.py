"""Read queries shared by the CLI, the jobs and the web app. Bound parameters only."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pandas as pd
from sqlalchemy import Engine, func, select

from db.models import Transaction


def load_orders(engine: Engine, start: date | None = None, end: date | None = None) -> pd.DataFrame:
    """One row per order (customer_id, order_id, ordered_at, total), aggregated in the database.

    Orders are selected by line timestamps in [start, end], both days inclusive. Lines without a
    customer id are left out, as the metric definitions require.
    """
    t = Transaction
    stmt = (
        select(
            t.customer_id,
            t.order_id,
            func.min(t.ordered_at).label("ordered_at"),
            func.sum(t.amount).label("total"),
        )
        .where(t.customer_id.is_not(None))
        .group_by(t.customer_id, t.order_id)
        .order_by(t.customer_id, t.order_id)  # a stable order: refits are reproducible
    )
    if start is not None:
        stmt = stmt.where(t.ordered_at >= datetime.combine(start, datetime.min.time()))
    if end is not None:
        stmt = stmt.where(
            t.ordered_at < datetime.combine(end + timedelta(days=1), datetime.min.time())
        )
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(stmt).all(), columns=list(stmt.selected_columns.keys()))
    frame["ordered_at"] = pd.to_datetime(frame["ordered_at"], format="ISO8601")
    frame["total"] = frame["total"].astype("float64")
    return frame


def data_window(engine: Engine) -> tuple[date | None, date | None]:
    """First and last order day in the database (lines with a customer id)."""
    t = Transaction
    with engine.connect() as conn:
        lo, hi = conn.execute(
            select(func.min(t.ordered_at), func.max(t.ordered_at)).where(t.customer_id.is_not(None))
        ).one()

    return _day(lo), _day(hi)


def _day(value: object) -> date | None:
    """A DateTime column's value as a date (SQLite's raw aggregate values come as text)."""
    if value is None:
        return None
    if isinstance(value, str):
        return datetime.fromisoformat(value).date()
    assert isinstance(value, datetime)
    return value.date()


def category_breadth(engine: Engine, end: date) -> pd.Series:
    """Distinct categories each customer bought up to `end` inclusive."""
    t = Transaction
    until = datetime.combine(end + timedelta(days=1), datetime.min.time())
    stmt = (
        select(t.customer_id, func.count(func.distinct(t.category)))
        .where(t.customer_id.is_not(None), t.ordered_at < until)
        .group_by(t.customer_id)
    )
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(stmt).all(), columns=["customer_id", "n"])
    return frame.set_index("customer_id")["n"]
