"""Bulk writes of DataFrames in the caller's transaction.

PostgreSQL: COPY in the binary format, encoded column by column with numpy (no per-row Python)
and streamed in chunks, so PostgreSQL ingests one chunk while the next is encoded. SQLite: one
executemany of plain values, formatted as SQLAlchemy's SQLite types store them (skipping per-row
type processing, ~2.5x faster on an import). Any other database: SQLAlchemy's executemany.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
from psycopg import sql
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Connection,
    Date,
    DateTime,
    Float,
    Integer,
    SmallInteger,
    String,
    Table,
    Text,
)

SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"  # the storage format of sqlalchemy's SQLite DATETIME
COPY_CHUNK_ROWS = 200_000
PG_EPOCH = np.datetime64("2000-01-01")
BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8  # signature, flags, no extension
BINARY_TRAILER = b"\xff\xff"


def _encode_column(values: pd.Series, kind: Any) -> tuple[np.ndarray, np.ndarray]:
    """One column in PostgreSQL's binary format: (bytes per row as an (n, width) uint8 array,
    length of each row's value, -1 for NULL)."""
    n = len(values)
    null = values.isna().to_numpy()
    if isinstance(kind, Boolean):
        raw = values.fillna(False).to_numpy(dtype=bool).astype(np.uint8).reshape(n, 1)
    elif isinstance(kind, (Integer, BigInteger, SmallInteger)):
        wire = (
            ">i8"
            if isinstance(kind, BigInteger)
            else ">i2"
            if isinstance(kind, SmallInteger)
            else ">i4"
        )
        raw = values.fillna(0).to_numpy(dtype=np.int64).astype(wire).view(np.uint8).reshape(n, -1)
    elif isinstance(kind, Float):
        if kind.precision is not None and kind.precision <= 24:
            raw = values.to_numpy(dtype=">f4").view(np.uint8).reshape(n, 4)
        else:
            raw = values.to_numpy(dtype=">f8").view(np.uint8).reshape(n, 8)
    elif isinstance(kind, DateTime):
        stamps = pd.to_datetime(values).to_numpy(dtype="datetime64[us]")
        micros = (stamps - PG_EPOCH).astype("timedelta64[us]").astype(np.int64)
        raw = np.where(null, 0, micros).astype(">i8").view(np.uint8).reshape(n, 8)
    elif isinstance(kind, Date):
        days = pd.to_datetime(values).to_numpy(dtype="datetime64[D]")
        count = (days - PG_EPOCH).astype("timedelta64[D]").astype(np.int64)
        raw = np.where(null, 0, count).astype(">i4").view(np.uint8).reshape(n, 4)
    elif isinstance(kind, (String, Text, JSON)):
        # An empty string is NULL, as it was when these writes went through COPY's CSV format.
        null = null | (values.astype(object) == "").to_numpy(dtype=bool)
        encoded = [
            b"" if m else str(v).encode() for v, m in zip(values.tolist(), null, strict=True)
        ]
        fixed = np.array(encoded, dtype=bytes)  # padded to the longest value
        width = max(fixed.dtype.itemsize, 1)
        raw = (
            fixed.view(np.uint8).reshape(n, width)
            if fixed.dtype.itemsize
            else np.zeros((n, 1), np.uint8)
        )
        lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=n)
        return raw, np.where(null, -1, lengths)
    else:
        raise TypeError(f"no binary COPY encoding for {kind!r}")
    return raw, np.where(null, -1, raw.shape[1])


def encode_binary_rows(frame: pd.DataFrame, table: Table) -> bytes:
    """The rows of `frame` as PostgreSQL binary COPY tuples (no header or trailer).

    Each tuple: the field count (int16), then per field its length (int32, -1 for NULL) and
    its bytes, all big-endian. Built with vectorized scatters into one buffer.
    """
    n = len(frame)
    columns = [_encode_column(frame[c], table.c[c].type) for c in frame.columns]
    sizes = np.full(n, 2, dtype=np.int64)
    for _, lengths in columns:
        sizes += 4 + np.maximum(lengths, 0)
    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(sizes[:-1], out=starts[1:])
    out = np.zeros(int(sizes.sum()), dtype=np.uint8)
    count = np.array([len(columns)], dtype=">i2").view(np.uint8)
    out[starts] = count[0]
    out[starts + 1] = count[1]
    pos = starts + 2
    for raw, lengths in columns:
        head = lengths.astype(">i4").view(np.uint8).reshape(n, 4)
        out[pos[:, None] + np.arange(4)] = head
        pos = pos + 4
        width = raw.shape[1]
        if width:
            keep = np.arange(width) < np.maximum(lengths, 0)[:, None]
            out[(pos[:, None] + np.arange(width))[keep]] = raw[keep]
        pos = pos + np.maximum(lengths, 0)
    return out.tobytes()


def _copy_postgres(conn: Connection, table: Table, frame: pd.DataFrame) -> None:
    dbapi: Any = conn.connection.dbapi_connection
    statement = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT binary)").format(
        sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, frame.columns))
    )
    with dbapi.cursor() as cur, cur.copy(statement) as copy:
        copy.write(BINARY_HEADER)
        for start in range(0, len(frame), COPY_CHUNK_ROWS):
            copy.write(encode_binary_rows(frame.iloc[start : start + COPY_CHUNK_ROWS], table))
        copy.write(BINARY_TRAILER)


def _executemany_sqlite(conn: Connection, table: Table, frame: pd.DataFrame) -> None:
    values = frame.copy()
    for name in values.columns:
        kind = table.c[name].type
        if isinstance(kind, DateTime):
            values[name] = pd.to_datetime(values[name]).dt.strftime(SQLITE_DATETIME)
        elif isinstance(kind, Date):
            values[name] = pd.to_datetime(values[name]).dt.strftime("%Y-%m-%d")
    values = values.astype(object).where(values.notna(), None)
    names = ", ".join(f'"{c}"' for c in values.columns)
    marks = ", ".join("?" for _ in values.columns)
    # Table and column names come from the model; every value is a bound parameter.
    sql = f'INSERT INTO "{table.name}" ({names}) VALUES ({marks})'  # noqa: S608
    conn.exec_driver_sql(sql, list(values.itertuples(index=False, name=None)))


def bulk_insert(conn: Connection, table: Table, frame: pd.DataFrame) -> None:
    """Append `frame` (columns named as the table's) to `table`."""
    if frame.empty:
        return
    unknown = set(frame.columns) - set(table.c.keys())
    if unknown:
        raise ValueError(f"{table.name} has no column(s) {sorted(unknown)}")
    if conn.dialect.name in ("postgresql", "sqlite"):
        json_columns = [c for c in frame.columns if isinstance(table.c[c].type, JSON)]
        if json_columns:
            frame = frame.assign(**{c: frame[c].map(json.dumps) for c in json_columns})
    if conn.dialect.name == "postgresql":
        _copy_postgres(conn, table, frame)
    elif conn.dialect.name == "sqlite":
        _executemany_sqlite(conn, table, frame)
    else:
        records = frame.astype(object).where(frame.notna(), None).to_dict("records")
        conn.execute(table.insert(), records)
