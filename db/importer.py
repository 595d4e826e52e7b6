"""Import order lines into the database: streamed, validated, all or nothing.

A source (a CSV or Excel file here; a shop database later) gives its header and its rows in
chunks. `import_rows` decides how the source writes numbers and dates (once, for all of it),
validates and normalizes each chunk with `analytics.ingest.normalize_chunk`, and writes the
lines inside one database transaction: COPY on PostgreSQL, executemany on SQLite. Any failure
rolls the whole import back. Memory stays bounded by the chunk size.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import itertools
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, func, insert, select, update

from analytics.ingest import (
    DAYFIRST,
    MONTHFIRST,
    Carry,
    ChunkResult,
    Formats,
    date_order_evidence,
    day_month_dates,
    decide_decimal,
    drop_seen_duplicates,
    normalize_chunk,
    number_evidence,
    typed_text,
)
from analytics.layouts import (
    DELIMITERS,
    NORMALIZED,
    Layout,
    LayoutError,
    detect_delimiter,
    detect_layout,
    get_layout,
    resolve_columns,
    show_delimiter,
    split_header,
    unknown_header,
)
from db import campaigns
from db.bulk import bulk_insert
from db.models import ImportBatch, Transaction

COLUMNS = ("batch_id", "customer_id", "order_id", "ordered_at", "amount", "category", "country")
SOURCE_COLUMNS = ("source_id", "source_key")
EXCEL_SUFFIXES = (".xlsx", ".xlsm")
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
    refund_lines: int = 0
    no_customer_id_lines: int = 0
    no_customer_id_revenue: float = 0.0
    zero_amount_lines: int = 0
    orders: int = 0
    customers: int = 0
    first_ordered_at: datetime | None = None
    last_ordered_at: datetime | None = None
    already_imported: bool = False
    batch_id: int | None = None
    # A database sync (db/sources.py): pulled lines that replaced an earlier version of
    # themselves or were the same as stored, and lines removed as gone from the source.
    replaced_lines: int = 0
    unchanged_lines: int = 0
    removed_lines: int = 0
    read_as: dict[str, str] = field(default_factory=dict)
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
        ]
        if self.read_as:
            lines.append("  read as: " + "; ".join(f"{k} {v}" for k, v in self.read_as.items()))
        lines += [
            f"  lines read:     {self.lines_read:,}",
            f"  lines imported: {self.lines_imported:,}"
            + (f" (with {self.refund_lines:,} refund lines)" if self.refund_lines else ""),
            f"  lines skipped:  {sum(self.skipped.values()):,}"
            + (f" ({skipped})" if skipped else ""),
        ]
        if self.replaced_lines or self.unchanged_lines or self.removed_lines:
            lines.append(
                f"  of the lines read: {self.replaced_lines:,} replaced an earlier version, "
                f"{self.unchanged_lines:,} were unchanged (not written); "
                f"{self.removed_lines:,} lines removed (gone from the source)"
            )
        lines += [
            f"  without customer id: {self.no_customer_id_lines:,} lines, revenue "
            f"{self.no_customer_id_revenue:,.2f} (kept, left out of every metric)",
            f"  orders: {self.orders:,}   customers: {self.customers:,}   dates: {first} .. {last}",
        ]
        if self.errors:
            lines.append(f"  invalid lines skipped ({self.error_count:,} errors), first ones:")
            lines += [f"    {e}" for e in self.errors]
        return "\n".join(lines)


# --- sources ---------------------------------------------------------------------------


@dataclass
class RowChunk:
    """Rows of a source under its header: text cells (CSV) or typed ones (spreadsheets,
    databases). `first_row`: the row number of the first one (the header is row 1).
    `field_counts`: for text sources, the fields found on each row (0 for a blank line)."""

    rows: pd.DataFrame
    first_row: int
    field_counts: np.ndarray | None = None


class RowSource(Protocol):
    """What `import_rows` reads. `chunks` may be called more than once (a second pass decides
    the date order when the first rows cannot)."""

    name: str
    header: list[str]
    header_line: str | None  # the header as written (text sources): for delimiter hints
    delimiter: str | None
    width: int | None  # fields the header has, when rows are counted
    content_hash: str
    rows_hint: int | None  # rows after the header, when known (progress)
    read_as: dict[str, str]
    shape_hint: str  # why a row can have another number of fields than the header

    def chunks(self, size: int) -> Iterator[RowChunk]: ...


class LineWriter(Protocol):
    """Writes a source's valid lines in place of appending them, inside the import's
    transaction: a database sync replaces lines by their line key (db/sources.py).

    `write` gets each chunk's rows and its valid lines (`lines.attrs["rows"]`: the position of
    each line's row in the chunk) and returns how many lines it wrote; `finish` runs before the
    batch is recorded and may raise to roll the whole import back."""

    def write(
        self, conn: Connection, batch_id: int, chunk: RowChunk, lines: pd.DataFrame
    ) -> int: ...

    def finish(self, conn: Connection, batch_id: int, report: ImportReport) -> None: ...


@dataclass
class _Prescan:
    content_hash: str
    lines: int
    header_line: str
    last_line: str | None  # the last line when the file does not end with a newline


OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # Excel 97-2003 (.xls) and other OLE files


def _is_xlsx(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return "xl/workbook.xml" in archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def _prescan(path: Path, name: str, encoding: str) -> _Prescan:
    """Hash the file, count its lines, and check its encoding and last line, in one pass."""
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
                hint = f"save the file as {encoding} or pass --encoding"
                if size == 0 and block.startswith(OLE2_MAGIC):
                    hint = "this is an Excel 97-2003 workbook (.xls): save it as .xlsx or CSV"
                elif encoding.lower().replace("-", "") in ("utf8", "utf8sig"):
                    try:
                        block.decode("cp1252")
                        hint += " (a CSV saved by Excel on Windows is often --encoding cp1252)"
                    except UnicodeDecodeError:
                        pass
                raise ImportRejected(
                    f"{name}, row {row}: not valid {encoding} (bytes {bad!r}); {hint}"
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
    header_line = first_line.decode(encoding).lstrip("\ufeff").rstrip("\r")
    last = None
    if not tail.endswith(b"\n"):
        last = tail.rsplit(b"\n", 1)[-1].decode(encoding, errors="replace").rstrip("\r")
    lines = newlines + (0 if tail.endswith(b"\n") else 1)
    if lines <= 1:
        raise ImportRejected(f"{name}: no data lines after the header")
    return _Prescan(digest.hexdigest(), lines, header_line, last)


class CsvSource(RowSource):
    """A delimited text file. Each chunk's rows are counted — fields per line with numpy where
    the chunk has no quotes, by Python's csv module where it has — and the same text is parsed
    by pandas' C parser, which builds the columns fast (alone it pads short rows and, when
    every row is one field longer than the header, silently takes the first field as an
    index). Rows with a wrong count become empty placeholders, so no value can land under
    another column."""

    shape_hint = "a value containing the delimiter needs double quotes"

    def __init__(
        self,
        path: Path,
        name: str,
        *,
        encoding: str = "utf-8",
        delimiter: str | None = None,
        layout: str | None = None,
    ) -> None:
        self.path, self.name = path, name
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ImportRejected(f"unknown encoding {encoding!r}") from None
        if _is_xlsx(path):
            raise ImportRejected(
                f"{name}: this is an Excel workbook (.xlsx), not a CSV text file: give it its "
                ".xlsx name to import its first sheet, or save it as CSV"
            )
        scan = _prescan(path, name, encoding)
        self.content_hash = scan.content_hash
        self.rows_hint = scan.lines - 1
        self.header_line = scan.header_line
        detected = delimiter is None
        if delimiter is None:
            delimiter = detect_delimiter(scan.header_line, layout)
        self.delimiter = self._sep = delimiter
        self.header = split_header(scan.header_line, delimiter)
        self.width = len(self.header)
        self._encoding = "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding
        self.read_as = {
            "delimiter": f"'{show_delimiter(delimiter)}'" + (" (detected)" if detected else ""),
            "encoding": encoding,
        }
        if scan.last_line:
            fields = next(csv.reader([scan.last_line], delimiter=delimiter), [])
            if scan.lines > 1 and len(fields) < self.width:
                raise ImportRejected(
                    f"{name}, row {scan.lines}: truncated line: expected {self.width} fields, "
                    f"found {len(fields)} ({scan.last_line[:60]!r}); the file looks cut off"
                )

    def chunks(self, size: int) -> Iterator[RowChunk]:
        with self.path.open(encoding=self._encoding, newline="") as fh:
            row = 2
            line = 1
            try:
                next(csv.reader(fh, delimiter=self._sep))  # the header
                while lines := list(itertools.islice(fh, size)):
                    text = "".join(lines)
                    if '"' in text:
                        counts, text, used = self._quoted(lines, fh, line)
                    else:
                        counts, used = self._plain(lines, text), len(lines)
                    frame = self._frame(text, counts, row)
                    yield RowChunk(frame, row, counts)
                    row += len(counts)
                    line += used
            except csv.Error as exc:
                raise ImportRejected(
                    f"{self.name}, near line {line}: not a readable CSV line: {exc}"
                ) from None

    def _plain(self, lines: list[str], text: str) -> np.ndarray:
        """Fields per line of lines without quotes: delimiters + 1 (0 for an empty line)."""
        data = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        lengths = np.fromiter(map(len, lines), dtype=np.int64, count=len(lines))
        ends = np.cumsum(lengths)
        seps = np.flatnonzero(data == ord(self._sep))
        counts = np.bincount(np.searchsorted(ends, seps, side="right"), minlength=len(lines))
        counts = counts[: len(lines)] + 1
        last = data[ends - 1]
        newline = ((last == 10) | (last == 13)).astype(np.int64)
        crlf = (lengths >= 2) & (last == 10) & (data[np.maximum(ends - 2, 0)] == 13)
        counts[lengths - newline - crlf == 0] = 0
        return counts.astype(np.int64)

    def _quoted(
        self, lines: list[str], fh: Iterator[str], line: int
    ) -> tuple[np.ndarray, str, int]:
        """Fields per record of lines with quotes, read by the csv module; a record whose
        quoted value runs past the last line takes lines from the file until it ends."""
        extra: list[str] = []

        def more() -> Iterator[str]:
            for next_line in fh:
                extra.append(next_line)
                yield next_line

        reader = csv.reader(itertools.chain(lines, more()), delimiter=self._sep)
        counts: list[int] = []
        while reader.line_num < len(lines):
            counts.append(len(next(reader)))
        return np.array(counts, dtype=np.int64), "".join(lines + extra), len(lines) + len(extra)

    def _frame(self, text: str, counts: np.ndarray, row: int) -> pd.DataFrame:
        width = len(self.header)
        if np.isin(counts, (0, width)).all():
            frame = pd.read_csv(
                io.StringIO(text),
                header=None,
                names=list(range(width)),
                sep=self._sep,
                dtype=str,
                keep_default_na=False,
                na_filter=False,
                skip_blank_lines=False,
                engine="c",
            )
        else:
            rows = list(csv.reader(io.StringIO(text), delimiter=self._sep))
            for i, (fields, count) in enumerate(zip(rows, counts, strict=True)):
                if count != width:
                    if not any(f.strip() for f in fields):
                        counts[i] = 0  # a line of empty fields is blank
                    rows[i] = [""] * width
            frame = pd.DataFrame(rows, columns=list(range(width)), dtype=str)
        if len(frame) != len(counts):
            raise ImportRejected(
                f"{self.name}, rows {row}..{row + len(counts) - 1}: the quoting of these rows "
                "cannot be read consistently; check the double quotes"
            )
        frame.columns = self.header
        return frame


class XlsxSource(RowSource):
    """The first sheet (or a named one) of an Excel workbook, streamed with openpyxl's
    read-only mode: rows are read one at a time from the zipped XML (memory holds a chunk and
    the workbook's shared strings). Cells keep their types (numbers, dates); the header is the
    first row; a row with a cell right of the header's last one is invalid."""

    shape_hint = "a cell right of the header's last column"

    def __init__(self, path: Path, name: str, *, sheet: str | None = None) -> None:
        import openpyxl

        self.path, self.name, self.sheet = path, name, sheet
        self.header_line = None
        self.delimiter = None
        if not _is_xlsx(path):
            with path.open("rb") as fh:
                ole = fh.read(8) == OLE2_MAGIC
            hint = " (an Excel 97-2003 .xls workbook: save it as .xlsx or CSV)" if ole else ""
            raise ImportRejected(f"{name}: not an Excel .xlsx workbook{hint}")
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
        self.content_hash = digest.hexdigest()
        self._openpyxl = openpyxl
        with self._sheet() as ws:
            first = next(ws.iter_rows(max_row=1, values_only=True), ())
            self.rows_hint = (ws.max_row - 1) if ws.max_row else None
            title = ws.title
        header = [_cell(v) for v in first]
        while header and header[-1] == "":
            header.pop()
        if not header:
            raise ImportRejected(
                f"{name}: the first row of sheet {title!r} is empty; the header must be on "
                "the first row"
            )
        self.header = header
        self.width = len(header)
        self.read_as = {"sheet": repr(title) + ("" if sheet else " (the first)")}

    @contextmanager
    def _sheet(self) -> Iterator[Any]:
        try:
            book = self._openpyxl.load_workbook(self.path, read_only=True, data_only=True)
        except Exception as exc:  # a damaged archive or XML: say so in one line
            raise ImportRejected(
                f"{self.name}: not a readable Excel workbook ({type(exc).__name__}: {exc})"
            ) from None
        try:
            if self.sheet is None:
                yield book.worksheets[0]
            elif self.sheet in book.sheetnames:
                yield book[self.sheet]
            else:
                raise ImportRejected(
                    f"{self.name}: no sheet {self.sheet!r} (sheets: "
                    f"{', '.join(map(repr, book.sheetnames))})"
                )
        finally:
            book.close()

    def chunks(self, size: int) -> Iterator[RowChunk]:
        width = len(self.header)
        with self._sheet() as ws:
            rows = ws.iter_rows(min_row=2, values_only=True)
            row = 2
            while batch := list(itertools.islice(rows, size)):
                counts = np.empty(len(batch), dtype=np.int64)
                cells: list[tuple[Any, ...]] = []
                for i, values in enumerate(batch):
                    filled = [j for j, v in enumerate(values) if _cell(v) != ""]
                    counts[i] = 0 if not filled else max(filled[-1] + 1, width)
                    padded = tuple(values[:width]) + (None,) * (width - len(values))
                    cells.append(padded if counts[i] <= width else (None,) * width)
                frame = pd.DataFrame(cells, columns=self.header, dtype=object)
                yield RowChunk(frame, row, counts)
                row += len(batch)


def _cell(value: Any) -> str:
    return "" if value is None else str(value).strip()


# --- the import ------------------------------------------------------------------------


def write_lines(conn: Connection, batch_id: int, lines: pd.DataFrame) -> None:
    """Append normalized lines to `transactions` in the caller's transaction (with their
    `source_id` and `source_key` when they have them: lines of a database source)."""
    if lines.empty:
        return
    keyed = [c for c in SOURCE_COLUMNS if c in lines.columns]
    frame = lines.loc[:, [*COLUMNS[1:], *keyed]].copy()
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


def parse_delimiter(value: str | None) -> str | None:
    """`--delimiter`: one character, or the word tab (a literal \\t also works)."""
    if value is None:
        return None
    if value.lower() in ("tab", "\\t", "\t"):
        return "\t"
    if len(value) != 1 or value in ('"', "\n", "\r"):
        raise ImportRejected(
            f"--delimiter {value!r}: one character such as "
            f"{', '.join(repr(show_delimiter(d)) for d in DELIMITERS)}"
        )
    return value


def open_source(
    path: Path,
    name: str,
    *,
    encoding: str = "utf-8",
    delimiter: str | None = None,
    sheet: str | None = None,
    layout: str | None = None,
) -> RowSource:
    """The source for a file: an Excel workbook by its .xlsx name, delimited text otherwise."""
    if Path(name).suffix.lower() in EXCEL_SUFFIXES:
        if delimiter is not None:
            raise ImportRejected(f"{name}: --delimiter is for text files, not Excel workbooks")
        return XlsxSource(path, name, sheet=sheet)
    if sheet is not None:
        raise ImportRejected(f"{name}: --sheet is for Excel workbooks (.xlsx)")
    return CsvSource(path, name, encoding=encoding, delimiter=delimiter, layout=layout)


def _decide_formats(
    source: RowSource,
    layout: Layout,
    columns: Mapping[str, str],
    first: RowChunk,
    decimal: str | None,
    date_order: str | None,
    chunk_lines: int,
) -> tuple[Formats, dict[str, str]]:
    """Decimal separator and date order, each decided once for the whole source.

    The decimal separator: given, or told by the first rows' numbers ("3.99" / "12,5"); every
    later value must then read with it, or it is an invalid value. The date order: given, or
    told by a day/month date whose first number is above 12 (day first) or second one is
    (month first), looked for in the first rows, then through the whole source; a source
    whose every day/month date could be either is refused.
    """
    name = source.name
    notes: dict[str, str] = {}
    numbers = [r.name for r in layout.roles if r.kind == "number" and r.name in columns]
    if decimal is None:
        dot_rows: list[int] = []
        comma_rows: list[int] = []
        for role in numbers:
            cells = first.rows[columns[role]]
            dot, comma = number_evidence(typed_text(cells))
            dot_rows += [first.first_row + int(i) for i in dot[dot].index]
            comma_rows += [first.first_row + int(i) for i in comma[comma].index]
            dot_rows.sort()
            comma_rows.sort()
        decimal, note = decide_decimal(dot_rows, comma_rows, source.delimiter)
        notes["decimal point"] = note
    else:
        notes["decimal point"] = f"'{decimal}'"
    date_role = next(r.name for r in layout.roles if r.kind == "date")
    date_col = columns[date_role]
    if date_order is None:
        found = _date_order(first, date_col, name)
        if found == "undecided":  # look through the whole source for a date that tells
            for chunk in source.chunks(chunk_lines):
                if isinstance(told := _date_order(chunk, date_col, name), tuple):
                    found = told
                    break
        if isinstance(found, tuple):
            order, row, value = found
            date_order = order
            notes["dates"] = (
                f"{'day' if order == DAYFIRST else 'month'} first (detected: row {row}, {value!r})"
            )
        elif found == "undecided":
            raise ImportRejected(
                f"{name}: every day/month date in column {date_col} could be read day first or "
                f"month first{_first_dm(first, date_col)}: pass --dayfirst or --monthfirst"
            )
    else:
        notes["dates"] = f"{'day' if date_order == DAYFIRST else 'month'} first"
    return Formats(decimal=decimal, date_order=date_order), notes


def _first_dm(chunk: RowChunk, column: str) -> str:
    """Where the chunk's first day/month date is, for a message."""
    text = typed_text(chunk.rows[column])
    dm = day_month_dates(text)
    if not dm.any():
        return ""
    i = int(np.flatnonzero(dm.to_numpy())[0])
    return f" (e.g. row {chunk.first_row + i}: {text.iloc[i]!r})"


def _date_order(chunk: RowChunk, column: str, name: str) -> Any:
    """(order, row, value) when a date of the chunk tells; "undecided" when it has day/month
    dates that all could be either; None when it has none."""
    cells = chunk.rows[column]
    day, month = date_order_evidence(typed_text(cells))
    if day.any() and month.any():
        d, m = int(day[day].index[0]), int(month[month].index[0])
        raise ImportRejected(
            f"{name}: column {column} has dates written day first (row {chunk.first_row + d}: "
            f"{_cell(cells.iloc[d])!r}) and month first (row {chunk.first_row + m}: "
            f"{_cell(cells.iloc[m])!r}); make them one order, then pass --dayfirst or "
            "--monthfirst"
        )
    for mask, order in ((day, DAYFIRST), (month, MONTHFIRST)):
        if mask.any():
            i = int(mask[mask].index[0])
            return order, chunk.first_row + i, _cell(cells.iloc[i])
    if _first_dm(chunk, column):
        return "undecided"
    return None


def import_rows(
    engine: Engine,
    source: RowSource,
    *,
    layout: str | None = None,
    mapping: Mapping[str, str] | None = None,
    skip_invalid: bool = False,
    decimal: str | None = None,
    date_order: str | None = None,
    chunk_lines: int = 100_000,
    max_errors: int = 20,
    progress: Progress | None = None,
    created_by: str | None = None,
    writer: LineWriter | None = None,
) -> ImportReport:
    """Import the rows of `source` as one batch. Raises ImportRejected (nothing written) when
    they cannot be imported.

    `layout`: normalized, online-retail or a shop preset (default: recognised from the header).
    `decimal` ("." or ","), `date_order` (DAYFIRST / MONTHFIRST): default detected. `writer`:
    writes the valid lines instead of appending them (a database sync); a batch it leaves
    without lines is kept when its `finish` accepts it.
    """
    started = time.perf_counter()
    name = source.name
    if decimal not in (None, ".", ","):
        raise ImportRejected(f"--decimal {decimal!r}: '.' or ','")
    try:
        if layout is None:
            layout = NORMALIZED if mapping else detect_layout(source.header)
        if layout is None:
            raise LayoutError(
                unknown_header(source.header, source.header_line or "", source.delimiter or ",")
            )
        spec = get_layout(layout)
        columns = resolve_columns(source.header, spec, mapping)
    except LayoutError as exc:
        raise ImportRejected(f"{name}: {exc}") from None

    with engine.connect() as conn:
        existing = conn.execute(
            select(ImportBatch.id).where(ImportBatch.content_hash == source.content_hash)
        ).scalar_one_or_none()
    if existing is not None:
        return ImportReport(
            name,
            layout,
            lines_read=source.rows_hint or 0,
            already_imported=True,
            batch_id=existing,
            duration_s=time.perf_counter() - started,
        )

    chunks = source.chunks(chunk_lines)
    first = next(chunks, None)
    if first is None or first.rows.empty:
        raise ImportRejected(f"{name}: no data lines after the header")
    formats, notes = _decide_formats(source, spec, columns, first, decimal, date_order, chunk_lines)

    report = ImportReport(name, layout, read_as={**source.read_as, **notes})
    skipped = {"duplicate_lines": 0, "invalid_lines": 0, "blank_lines": 0}
    seen: set[int] = set()
    carry = Carry()
    errors: list[str] = []
    error_count = 0
    with engine.begin() as conn:
        batch_id = conn.execute(
            insert(ImportBatch)
            .values(
                file_name=name[:500],
                content_hash=source.content_hash,
                layout=layout,
                status="importing",
                report={},
                created_by=created_by,
            )
            .returning(ImportBatch.id)
        ).scalar_one()
        try:
            for chunk in itertools.chain([first], chunks):
                result: ChunkResult = normalize_chunk(
                    chunk.rows,
                    spec,
                    columns,
                    chunk.first_row,
                    formats,
                    field_counts=chunk.field_counts,
                    width=source.width,
                    shape_hint=source.shape_hint,
                    carry=carry,
                    max_examples=max_errors,
                )
                if spec.name == "online-retail":
                    result = drop_seen_duplicates(result, seen)
                n = len(chunk.rows)
                report.lines_read += n
                error_count += result.error_count
                room = max_errors - len(errors)
                errors += [e.describe(name) for e in result.errors[:room]]
                skipped["duplicate_lines"] += result.duplicates
                skipped["invalid_lines"] += result.invalid_lines
                skipped["blank_lines"] += result.blank_lines
                for reason, count in result.left_out.items():
                    skipped[reason] = skipped.get(reason, 0) + count
                report.no_customer_id_lines += result.no_customer_lines
                report.no_customer_id_revenue += result.no_customer_revenue
                report.zero_amount_lines += result.zero_amount_lines
                if error_count == 0 or skip_invalid:
                    if writer is not None:
                        report.lines_imported += writer.write(conn, batch_id, chunk, result.lines)
                    else:
                        write_lines(conn, batch_id, result.lines)
                        report.lines_imported += len(result.lines)
                    report.refund_lines += result.refund_lines
                if progress:
                    progress(n)
        except UnicodeDecodeError as exc:
            raise ImportRejected(f"{name}: not valid text in its encoding: {exc}") from None
        except pd.errors.ParserError as exc:
            text = str(exc).strip().splitlines()
            raise ImportRejected(
                f"{name}: not a readable CSV file: {text[0] if text else exc}"
            ) from None
        if error_count and not skip_invalid:
            fix = getattr(
                source,
                "fix_hint",
                "Fix the file, or pass --skip-invalid to import the valid lines only.",
            )
            raise ImportRejected(
                f"{name}: rejected, {error_count:,} invalid value(s) in "
                f"{skipped['invalid_lines']:,} line(s); nothing was imported. {fix}",
                errors,
                error_count,
            )
        if writer is not None:
            writer.finish(conn, batch_id, report)
        elif report.lines_imported == 0:
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
    campaigns.after_import(engine)  # new orders: measure the campaigns again (a queued job)
    return report


def import_file(
    engine: Engine,
    path: str | Path,
    *,
    layout: str | None = None,
    mapping: Mapping[str, str] | None = None,
    skip_invalid: bool = False,
    encoding: str = "utf-8",
    delimiter: str | None = None,
    decimal: str | None = None,
    date_order: str | None = None,
    sheet: str | None = None,
    chunk_lines: int = 100_000,
    max_errors: int = 20,
    progress: Progress | None = None,
    created_by: str | None = None,
    display_name: str | None = None,
) -> ImportReport:
    """Import one CSV or Excel file (by its name: .xlsx is a workbook). Raises ImportRejected
    (nothing written) when it cannot be imported.

    `layout`: normalized, online-retail, or a shop's export (`analytics.layouts.PRESETS`);
    default: recognised from the header. `delimiter`, `decimal`, `date_order`: default
    detected (what was detected is in the report's `read_as`). `sheet`: of a workbook (default:
    the first). `display_name` names the file in messages and in the batch list (an upload is
    saved under another name): its suffix decides CSV or Excel.
    """
    path = Path(path)
    name = display_name or path.name
    if not path.is_file():
        raise ImportRejected(f"{name}: no such file")
    if layout is not None:
        try:
            get_layout(layout)
        except LayoutError as exc:
            raise ImportRejected(str(exc)) from None
    source = open_source(
        path, name, encoding=encoding, delimiter=delimiter, sheet=sheet, layout=layout
    )
    return import_rows(
        engine,
        source,
        layout=layout,
        mapping=mapping,
        skip_invalid=skip_invalid,
        decimal=decimal,
        date_order=date_order,
        chunk_lines=chunk_lines,
        max_errors=max_errors,
        progress=progress,
        created_by=created_by,
    )
