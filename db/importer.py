"""Import a transaction file into the database: streamed, validated, all or nothing.

The file is read in chunks (bounded memory), each chunk validated by
`analytics.ingest.normalize_chunk`, and written inside one database transaction: COPY on
PostgreSQL, executemany on SQLite. Any failure rolls the whole import back.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, func, insert, select, update

from analytics.ingest import (
    NORMALIZED,
    ONLINE_RETAIL,
    ChunkResult,
    LayoutError,
    detect_layout,
    drop_seen_duplicates,
    normalize_chunk,
    resolve_columns,
)
from db.bulk import bulk_insert
from db.models import ImportBatch, Transaction

COLUMNS = ("batch_id", "customer_id", "order_id", "ordered_at", "amount", "category", "country")
Progress = Callable[[int], None]


class ImportRejected(Exception):
    """The file was not imported; nothing was written. `errors` name row, column and value."""

    def __init__(self, message: str, errors: list[str] | None = None, error_count: int = 0):
        super().__init__(message)
        self.message = message
        self.errors = errors or []
        self.error_count = error_count or len(self.errors)

    def __str__(self) -> str:
        lines = [self.message, *self.errors]
        if self.error_count > len(self.errors):
            lines.append(f"... and {self.error_count - len(self.errors)} more")
        return "\n".join(lines)


@dataclass
class ImportReport:
    file_name: str
    layout: str
    lines_read: int = 0
    lines_imported: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    no_customer_id_lines: int = 0
    no_customer_id_revenue: float = 0.0
    zero_amount_lines: int = 0
    orders: int = 0
    customers: int = 0
    first_ordered_at: datetime | None = None
    last_ordered_at: datetime | None = None
    already_imported: bool = False
    batch_id: int | None = None
    errors: list[str] = field(default_factory=list)
    error_count: int = 0
    duration_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("first_ordered_at", "last_ordered_at"):
            if data[key] is not None:
                data[key] = data[key].isoformat(sep=" ")
        return data

    def summary(self) -> str:
        """Human-readable report, as printed by `custseg import` and shown in the admin page."""
        if self.already_imported:
            return f"{self.file_name}: already imported (batch {self.batch_id}); nothing added."
        skipped = ", ".join(f"{k.replace('_', ' ')}: {v:,}" for k, v in self.skipped.items() if v)
        first = self.first_ordered_at.date() if self.first_ordered_at else "-"
        last = self.last_ordered_at.date() if self.last_ordered_at else "-"
        lines = [
            f"Imported {self.file_name} ({self.layout} layout) as batch {self.batch_id} "
            f"in {self.duration_s:.1f} s",
            f"  lines read:     {self.lines_read:,}",
            f"  lines imported: {self.lines_imported:,}",
            f"  lines skipped:  {sum(self.skipped.values()):,}"
            + (f" ({skipped})" if skipped else ""),
            f"  without customer id: {self.no_customer_id_lines:,} lines, revenue "
            f"{self.no_customer_id_revenue:,.2f} (kept, left out of every metric)",
            f"  orders: {self.orders:,}   customers: {self.customers:,}   dates: {first} .. {last}",
        ]
        if self.errors:
            lines.append(f"  invalid lines skipped ({self.error_count:,} errors), first ones:")
            lines += [f"    {e}" for e in self.errors]
        return "\n".join(lines)


@dataclass
class _Prescan:
    content_hash: str
    lines: int
    header: list[str]


def _prescan(path: Path, encoding: str) -> _Prescan:
    """Hash the file, count its lines, and check its encoding and last line, in one pass."""
    name = path.name
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    newlines = 0
    size = 0
    tail = b""
    first_line = b""
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                row = newlines + block[: exc.start].count(b"\n") + 1
                bad = block[exc.start : exc.start + 4]
                raise ImportRejected(
                    f"{name}, row {row}: not valid {encoding} (bytes {bad!r}); save the file "
                    f"as {encoding} or pass --encoding"
                ) from None
            if b"\x00" in block:  # valid utf-8, but PostgreSQL text cannot hold it
                row = newlines + block[: block.index(b"\x00")].count(b"\n") + 1
                raise ImportRejected(
                    f"{name}, row {row}: contains a NUL byte; this looks like a binary file, "
                    "not a CSV text file"
                )
            if not first_line:
                first_line = block.split(b"\n", 1)[0]
            newlines += block.count(b"\n")
            size += len(block)
            tail = (tail + block)[-(1 << 16) :]
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise ImportRejected(
            f"{name}, row {newlines + 1}: the file ends inside a multi-byte character "
            f"(not valid {encoding}); the file looks truncated"
        ) from None
    if size == 0:
        raise ImportRejected(f"{name}: the file is empty")
    text_header = first_line.decode(encoding).lstrip("\ufeff").rstrip("\r")
    header = next(csv.reader([text_header]), [])
    if not tail.endswith(b"\n"):
        last = tail.rsplit(b"\n", 1)[-1].decode(encoding, errors="replace").rstrip("\r")
        fields = next(csv.reader([last]), [])
        if newlines and last and len(fields) < len(header):
            raise ImportRejected(
                f"{name}, row {newlines + 1}: truncated line: expected {len(header)} fields, "
                f"found {len(fields)} ({last[:60]!r}); the file looks cut off"
            )
    lines = newlines + (0 if tail.endswith(b"\n") else 1)
    if lines <= 1:
        raise ImportRejected(f"{name}: no data lines after the header")
    return _Prescan(digest.hexdigest(), lines, header)


def _chunks(
    path: Path, columns: Mapping[str, str], encoding: str, size: int
) -> Iterator[pd.DataFrame]:
    # Every column is parsed (no usecols): only then does the parser refuse a line with more
    # fields than the header (an unquoted comma), instead of silently dropping the rest.
    used = list(dict.fromkeys(columns.values()))
    for chunk in pd.read_csv(
        path,
        dtype=str,
        keep_default_na=False,
        na_filter=False,
        skip_blank_lines=False,
        chunksize=size,
        encoding=encoding,
        encoding_errors="strict",
        skipinitialspace=False,
    ):
        yield chunk[used]


def _parser_error(exc: Exception) -> str:
    """pandas' tokenizer message, in the words of the rest of the import errors."""
    text = str(exc).strip()
    found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", text)
    if found:
        expected, line, saw = found.groups()
        return (
            f"row {line} has {saw} fields, the header has {expected} "
            "(a value with a comma needs double quotes)"
        )
    return text.splitlines()[0] if text else type(exc).__name__


def write_lines(conn: Connection, batch_id: int, lines: pd.DataFrame) -> None:
    """Append normalized lines to `transactions` in the caller's transaction."""
    if lines.empty:
        return
    frame = lines.loc[:, list(COLUMNS[1:])].copy()
    frame.insert(0, "batch_id", batch_id)
    bulk_insert(conn, Transaction.__table__, frame)  # type: ignore[arg-type]


def parse_mapping(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """`["customer_id=Customer", ...]` -> {"customer_id": "Customer"}."""
    mapping: dict[str, str] = {}
    for item in items:
        target, sep, source = item.partition("=")
        if not sep or not target.strip() or not source.strip():
            raise ImportRejected(f"--map {item!r}: expected target=source, e.g. amount=Total")
        mapping[target.strip()] = source.strip()
    return mapping


def import_file(
    engine: Engine,
    path: str | Path,
    *,
    layout: str | None = None,
    mapping: Mapping[str, str] | None = None,
    skip_invalid: bool = False,
    encoding: str = "utf-8",
    chunk_lines: int = 100_000,
    max_errors: int = 20,
    progress: Progress | None = None,
    created_by: str | None = None,
    display_name: str | None = None,
) -> ImportReport:
    """Import one file. Raises ImportRejected (nothing written) when it cannot be imported."""
    started = time.perf_counter()
    path = Path(path)
    name = display_name or path.name
    if not path.is_file():
        raise ImportRejected(f"{name}: no such file")
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ImportRejected(f"unknown encoding {encoding!r}") from None
    scan = _prescan(path, encoding)
    try:
        if layout is None:
            layout = NORMALIZED if mapping else detect_layout(scan.header)
        columns = resolve_columns(scan.header, layout, mapping)
    except LayoutError as exc:
        raise ImportRejected(f"{name}: {exc}") from None

    with engine.connect() as conn:
        existing = conn.execute(
            select(ImportBatch.id).where(ImportBatch.content_hash == scan.content_hash)
        ).scalar_one_or_none()
    if existing is not None:
        return ImportReport(
            name,
            layout,
            lines_read=scan.lines - 1,
            already_imported=True,
            batch_id=existing,
            duration_s=time.perf_counter() - started,
        )

    report = ImportReport(name, layout)
    skipped = {"duplicate_lines": 0, "invalid_lines": 0, "blank_lines": 0}
    seen: set[int] = set()
    errors: list[str] = []
    error_count = 0
    with engine.begin() as conn:
        batch_id = conn.execute(
            insert(ImportBatch)
            .values(
                file_name=name[:500],
                content_hash=scan.content_hash,
                layout=layout,
                status="importing",
                report={},
                created_by=created_by,
            )
            .returning(ImportBatch.id)
        ).scalar_one()
        row = 2
        try:
            for raw in _chunks(path, columns, encoding, chunk_lines):
                result: ChunkResult = normalize_chunk(raw, layout, columns, row, max_errors)
                if layout == ONLINE_RETAIL:
                    result = drop_seen_duplicates(result, seen)
                row += len(raw)
                report.lines_read += len(raw)
                error_count += result.error_count
                room = max_errors - len(errors)
                errors += [e.describe(name) for e in result.errors[:room]]
                skipped["duplicate_lines"] += result.duplicates
                skipped["invalid_lines"] += result.invalid_lines
                skipped["blank_lines"] += result.blank_lines
                report.no_customer_id_lines += result.no_customer_lines
                report.no_customer_id_revenue += result.no_customer_revenue
                report.zero_amount_lines += result.zero_amount_lines
                if error_count == 0 or skip_invalid:
                    write_lines(conn, batch_id, result.lines)
                    report.lines_imported += len(result.lines)
                if progress:
                    progress(len(raw))
        except pd.errors.ParserError as exc:
            raise ImportRejected(f"{name}: not a readable CSV file: {_parser_error(exc)}") from None
        except UnicodeDecodeError as exc:
            raise ImportRejected(f"{name}: not valid {encoding}: {exc}") from None
        except ValueError as exc:  # e.g. usecols not found after a header change
            raise ImportRejected(f"{name}: {exc}") from None
        if error_count and not skip_invalid:
            raise ImportRejected(
                f"{name}: rejected, {error_count:,} invalid value(s) in "
                f"{skipped['invalid_lines']:,} line(s); nothing was imported. Fix the file, or "
                "pass --skip-invalid to import the valid lines only.",
                errors,
                error_count,
            )
        if report.lines_imported == 0:
            raise ImportRejected(f"{name}: no valid lines to import")
        t = Transaction
        stats = conn.execute(
            select(
                func.count(func.distinct(t.order_id)),
                func.count(func.distinct(t.customer_id)),
                func.min(t.ordered_at),
                func.max(t.ordered_at),
            ).where(t.batch_id == batch_id)
        ).one()
        report.orders, report.customers = int(stats[0]), int(stats[1])
        report.first_ordered_at, report.last_ordered_at = stats[2], stats[3]
        if isinstance(report.first_ordered_at, str):  # raw SQLite text
            report.first_ordered_at = datetime.fromisoformat(report.first_ordered_at)
            report.last_ordered_at = datetime.fromisoformat(str(report.last_ordered_at))
        report.skipped = skipped
        report.errors = errors
        report.error_count = error_count
        report.batch_id = batch_id
        report.no_customer_id_revenue = round(report.no_customer_id_revenue, 2)
        report.duration_s = round(time.perf_counter() - started, 3)
        conn.execute(
            update(ImportBatch)
            .where(ImportBatch.id == batch_id)
            .values(
                status="done",
                lines_read=report.lines_read,
                lines_imported=report.lines_imported,
                orders=report.orders,
                customers=report.customers,
                first_ordered_at=report.first_ordered_at,
                last_ordered_at=report.last_ordered_at,
                report=report.as_dict(),
            )
        )
    return report
