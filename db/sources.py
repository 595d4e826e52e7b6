"""Database sources: a shop's own PostgreSQL or MySQL/MariaDB, read-only, synced incrementally.

A source is a URL (never with a password: the password comes from an environment variable or
a secret file, read when connecting), a table/view or a query, a column mapping to the
normalized layout, a line key (the source's order-line id) and a watermark column (an
`updated_at` or an increasing id). A sync:

1. opens one read-only transaction at the source (PostgreSQL: REPEATABLE READ, READ ONLY;
   MySQL/MariaDB: START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY), so every query of
   the sync sees the same data and nothing can be written there;
2. pulls the lines whose watermark is at or after the last one synced, ordered by watermark
   and key, in chunks through `db.importer.import_rows` (the same validation and report as a
   file, one batch, one transaction here);
3. compares each pulled line with the stored line of the same key (`analytics.sync`): a new
   key is added, a changed line replaces its earlier version, an unchanged one is left alone
   (the lines at the last watermark are pulled again, so a line changed within the same second
   is not missed);
4. compares the source's line keys with the stored ones: a line deleted at the source is
   removed here;
5. records the new watermark with the batch. Any failure (connection, query, an invalid value)
   rolls all of it back: the data stays as it was, and the sync history says why.

`custseg sync --full` reads everything again (the same comparisons: unchanged lines stay). The
scheduler syncs every source before each scheduled refit (`db.scheduler.SCHEDULE`).
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    MetaData,
    String,
    Table,
    any_,
    bindparam,
    create_engine,
    delete,
    exists,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy import column as sql_column
from sqlalchemy import table as sql_table
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from analytics.ingest import NORMALIZED_COLUMNS
from analytics.layouts import NORMALIZED
from analytics.sync import (
    compare_lines,
    decode_watermark,
    encode_watermark,
    key_problem,
    line_keys,
    show_watermark,
)
from db.batches import delete_lines, mark_snapshots, queue_refit
from db.bulk import bulk_insert
from db.importer import ImportRejected, ImportReport, Progress, RowChunk, import_rows, write_lines
from db.jobs import JobResult
from db.models import (
    ImportBatch,
    Job,
    JobStatus,
    Source,
    SourceSync,
    SyncStatus,
    Transaction,
    Trigger,
)
from db.models.users import utcnow

CHUNK_LINES = 50_000
CONNECT_TIMEOUT_S = 10
KEY_SLICE = 5_000  # keys per IN (...) list: under every driver's parameter limit
REQUIRED = ("customer_id", "order_id", "ordered_at", "amount")
OPTIONAL = ("category", "country")
DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
}
# The first statement of every sync: one snapshot of the source, and no write possible.
READ_ONLY = {
    "postgresql": "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY",
    "mysql": "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_$]{0,62}"
_TABLE = re.compile(rf"(?:{_IDENTIFIER}\.)?{_IDENTIFIER}")
_ENV = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


class SourceError(ValueError):
    """A source cannot be used: its configuration, its connection or its query. One line."""


class NoSuchSource(SourceError):
    """No source has this name."""


class SyncFailed(ValueError):
    """A sync failed; nothing was written. The message says why (the history keeps it)."""


class _NothingChanged(Exception):
    """Raised inside the import's transaction to roll back a batch that changes nothing."""


# --- configuration ---------------------------------------------------------------------


@dataclass(frozen=True)
class SourceSpec:
    """A source's configuration, checked (`make_spec`)."""

    name: str
    url: str
    table: str | None
    query: str | None
    mapping: dict[str, str]
    key_column: str
    watermark_column: str
    password_env: str | None = None
    password_file: str | None = None

    @property
    def kind(self) -> str:
        """postgresql or mysql (MySQL and MariaDB)."""
        return DRIVERS[make_url(self.url).get_backend_name()].split("+")[0]

    @property
    def columns(self) -> list[str]:
        """The source columns a sync reads: the mapped ones, the key and the watermark."""
        wanted = [*self.mapping.values(), self.key_column, self.watermark_column]
        return list(dict.fromkeys(wanted))

    def reads(self) -> str:
        """What it reads, for people: the table, or the query's first words."""
        if self.table:
            return f"table {self.table}"
        shown = " ".join((self.query or "").split())
        return f"query {shown[:60] + '…' if len(shown) > 60 else shown}"

    def password_from(self) -> str:
        if self.password_env:
            return f"environment variable {self.password_env}"
        if self.password_file:
            return f"file {self.password_file}"
        return "none"

    @classmethod
    def of(cls, row: Source) -> SourceSpec:
        return cls(
            name=row.name,
            url=row.url,
            table=row.table_name,
            query=row.query,
            mapping=dict(row.mapping),
            key_column=row.key_column,
            watermark_column=row.watermark_column,
            password_env=row.password_env,
            password_file=row.password_file,
        )


def _column_name(value: Any, what: str) -> str:
    name = str(value or "").strip()
    if not name or len(name) > 128 or any(c in name for c in '\x00"`'):
        raise SourceError(f"{what}: {value!r} is not a column name")
    return name


def make_spec(
    name: str,
    url: str,
    *,
    table: str | None = None,
    query: str | None = None,
    mapping: dict[str, str] | None = None,
    key_column: str,
    watermark_column: str,
    password_env: str | None = None,
    password_file: str | None = None,
) -> SourceSpec:
    """Check a source's configuration; SourceError says what is wrong. The URL must not hold
    a password: name the environment variable or the file that does."""
    name = (name or "").strip()
    if not _NAME.fullmatch(name):
        raise SourceError(
            f"source name {name!r}: letters, digits, '.', '_' or '-', up to 64, e.g. shop"
        )
    try:
        parsed = make_url((url or "").strip())
    except ArgumentError:
        raise SourceError(
            "the URL is not a database URL; e.g. postgresql://reader@db.example.com:5432/shop "
            "or mysql://reader@db.example.com:3306/shop"
        ) from None
    backend = parsed.get_backend_name()
    if backend not in DRIVERS:
        raise SourceError(
            f"{backend}: only PostgreSQL (postgresql://) and MySQL / MariaDB (mysql://, "
            "mariadb://) sources are supported"
        )
    if parsed.password:
        raise SourceError(
            "the URL holds a password: leave it out and name the environment variable "
            "(--password-env) or the file (--password-file) that holds it"
        )
    if not parsed.host or not parsed.database:
        raise SourceError("the URL needs a host and a database, e.g. postgresql://reader@host/shop")
    if password_env and password_file:
        raise SourceError("give the password's environment variable or its file, not both")
    if password_env and not _ENV.fullmatch(password_env):
        raise SourceError(f"--password-env {password_env!r} is not an environment variable name")
    if password_file and not Path(password_file).is_absolute():
        raise SourceError(f"--password-file {password_file!r}: give an absolute path")
    table = (table or "").strip() or None
    query = (query or "").strip().rstrip(";").strip() or None
    if (table is None) == (query is None):
        raise SourceError("give a table (or view) or a query, one of the two")
    if table is not None and not _TABLE.fullmatch(table):
        raise SourceError(f"table {table!r}: a name such as order_lines or shop.order_lines")
    if query is not None and not re.match(r"(?is)\s*(select|with)\b", query):
        raise SourceError("the query must be a SELECT (or WITH … SELECT)")
    given = dict(mapping or {})
    unknown = sorted(set(given) - set(NORMALIZED_COLUMNS))
    if unknown:
        raise SourceError(
            f"--map names unknown target column(s) {', '.join(unknown)}; targets are "
            f"{', '.join(NORMALIZED_COLUMNS)}"
        )
    full = {target: given.get(target, target) for target in REQUIRED}
    full.update({t: given[t] for t in OPTIONAL if given.get(t)})
    full = {t: _column_name(c, f"--map {t}") for t, c in full.items()}
    return SourceSpec(
        name=name,
        url=parsed.render_as_string(hide_password=False),
        table=table,
        query=query,
        mapping=full,
        key_column=_column_name(key_column, "the line key column"),
        watermark_column=_column_name(watermark_column, "the watermark column"),
        password_env=password_env or None,
        password_file=password_file or None,
    )


def add_source(engine: Engine, spec: SourceSpec, created_by: str | None = None) -> int:
    """Store a checked source; its id."""
    with engine.begin() as conn:
        taken = conn.execute(select(Source.id).where(Source.name == spec.name)).scalar()
        if taken is not None:
            raise SourceError(f"a source named {spec.name!r} exists (custseg source list)")
        return int(
            conn.execute(
                insert(Source)
                .values(
                    name=spec.name,
                    url=spec.url,
                    password_env=spec.password_env,
                    password_file=spec.password_file,
                    table_name=spec.table,
                    query=spec.query,
                    mapping=spec.mapping,
                    key_column=spec.key_column,
                    watermark_column=spec.watermark_column,
                    created_at=utcnow(),
                    created_by=created_by,
                )
                .returning(Source.id)
            ).scalar_one()
        )


def get_source(engine: Engine, name: str) -> Source:
    with Session(engine, expire_on_commit=False) as db:
        row = db.scalars(select(Source).where(Source.name == name)).first()
    if row is None:
        raise NoSuchSource(f"no source named {name!r} (custseg source list shows them)")
    return row


@dataclass(frozen=True)
class SourceInfo:
    """A source as `source list` and the Data page show it (never a password)."""

    name: str
    kind: str
    url: str
    password_from: str
    reads: str
    mapping: dict[str, str]
    key_column: str
    watermark_column: str
    watermark: str
    last_synced_at: datetime | None  # the last sync that succeeded
    last_status: str | None  # how the last sync ended, and when it started
    last_sync_at: datetime | None
    lines: int


def list_sources(engine: Engine) -> list[SourceInfo]:
    """Every source with its last sync and the lines it has here."""
    with Session(engine, expire_on_commit=False) as db:
        sources = db.scalars(select(Source).order_by(Source.name)).all()
    with engine.connect() as conn:
        counts = dict(
            conn.execute(  # synced lines have a key: the partial index holds just them
                select(Transaction.source_id, func.count())
                .where(Transaction.source_key.is_not(None))
                .group_by(Transaction.source_id)
            ).all()
        )
        latest = select(func.max(SourceSync.id)).group_by(SourceSync.source_id)
        last = {
            r.source_id: (r.status, r.started_at)
            for r in conn.execute(
                select(SourceSync.source_id, SourceSync.status, SourceSync.started_at).where(
                    SourceSync.id.in_(latest)
                )
            )
        }
    out = []
    for row in sources:
        spec = SourceSpec.of(row)
        out.append(
            SourceInfo(
                name=row.name,
                kind=spec.kind,
                url=make_url(row.url).render_as_string(hide_password=True),
                password_from=spec.password_from(),
                reads=spec.reads(),
                mapping=spec.mapping,
                key_column=row.key_column,
                watermark_column=row.watermark_column,
                watermark=show_watermark(row.watermark),
                last_synced_at=row.last_synced_at,
                last_status=str(last[row.id][0]) if row.id in last else None,
                last_sync_at=last[row.id][1] if row.id in last else None,
                lines=int(counts.get(row.id, 0)),
            )
        )
    return out


@dataclass(frozen=True)
class RemovedSource:
    name: str
    batches: int
    lines: int
    refit_job_id: int | None


def remove_source(
    engine: Engine,
    name: str,
    *,
    refit: bool = True,
    trigger: Trigger = Trigger.CLI,
    requested_by: str | None = None,
) -> RemovedSource:
    """Remove a source, its sync history and the lines synced from it (its batches), in one
    transaction; then queue a refit. Adding it again starts from a full sync."""
    with engine.begin() as conn:
        row = conn.execute(
            select(Source.id).where(Source.name == name).with_for_update()
        ).scalar_one_or_none()
        if row is None:
            raise NoSuchSource(f"no source named {name!r} (custseg source list shows them)")
        batches = conn.execute(
            select(ImportBatch.id, ImportBatch.file_name, ImportBatch.created_at).where(
                ImportBatch.source_id == row
            )
        ).all()
        lines = delete_lines(conn, Transaction.source_id == row)
        conn.execute(delete(ImportBatch).where(ImportBatch.source_id == row))
        conn.execute(delete(SourceSync).where(SourceSync.source_id == row))
        conn.execute(delete(Source).where(Source.id == row))
        mark_snapshots(conn, [(b.id, b.file_name, b.created_at) for b in batches])
    job = queue_refit(engine, trigger, requested_by) if refit and lines else None
    return RemovedSource(name, len(batches), lines, job.id if job else None)


# --- the connection ----------------------------------------------------------------------


def _password(spec: SourceSpec) -> str | None:
    if spec.password_env:
        value = os.environ.get(spec.password_env)
        if value is None:
            raise SourceError(
                f"source {spec.name}: the environment variable {spec.password_env} (its "
                "password) is not set in this process"
            )
        return value
    if spec.password_file:
        try:
            return Path(spec.password_file).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise SourceError(
                f"source {spec.name}: cannot read its password file {spec.password_file}: "
                f"{exc.strerror or exc}"
            ) from None
    return None


def _one_line(exc: BaseException, secret: str | None) -> str:
    """The driver's message, first line, without the password."""
    orig = getattr(exc, "orig", None) or exc
    args: tuple[Any, ...] = tuple(getattr(orig, "args", ()))
    if len(args) == 2 and isinstance(args[0], int) and isinstance(args[1], str):  # PyMySQL
        message = f"{args[1]} (error {args[0]})"
    else:
        message = str(orig)
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    line = lines[0] if lines else type(orig).__name__
    return line.replace(secret, "***") if secret else line


@dataclass
class Reader:
    """A read-only transaction at a source, and what its errors should say."""

    conn: Connection
    spec: SourceSpec
    secret: str | None

    @contextmanager
    def guard(self, doing: str) -> Iterator[None]:
        """Turn the source's errors into one line: `source shop: <doing> failed: ...`."""
        try:
            yield
        except DBAPIError as exc:
            raise SourceError(
                f"source {self.spec.name}: {doing} failed: {_one_line(exc, self.secret)}"
            ) from None


@contextmanager
def reading(spec: SourceSpec) -> Iterator[Reader]:
    """Connect to the source and open a read-only transaction (rolled back at the end)."""
    secret = _password(spec)
    url: URL = make_url(spec.url).set(drivername=DRIVERS[make_url(spec.url).get_backend_name()])
    if secret is not None:
        url = url.set(password=secret)
    source = create_engine(
        url, poolclass=NullPool, connect_args={"connect_timeout": CONNECT_TIMEOUT_S}
    )
    shown = make_url(spec.url).render_as_string(hide_password=True)
    try:
        try:
            conn = source.connect()
        except DBAPIError as exc:
            raise SourceError(
                f"source {spec.name}: cannot connect to {shown}: {_one_line(exc, secret)}"
            ) from None
        reader = Reader(conn, spec, secret)
        try:
            with reader.guard("starting a read-only transaction"):
                conn.exec_driver_sql(READ_ONLY[source.dialect.name])
            yield reader
        finally:
            try:
                conn.close()  # rolls the read-only transaction back
            except DBAPIError:
                pass  # a connection the source dropped: nothing to roll back
    finally:
        source.dispose()


def _relation(spec: SourceSpec) -> Any:
    """The table or the query as a FROM clause with the columns a sync reads."""
    columns: list[Any] = [sql_column(c) for c in spec.columns]
    if spec.table:
        schema, _, name = spec.table.rpartition(".")
        return sql_table(name, *columns, schema=schema or None)
    # A colon in the query is the query's own (a cast, a time literal), not a parameter.
    query = (spec.query or "").replace(":", r"\:")
    return text(query).columns(*columns).subquery("custseg_source")


@dataclass(frozen=True)
class Probe:
    """What `test_source` found at the source (`lines` None: not counted)."""

    server: str
    lines: int | None = None
    keys: int | None = None
    no_watermark: int | None = None
    latest: Any = None

    def summary(self, spec: SourceSpec) -> str:
        head = (
            f"source {spec.name}: connected to {self.server} (read-only transaction); "
            f"{spec.reads()}"
        )
        if self.lines is None:
            return f"{head}: the columns {', '.join(spec.columns)} are there"
        lines = [f"{head}: {self.lines:,} lines, {spec.watermark_column} up to {self.latest}"]
        if self.keys != self.lines:
            lines.append(
                f"  problem: {self.lines - (self.keys or 0):,} lines share a line key: column "
                f"{spec.key_column} must be unique (the source's order-line id)"
            )
        if self.no_watermark:
            lines.append(
                f"  problem: {self.no_watermark:,} lines have no {spec.watermark_column}: "
                "every line needs one (e.g. COALESCE(updated_at, created_at) in a query)"
            )
        return "\n".join(lines)

    @property
    def ok(self) -> bool:
        return self.lines is None or (self.keys == self.lines and not self.no_watermark)


def test_source(spec: SourceSpec, *, count: bool = True) -> Probe:
    """Connect read-only and check that the columns are there; with `count`, also that the
    line key is unique and every line has a watermark (a scan of the source: the command line
    does it, the Data page does not). SourceError when the connection or the query fails."""
    with reading(spec) as reader:
        rel = _relation(spec)
        key, mark = rel.c[spec.key_column], rel.c[spec.watermark_column]
        with reader.guard("the query"):
            reader.conn.execute(select(*[rel.c[c] for c in spec.columns]).limit(1)).all()
            if count:
                n, keys, marked, latest = reader.conn.execute(
                    select(
                        func.count(), func.count(key.distinct()), func.count(mark), func.max(mark)
                    )
                ).one()
        dialect = reader.conn.dialect
        product = (
            "PostgreSQL"
            if dialect.name == "postgresql"
            else "MariaDB"
            if getattr(dialect, "is_mariadb", False)
            else "MySQL"
        )
        version = ".".join(str(p) for p in dialect.server_version_info or () if isinstance(p, int))
    server = f"{product} {version}"
    if not count:
        return Probe(server)
    return Probe(server, int(n), int(keys), int(n) - int(marked), latest)


# --- a sync ------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A source's value as the importer reads typed cells: decimals as floats, times with a
    zone as the wall-clock time they carry (as a file's offsets are read)."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.replace(tzinfo=None)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    return value


class SourceRows:
    """The source's new and changed lines as a `RowSource` for `import_rows`: one query,
    ordered by watermark then key, streamed in chunks (rows numbered from 1 in that order)."""

    header_line: str | None = None
    delimiter: str | None = None
    width: int | None = None
    rows_hint: int | None = None
    shape_hint: str = ""
    fix_hint = "Fix these lines at the source (or the query) and sync again."

    def __init__(self, reader: Reader, since: Any, size: int, name: str, content_hash: str) -> None:
        spec = reader.spec
        self.reader, self.size, self.name = reader, size, name
        self.content_hash = content_hash
        self.header = spec.columns
        rel = _relation(spec)
        mark = rel.c[spec.watermark_column]
        query = select(*[rel.c[c] for c in spec.columns]).order_by(mark, rel.c[spec.key_column])
        if since is not None:
            query = query.where(mark >= since)
        shown = make_url(spec.url).render_as_string(hide_password=True)
        self.read_as = {
            "source": f"{shown}, {spec.reads()}",
            "lines": "all (full sync)"
            if since is None
            else f"with {spec.watermark_column} >= {since}",
        }
        query = query.execution_options(stream_results=True, max_row_buffer=size)
        with reader.guard("the query"):
            self._result = reader.conn.execute(query)
            first = self._result.fetchmany(size)
        self._first = RowChunk(self._frame(first), 1)
        self.complete = len(first) < size
        if self.complete:
            self._result.close()
        self._used = False

    @property
    def empty(self) -> bool:
        return self._first.rows.empty

    def _frame(self, rows: Sequence[Any]) -> pd.DataFrame:
        cells = [tuple(_plain(v) for v in row) for row in rows]
        frame = pd.DataFrame(cells, columns=self.header, dtype=object)
        for column in frame.columns:  # text columns as text: parsed whole, not cell by cell
            values = frame[column]
            if values.map(lambda v: v is None or isinstance(v, str)).all():
                frame[column] = values.astype("string")
        return frame

    def chunks(self, size: int) -> Iterator[RowChunk]:
        if self._used:  # a second pass (the date order): possible when one chunk held all
            if self.complete:
                yield self._first
                return
            raise ImportRejected(
                f"{self.name}: the first {self.size:,} lines' dates cannot tell day from month; "
                "give the query a date or timestamp column (or ISO text, YYYY-MM-DD)"
            )
        self._used = True
        yield self._first
        row = 1 + len(self._first.rows)
        while not self.complete:
            with self.reader.guard("reading the lines"):
                batch = self._result.fetchmany(self.size)
            if not batch:
                break
            yield RowChunk(self._frame(batch), row)
            row += len(batch)
        self._result.close()

    def keys(self) -> Iterator[pd.Series]:
        """Every line key at the source, in chunks, as text (as stored here)."""
        spec = self.reader.spec
        rel = _relation(spec)
        with self.reader.guard("reading the line keys"):
            result = self.reader.conn.execute(
                select(rel.c[spec.key_column]).execution_options(
                    stream_results=True, max_row_buffer=self.size
                )
            )
            while batch := result.fetchmany(self.size):
                yield line_keys(pd.Series([_plain(r[0]) for r in batch], dtype=object))
            result.close()


_SYNC_KEYS = Table(
    "custseg_sync_keys",
    MetaData(),
    Column("source_key", String(128)),
    prefixes=["TEMPORARY"],
)


class SyncWriter:
    """A `LineWriter` for `import_rows`: replaces lines by their source key, leaves unchanged
    ones, removes those gone from the source, and moves the watermark; all in the import's
    transaction."""

    def __init__(self, rows: SourceRows, source_id: int) -> None:
        self.rows = rows
        self.spec = rows.reader.spec
        self.source_id = source_id
        self.read = self.new = self.changed = self.unchanged = self.removed = 0
        self.until: Any = None
        self._locked = False

    def lock(self, conn: Connection) -> None:
        """One sync of a source at a time (PostgreSQL: a row lock until commit)."""
        if not self._locked:
            conn.execute(
                select(Source.id).where(Source.id == self.source_id).with_for_update()
            ).all()
            self._locked = True

    def _stored(self, conn: Connection, keys: list[str]) -> pd.DataFrame:
        """The stored lines of this source with these keys (earlier syncs' and this one's)."""
        t = Transaction
        columns = [t.id, t.batch_id, t.source_key, *[getattr(t, c) for c in NORMALIZED_COLUMNS]]
        if conn.dialect.name == "postgresql":  # one array parameter: no list of thousands
            slices = [t.source_key == any_(bindparam("keys", keys, type_=ARRAY(String)))]
        else:
            slices = [
                t.source_key.in_(keys[start : start + KEY_SLICE])
                for start in range(0, len(keys), KEY_SLICE)
            ]
        rows = [
            row
            for where in slices
            for row in conn.execute(select(*columns).where(t.source_id == self.source_id, where))
        ]
        return pd.DataFrame(rows, columns=["id", "batch_id", "source_key", *NORMALIZED_COLUMNS])

    def write(self, conn: Connection, batch_id: int, chunk: RowChunk, lines: pd.DataFrame) -> int:
        self.lock(conn)
        name, spec = self.rows.name, self.spec
        self.read += len(chunk.rows)
        marks = chunk.rows[spec.watermark_column]
        empty = np.flatnonzero(marks.isna().to_numpy())
        if len(empty):
            raise ImportRejected(
                f"{name}, row {chunk.first_row + int(empty[0])}: the watermark column "
                f"{spec.watermark_column} is empty; every line needs one (e.g. "
                "COALESCE(updated_at, created_at) in a query)"
            )
        if len(marks):
            self.until = marks.iloc[-1]
        positions = lines.attrs.get("rows")
        if positions is None or len(positions) != len(lines):
            raise RuntimeError("the importer did not say which rows its lines came from")
        keys = line_keys(chunk.rows[spec.key_column].iloc[positions]).reset_index(drop=True)
        problem = key_problem(keys)
        if problem is not None:
            i, what = problem
            raise ImportRejected(
                f"{name}, row {chunk.first_row + int(positions[i])}: the line key "
                f"{spec.key_column} {what}"
            )
        pulled = lines.reset_index(drop=True).assign(source_key=keys.to_numpy())
        stored = self._stored(conn, keys.tolist())
        if not stored.empty and (stored["batch_id"] == batch_id).any():
            twice = stored.loc[stored["batch_id"] == batch_id, "source_key"].iloc[0]
            raise ImportRejected(
                f"{name}: the line key {spec.key_column} {twice!r} appears twice: it is not "
                "a line key (the source's order-line id, unique)"
            )
        changes = compare_lines(pulled, stored)
        t = Transaction
        ids = changes.replaced_ids.tolist()
        for start in range(0, len(ids), KEY_SLICE):
            conn.execute(delete(t).where(t.id.in_(ids[start : start + KEY_SLICE])))
        written = pulled[changes.new | changes.changed].assign(source_id=self.source_id)
        write_lines(conn, batch_id, written)
        self.new += int(changes.new.sum())
        self.changed += int(changes.changed.sum())
        self.unchanged += int(changes.unchanged.sum())
        return len(written)

    def prune(self, conn: Connection) -> int:
        """Remove the lines whose key the source no longer has; how many."""
        self.lock(conn)
        t = Transaction
        stored = conn.execute(
            select(func.count()).select_from(t).where(t.source_id == self.source_id)
        ).scalar_one()
        if not stored:
            return 0
        keys = _SYNC_KEYS
        conn.execute(text("DROP TABLE IF EXISTS custseg_sync_keys"))
        keys.create(conn)
        total = 0
        for part in self.rows.keys():
            bulk_insert(conn, keys, pd.DataFrame({"source_key": part}))
            total += len(part)
        if total == 0:
            raise ImportRejected(
                f"{self.rows.name}: the source returned no lines at all; nothing was removed "
                f"(if the shop really has none, remove the source: custseg source remove "
                f"{self.spec.name})"
            )
        conn.execute(text("CREATE INDEX ix_custseg_sync_keys ON custseg_sync_keys (source_key)"))
        gone = conn.execute(
            delete(t).where(
                t.source_id == self.source_id,
                t.source_key.is_not(None),
                ~exists().where(keys.c.source_key == t.source_key),
            )
        ).rowcount
        keys.drop(conn)
        return int(gone or 0)

    def finish(self, conn: Connection, batch_id: int, report: ImportReport) -> None:
        self.removed = self.prune(conn)
        conn.execute(
            update(ImportBatch).where(ImportBatch.id == batch_id).values(source_id=self.source_id)
        )
        if self.until is not None:
            conn.execute(
                update(Source)
                .where(Source.id == self.source_id)
                .values(watermark=encode_watermark(self.until))
            )
        report.replaced_lines = self.changed
        report.unchanged_lines = self.unchanged
        report.removed_lines = self.removed
        if not (self.new or self.changed or self.removed):
            raise _NothingChanged


@dataclass
class SyncOutcome:
    """How a sync ended (a failed one raises SyncFailed)."""

    source: str
    sync_id: int
    status: SyncStatus
    full: bool
    since: str | None
    until: str | None
    lines_read: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    removed: int = 0
    batch_id: int | None = None
    report: ImportReport | None = None
    duration_s: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def changed_data(self) -> bool:
        return self.status == SyncStatus.DONE

    def line(self) -> str:
        """One line: what the sync did."""
        what = "full sync" if self.full or self.since is None else f"since {self.since}"
        if self.status == SyncStatus.UNCHANGED:
            return (
                f"source {self.source}: sync {self.sync_id} ({what}): no change "
                f"({self.lines_read:,} lines read)"
            )
        batch = f", batch {self.batch_id}" if self.batch_id is not None else ""
        return (
            f"source {self.source}: sync {self.sync_id} ({what}): {self.lines_read:,} lines "
            f"read, {self.new:,} new, {self.changed:,} changed, {self.unchanged:,} unchanged, "
            f"{self.removed:,} removed{batch}"
        )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)[:64]


def _record(engine: Engine, sync_id: int, status: SyncStatus, **values: Any) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(SourceSync)
            .where(SourceSync.id == sync_id)
            .values(status=status, finished_at=utcnow(), **values)
        )


def sync(
    engine: Engine,
    name: str,
    *,
    full: bool = False,
    trigger: Trigger = Trigger.CLI,
    requested_by: str | None = None,
    chunk_lines: int = CHUNK_LINES,
    progress: Progress | None = None,
) -> SyncOutcome:
    """Sync one source (all or nothing). Raises SyncFailed (one line, or the invalid values
    found) when it cannot; the history records every sync either way."""
    started = time.perf_counter()
    row = get_source(engine, name)
    spec = SourceSpec.of(row)
    since = None if full or row.watermark is None else decode_watermark(row.watermark)
    with engine.begin() as conn:
        sync_id = int(
            conn.execute(
                insert(SourceSync)
                .values(
                    source_id=row.id,
                    status=SyncStatus.RUNNING,
                    full=full,
                    trigger=trigger,
                    requested_by=requested_by,
                    started_at=utcnow(),
                    lines_read=0,
                    lines_new=0,
                    lines_changed=0,
                    lines_removed=0,
                    since=_text(since),
                )
                .returning(SourceSync.id)
            ).scalar_one()
        )
    label = f"source {name}, sync {sync_id}"
    digest = hashlib.sha256(f"source {row.id} sync {sync_id}".encode()).hexdigest()
    outcome = SyncOutcome(name, sync_id, SyncStatus.DONE, full, _text(since), None)
    writer: SyncWriter | None = None
    try:
        with reading(spec) as reader:
            rows = SourceRows(reader, since, chunk_lines, label, digest)
            writer = SyncWriter(rows, row.id)
            if rows.empty:  # nothing at or after the watermark: look for deleted lines only
                with engine.begin() as conn:
                    writer.removed = writer.prune(conn)
                if not writer.removed:
                    raise _NothingChanged
            else:
                outcome.report = import_rows(
                    engine,
                    rows,
                    layout=NORMALIZED,
                    mapping=spec.mapping,
                    chunk_lines=chunk_lines,
                    progress=progress,
                    created_by=requested_by,
                    writer=writer,
                )
                outcome.batch_id = outcome.report.batch_id
    except _NothingChanged:
        outcome.status = SyncStatus.UNCHANGED
    except (SourceError, ImportRejected) as exc:
        _record(engine, sync_id, SyncStatus.FAILED, error=str(exc)[:4000], **_counts(writer))
        raise SyncFailed(str(exc)) from None
    except IntegrityError as exc:  # another sync of this source wrote the same keys first
        message = f"{label}: a line key was written meanwhile (another sync?): try again"
        _record(engine, sync_id, SyncStatus.FAILED, error=f"{message} ({_one_line(exc, None)})")
        raise SyncFailed(message) from None
    except BaseException as exc:
        _record(engine, sync_id, SyncStatus.FAILED, error=f"{type(exc).__name__}: {exc}"[:4000])
        raise
    assert writer is not None
    outcome.lines_read = writer.read
    outcome.new, outcome.changed = writer.new, writer.changed
    outcome.unchanged, outcome.removed = writer.unchanged, writer.removed
    outcome.until = _text(writer.until) or outcome.since
    with engine.begin() as conn:
        values: dict[str, Any] = {"last_synced_at": utcnow()}
        if outcome.status == SyncStatus.UNCHANGED and writer.until is not None:
            values["watermark"] = encode_watermark(writer.until)  # lines touched, not changed
        conn.execute(update(Source).where(Source.id == row.id).values(**values))
    _record(
        engine,
        sync_id,
        outcome.status,
        batch_id=outcome.batch_id,
        until=outcome.until,
        **_counts(writer),
    )
    outcome.duration_s = round(time.perf_counter() - started, 3)
    return outcome


def _counts(writer: SyncWriter | None) -> dict[str, int]:
    if writer is None:
        return {}
    return {
        "lines_read": writer.read,
        "lines_new": writer.new,
        "lines_changed": writer.changed,
        "lines_removed": writer.removed,
    }


def source_names(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(Source.name).order_by(Source.name)).scalars())


@dataclass
class SyncRun:
    """Syncs of several sources: how each ended, and the refit queued when data changed."""

    outcomes: list[SyncOutcome] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (source, error)
    refit_job_id: int | None = None


def sync_sources(
    engine: Engine,
    names: Sequence[str] | None = None,
    *,
    full: bool = False,
    refit: bool = True,
    trigger: Trigger = Trigger.CLI,
    requested_by: str | None = None,
    on_source: Callable[[str], None] | None = None,
) -> SyncRun:
    """Sync the named sources (default: all), each on its own (one failing leaves the others
    synced); then queue a refit if any changed the data."""
    run = SyncRun()
    for name in names if names is not None else source_names(engine):
        if on_source:
            on_source(name)
        try:
            run.outcomes.append(
                sync(engine, name, full=full, trigger=trigger, requested_by=requested_by)
            )
        except (SyncFailed, NoSuchSource) as exc:
            run.failures.append((name, str(exc)))
    if refit and any(o.changed_data for o in run.outcomes):
        run.refit_job_id = queue_refit(engine, trigger, requested_by).id
    return run


def sync_job(engine: Engine, settings: Any, job: Job, on_stage: Callable[[str], None]) -> JobResult:
    """The `sync` job kind: params `source` (a name; none: every source) and `full`. Queues a
    refit when a sync changed the data (the scheduled refit right behind it is that one)."""
    name, full = job.params.get("source"), job.params.get("full", False)
    if name is not None and not isinstance(name, str):
        return JobResult(JobStatus.FAILED, error=f"job parameter source={name!r}: a source name")
    if not isinstance(full, bool):
        return JobResult(JobStatus.FAILED, error=f"job parameter full={full!r}: true or false")
    names = [name] if name else source_names(engine)
    if not names:
        return JobResult(JobStatus.SKIPPED, message="no database source to sync")
    run = sync_sources(
        engine,
        names,
        full=full,
        trigger=job.trigger,
        requested_by=job.requested_by,
        on_source=lambda source: on_stage(f"syncing {source}"[:64]),
    )
    lines = [o.line() for o in run.outcomes]
    if run.refit_job_id is not None:
        lines.append(f"refit queued (job {run.refit_job_id})")
    details = {"sources": len(names), "refit_job_id": run.refit_job_id}
    if run.failures:
        errors = [f"source {n}: {e}" if not e.startswith("source ") else e for n, e in run.failures]
        return JobResult(
            JobStatus.FAILED,
            message="; ".join(lines) or None,
            error="\n".join(errors),
            details=details,
        )
    if not any(o.changed_data for o in run.outcomes):
        return JobResult(JobStatus.SKIPPED, message="; ".join(lines), details=details)
    return JobResult(JobStatus.DONE, message="; ".join(lines), details=details)


@dataclass(frozen=True)
class SyncInfo:
    """One sync, as the history shows it."""

    id: int
    source: str
    status: str
    full: bool
    trigger: str
    requested_by: str | None
    started_at: datetime
    finished_at: datetime | None
    lines_read: int
    lines_new: int
    lines_changed: int
    lines_removed: int
    batch_id: int | None
    since: str | None
    until: str | None
    error: str | None


def sync_history(engine: Engine, limit: int = 20) -> list[SyncInfo]:
    """The latest syncs of every source, newest first."""
    s = SourceSync
    with Session(engine, expire_on_commit=False) as db:
        rows = db.execute(
            select(s, Source.name)
            .join(Source, Source.id == s.source_id)
            .order_by(s.id.desc())
            .limit(limit)
        ).all()
    return [
        SyncInfo(
            id=r[0].id,
            source=r.name,
            status=str(r[0].status),
            full=r[0].full,
            trigger=str(r[0].trigger),
            requested_by=r[0].requested_by,
            started_at=r[0].started_at,
            finished_at=r[0].finished_at,
            lines_read=r[0].lines_read,
            lines_new=r[0].lines_new,
            lines_changed=r[0].lines_changed,
            lines_removed=r[0].lines_removed,
            batch_id=r[0].batch_id,
            since=r[0].since,
            until=r[0].until,
            error=r[0].error,
        )
        for r in rows
    ]
