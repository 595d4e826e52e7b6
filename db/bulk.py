"""Bulk writes of DataFrames in the caller's transaction: COPY on PostgreSQL, executemany else."""

from __future__ import annotations

import io
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Table


def bulk_insert(conn: Connection, table: Table, frame: pd.DataFrame) -> None:
    """Append `frame` (columns named as the table's) to `table`."""
    if frame.empty:
        return
    columns = list(frame.columns)
    unknown = set(columns) - set(table.c.keys())
    if unknown:
        raise ValueError(f"{table.name} has no column(s) {sorted(unknown)}")
    if conn.dialect.name == "postgresql":
        buf = io.StringIO()
        frame.to_csv(buf, index=False, header=False, date_format="%Y-%m-%d %H:%M:%S.%f")
        buf.seek(0)
        dbapi: Any = conn.connection.dbapi_connection
        names = ", ".join(f'"{c}"' for c in columns)
        with dbapi.cursor() as cur:
            with cur.copy(f'COPY "{table.name}" ({names}) FROM STDIN WITH (FORMAT csv)') as copy:
                while data := buf.read(1 << 20):
                    copy.write(data)
        return
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    conn.execute(table.insert(), records)
