"""Read queries shared by the CLI, the jobs and the web app. Bound parameters only."""

from __future__ import annotations

import io
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd
from psycopg import sql
from sqlalchemy import Engine, Select, func, select

from db.models import Transaction


def read_frame(engine: Engine, stmt: Select, dtypes: dict[str, Any]) -> pd.DataFrame:  # type: ignore[type-arg]
    """The rows of `stmt` as a DataFrame with columns named as its selected columns.

    PostgreSQL: `COPY (stmt) TO STDOUT` as CSV, parsed by pandas' C reader: at 4M rows about
    five times faster than building the frame from fetched Python tuples, and no per-row Python
    objects on the way. Other databases: fetched rows. `dtypes` (pandas dtypes) apply to both.
    """
    names = list(stmt.selected_columns.keys())
    if engine.dialect.name != "postgresql":
        with engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(stmt).all(), columns=names)
        return frame.astype({k: v for k, v in dtypes.items() if v is not str and k in names})
    compiled = stmt.compile(dialect=engine.dialect)
    query = sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv)").format(sql.SQL(str(compiled)))
    buf = io.BytesIO()
    with engine.connect() as conn:
        dbapi: Any = conn.connection.dbapi_connection
        with dbapi.cursor() as cur, cur.copy(query, compiled.params) as copy:
            for block in copy:
                buf.write(block)
    if not buf.tell():
        return pd.DataFrame({k: pd.Series(dtype=dtypes.get(k, object)) for k in names})
    buf.seek(0)
    text_columns = {k: v for k, v in dtypes.items() if v is str and k in names}
    frame = pd.read_csv(
        buf, names=names, header=None, dtype=text_columns, keep_default_na=False, na_values=[""]
    )
    return frame.astype({k: v for k, v in dtypes.items() if v is not str and k in names})


def load_orders(
    engine: Engine,
    start: date | None = None,
    end: date | None = None,
    *,
    with_order_id: bool = True,
) -> pd.DataFrame:
    """One row per order (customer_id, order_id, ordered_at, total), aggregated in the database.

    Orders are selected by line timestamps in [start, end], both days inclusive. Lines without a
    customer id are left out, as the metric definitions require. With `with_order_id=False`
    (the refit) the order id is neither returned nor sorted on, and rows come in no particular
    order: at 10M lines the server's sort of 4.3M orders by two text keys cost ~6 s, and the
    refit orders its rows itself (analytics.pipeline).
    """
    t = Transaction
    columns = [t.customer_id] + ([t.order_id] if with_order_id else [])
    stmt = (
        select(
            *columns,
            func.min(t.ordered_at).label("ordered_at"),
            func.sum(t.amount).label("total"),
        )
        .where(t.customer_id.is_not(None))
        .group_by(t.customer_id, t.order_id)
    )
    if with_order_id:
        stmt = stmt.order_by(t.customer_id, t.order_id)  # a stable order
    if start is not None:
        stmt = stmt.where(t.ordered_at >= datetime.combine(start, datetime.min.time()))
    if end is not None:
        stmt = stmt.where(
            t.ordered_at < datetime.combine(end + timedelta(days=1), datetime.min.time())
        )
    frame = read_frame(engine, stmt, {"customer_id": str, "order_id": str, "total": "float64"})
    frame["ordered_at"] = pd.to_datetime(frame["ordered_at"], format="ISO8601")
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
        select(t.customer_id, func.count(func.distinct(t.category)).label("n"))
        .where(t.customer_id.is_not(None), t.ordered_at < until)
        .group_by(t.customer_id)
    )
    frame = read_frame(engine, stmt, {"customer_id": str, "n": "int64"})
    return frame.set_index("customer_id")["n"]
