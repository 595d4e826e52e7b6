"""Parsing and validation of order lines, one chunk at a time (pure: DataFrame in/out).

A chunk is a DataFrame of one source's rows under its header: text (CSV) or typed cells
(spreadsheets; later database rows). `analytics.layouts` says which columns a layout reads and
how its rows become lines; this module parses those columns (numbers, dates, with the file's
decimal separator and date order, decided once per file), checks every value and returns the
valid lines in the normalized layout, with each bad value described (row, column, value).

What a shop can have: every number and every amount is finite and below 10**12 in absolute
value; dates lie in 1990..2099. A value outside is an invalid line, never stored, so no later
sum can overflow.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

from analytics.layouts import Layout, Lines, Parsed, order_starts

NORMALIZED_COLUMNS = ("customer_id", "order_id", "ordered_at", "amount", "category", "country")
MAX_LENGTH = {"customer_id": 64, "order_id": 64, "category": 128, "country": 64}
MAX_ABS = 1e12
EARLIEST = pd.Timestamp("1990-01-01")
LATEST = pd.Timestamp("2100-01-01")
DAYFIRST, MONTHFIRST = "dayfirst", "monthfirst"
REFUND_SUFFIX = " refund"

# A number with "." as decimal separator ("," groups thousands), or the other way round.
_DOT = re.compile(r"[+-]?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_COMMA = re.compile(r"[+-]?(?:(?:\d{1,3}(?:\.\d{3})+|\d+)(?:,\d*)?|,\d+)(?:[eE][+-]?\d+)?")
_NON_FINITE = {"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}
# A time-zone offset at the end of a date: the time is kept as written (the shop's clock).
_OFFSET = r"(:\d{2}(?:[.,]\d+)?)\s*(?:Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)$"
_TIME = r"(?:[ T,]+(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,6}))?)?\s*([AaPp][Mm])?)?"
_YMD = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})" + _TIME)
_DM = re.compile(r"(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})" + _TIME)
_NAMED = re.compile(r"([A-Za-z]{3})[a-z]*\.? (\d{1,2}),? (\d{4})" + _TIME)
_MONTHS = {m: i for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), 1)}
DATE_FORMS = "YYYY-MM-DD [HH:MM[:SS]], DD.MM.YYYY or MM/DD/YYYY [HH:MM], Jan 5, 2024"


@dataclass(frozen=True)
class LineError:
    """One bad value: the row number (header = row 1), the column and what is wrong."""

    row: int
    column: str
    value: str
    message: str

    def describe(self, file_name: str) -> str:
        if not self.column:  # the row as a whole
            return f"{file_name}, row {self.row} {self.message}"
        shown = self.value if len(self.value) <= 60 else self.value[:57] + "..."
        return f"{file_name}, row {self.row}, column {self.column}: {self.message} ({shown!r})"


@dataclass(frozen=True)
class Formats:
    """How this source writes numbers and dates, decided once for the whole source."""

    decimal: str = "."
    date_order: str | None = None  # DAYFIRST / MONTHFIRST; None: no day/month dates seen


@dataclass
class Carry:
    """What one chunk hands to the next: the last order id and its order-level values, so
    an order whose rows straddle two chunks is read as one."""

    order_id: str | None = None
    values: dict[str, Any] = field(default_factory=dict)


@dataclass
class ChunkResult:
    """Valid normalized lines of one chunk, plus what was wrong or left out."""

    lines: pd.DataFrame
    errors: list[LineError] = field(default_factory=list)
    error_count: int = 0
    invalid_lines: int = 0
    duplicates: int = 0
    blank_lines: int = 0
    left_out: dict[str, int] = field(default_factory=dict)
    refund_lines: int = 0

    @property
    def no_customer_lines(self) -> int:
        return int(self.lines["customer_id"].isna().sum())

    @property
    def no_customer_revenue(self) -> float:
        return float(self.lines.loc[self.lines["customer_id"].isna(), "amount"].sum())

    @property
    def zero_amount_lines(self) -> int:
        return int((self.lines["amount"] == 0).sum())


# --- cells to values ---------------------------------------------------------------------


def _is_text(series: pd.Series) -> bool:
    return pd.api.types.is_string_dtype(series.dtype) and series.dtype != object


def _cell_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))  # a spreadsheet's 17850.0 is the id 17850
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value).strip()


def as_text(series: pd.Series) -> pd.Series:
    """Cells as stripped text, "" for empty ones."""
    if _is_text(series):
        return series.astype("string").str.strip().fillna("")
    return series.map(_cell_text).astype("string")


def nonempty(text: pd.Series) -> pd.Series:
    """Mask of non-empty texts (numpy's comparison: pandas' string one is slower)."""
    return pd.Series(text.to_numpy(dtype=object) != "", index=text.index)


def _problems(index: pd.Index) -> pd.Series:
    """What is wrong with each value: None when nothing."""
    return pd.Series(None, index=index, dtype=object)


def _native(series: pd.Series, kinds: tuple[type, ...]) -> pd.Series:
    """Mask of typed cells of the given kinds (spreadsheet numbers or dates)."""
    if _is_text(series):
        return pd.Series(False, index=series.index)
    return series.map(lambda v: isinstance(v, kinds) and not isinstance(v, bool)).astype(bool)


def number_evidence(text: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Values that can only be read with "." (first) or only with "," (second) as decimal
    separator: "3.99", "1,234.50" / "12,5", "1.234,56". "1,234" could be either: no evidence."""
    text = text[text != ""]
    dot = text.str.fullmatch(_DOT).fillna(False).astype(bool)
    comma = text.str.fullmatch(_COMMA).fillna(False).astype(bool)
    return dot & ~comma, comma & ~dot


def decide_decimal(
    dot_rows: list[int], comma_rows: list[int], delimiter: str | None
) -> tuple[str, str]:
    """The decimal separator from the rows that can only be read one way, and how it was
    decided: the majority (the others will be invalid values); with a tie or no evidence, ","
    in a ";"-separated file, else "."."""
    if len(dot_rows) != len(comma_rows):  # the majority; the others will be invalid values
        if len(dot_rows) > len(comma_rows):
            return ".", f"'.' (detected, e.g. row {dot_rows[0]})"
        return ",", f"',' (detected, e.g. row {comma_rows[0]})"
    if dot_rows and delimiter == ";":
        return ",", f"',' (detected, e.g. row {comma_rows[0]}, and the ';' separator)"
    if dot_rows:
        return ".", f"'.' (detected, e.g. row {dot_rows[0]})"
    if delimiter == ";":
        return ",", "',' (assumed with the ';' separator: no amount tells)"
    return ".", "'.' (assumed: no amount tells)"


def parse_numbers(
    series: pd.Series, decimal: str, text: pd.Series | None = None
) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Numbers written with `decimal` as decimal separator (the other one may group thousands
    in threes). Returns (values, text, problem): problem is None for a good or empty cell,
    else what is wrong. `text`: the cells as text, when already computed."""
    text = as_text(series) if text is None else text
    values = pd.Series(np.nan, index=series.index, dtype="float64")
    problem = _problems(series.index)
    native = _native(series, (int, float, np.integer, np.floating))
    if native.any():
        values[native] = series[native].astype("float64")
    todo = ~native & nonempty(text)
    if todo.any():
        t = text[todo]
        if decimal == ".":
            quick = pd.to_numeric(t, errors="coerce")
        else:  # "1.234" would read as 1.234: values with a "." take the long way
            plain = ~t.str.contains(".", regex=False).fillna(False).astype(bool)
            quick = pd.to_numeric(t[plain].str.replace(",", ".", regex=False), errors="coerce")
        quick = quick.reindex(t.index).astype("float64")
        done = quick.notna()
        values[quick[done].index] = quick[done]
        t = t[~done]
        pattern, group, point = (_DOT, ",", None) if decimal == "." else (_COMMA, ".", ",")
        ok = t.str.fullmatch(pattern).fillna(False).astype(bool)
        clean = t[ok].str.replace(group, "", regex=False)
        if point:
            clean = clean.str.replace(point, ".", regex=False)
        values[ok[ok].index] = pd.to_numeric(clean, errors="coerce").astype("float64")
        bad = ok[~ok].index
        separators = t[bad].str.contains(r"\d[.,]\d", regex=True).fillna(False)
        problem[bad] = "not a number"
        problem[separators[separators].index] = f"not a number with '{decimal}' as decimal point"
        non_finite = t[bad].str.lower().isin(_NON_FINITE)
        problem[non_finite[non_finite].index] = "not a finite number"
    problem[problem.isna() & values.notna() & ~np.isfinite(values)] = "not a finite number"
    big = problem.isna() & values.notna() & (values.abs() >= MAX_ABS)
    problem[big] = "out of range (numbers must be below 10^12 in absolute value)"
    return values, text, problem


def _split(text: pd.Series, pattern: re.Pattern[str]) -> pd.DataFrame:
    return text.str.extract("^" + pattern.pattern + "$")


def typed_text(cells: pd.Series) -> pd.Series:
    """Cells as text, "" for typed cells (spreadsheet numbers and dates): only text written in
    a file tells how the file writes numbers and dates."""
    text = as_text(cells)
    if not _is_text(cells):
        text = text.where(cells.map(lambda v: isinstance(v, str)).astype(bool), "")
    return text


def day_month_dates(text: pd.Series) -> pd.Series:
    """Mask of day/month dates (01.05.2024, 5/1/2024 10:00), whose order a file must tell."""
    return text.str.match(_DM.pattern).fillna(False).astype(bool)


def date_order_evidence(series: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Day/month dates that can only be day first (first number > 12) or only month first
    (second number > 12). Only the cells that start as one are split: the others (ISO dates, in
    most files) cannot tell, and a match passes over them at a tenth of the cost."""
    text = as_text(series)
    text = text[day_month_dates(text)].str.replace(_OFFSET, r"\1", regex=True)
    parts = _split(text, _DM)
    first = pd.to_numeric(parts[0], errors="coerce")
    second = pd.to_numeric(parts[1], errors="coerce")
    return (first > 12) & (second <= 12), (second > 12) & (first <= 12)


def _stamp(parts: pd.DataFrame, year: int, month: int, day: int) -> pd.Series:
    """Timestamps from regex groups: year, month, day, hour, minute, second, fraction, AM/PM."""
    num = {
        k: pd.to_numeric(parts[i], errors="coerce")
        for k, i in (
            ("year", year),
            ("month", month),
            ("day", day),
            ("hour", 3),
            ("minute", 4),
            ("second", 5),
        )
    }
    hour = num["hour"].fillna(0)
    ampm = parts[7].astype(object).fillna("").astype(str).str.lower().to_numpy()
    bad_12h = (ampm != "") & ((hour < 1) | (hour > 12)).to_numpy()
    hour = hour.where(~((ampm == "pm") & (hour != 12).to_numpy()), hour + 12)
    hour = hour.where(~((ampm == "am") & (hour == 12).to_numpy()), 0)
    fraction = parts[6].fillna("").str.ljust(6, "0").replace("000000", "0")
    frame = pd.DataFrame(
        {
            "year": num["year"],
            "month": num["month"],
            "day": num["day"],
            "hour": hour,
            "minute": num["minute"].fillna(0),
            "second": num["second"].fillna(0),
            "us": pd.to_numeric(fraction, errors="coerce").fillna(0),
        }
    )
    stamps = pd.to_datetime(frame, errors="coerce")
    stamps[bad_12h | (hour > 23) | (frame["minute"] > 59) | (frame["second"] > 59)] = pd.NaT
    return stamps.astype("datetime64[us]")


def parse_dates(
    series: pd.Series, date_order: str | None, text: pd.Series | None = None
) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Dates as written (a time-zone offset is dropped: the time stays the shop's clock).

    Year first (ISO 8601 and the like), month names (Jan 5, 2024) and, with `date_order`,
    day/month dates. Returns (timestamps, text, problem) as `parse_numbers`."""
    text = as_text(series) if text is None else text
    out = pd.Series(pd.NaT, index=series.index, dtype="datetime64[us]")
    problem = _problems(series.index)
    native = _native(series, (datetime, date, pd.Timestamp))
    if native.any():
        out[native] = pd.to_datetime(series[native].astype(object)).astype("datetime64[us]")
    todo = ~native & nonempty(text)
    if not todo.any():
        return out, text, problem
    bare = text[todo]
    length = bare.str.len()
    offset = length > 19  # only a date with a time can carry an offset
    if offset.any():
        bare = bare.copy()
        bare[offset] = bare[offset].str.replace(_OFFSET, r"\1", regex=True)
    # pandas' ISO 8601 parser, fast; it would read "2024" or "202405" as dates: too short.
    iso = pd.to_datetime(bare.where(length >= 10), format="ISO8601", errors="coerce")
    out[iso.index] = iso.astype("datetime64[us]")
    rest = bare[iso.isna()]
    if len(rest):
        ymd = _split(rest, _YMD)
        is_ymd = ymd[0].notna()
        if is_ymd.any():
            out[ymd.index[is_ymd]] = _stamp(ymd[is_ymd], 0, 1, 2)
        named = _split(rest[~is_ymd], _NAMED)
        month = named[0].str.lower().map(_MONTHS)
        is_named = month.notna()
        if is_named.any():
            parts = named[is_named].copy()
            parts[0] = month[is_named]
            out[parts.index] = _stamp(parts, 2, 0, 1)
        dm = _split(rest[~is_ymd][~is_named], _DM)
        is_dm = dm[0].notna()
        if is_dm.any():
            if date_order is None:
                problem[dm.index[is_dm]] = (
                    "a day/month date, but the first rows have none to tell day from month: "
                    "pass --dayfirst or --monthfirst"
                )
            else:
                day, month_ = (0, 1) if date_order == DAYFIRST else (1, 0)
                stamps = _stamp(dm[is_dm], 2, month_, day)
                out[stamps.index] = stamps
                wrong = stamps.index[stamps.isna()]
                order = "day first" if date_order == DAYFIRST else "month first"
                problem[wrong] = f"not a valid date ({order}, as in the rest of the file)"
    bad = todo & out.isna() & problem.isna()
    problem[bad] = f"not a date (expected {DATE_FORMS})"
    outside = out.notna() & ((out < EARLIEST) | (out >= LATEST))
    problem[outside] = "date outside 1990..2099"
    return out, text, problem


# --- one chunk --------------------------------------------------------------------------


class _Checker:
    """Collects errors per column for one chunk, keeping the first `max_examples`."""

    def __init__(self, first_row: int, max_examples: int, n: int) -> None:
        self.first_row = first_row
        self.max_examples = max_examples
        self.examples: list[tuple[int, str, str, str]] = []
        self.count = 0
        self.bad = np.zeros(n, dtype=bool)

    def flag(
        self,
        mask: pd.Series | np.ndarray,
        column: str,
        values: pd.Series,
        message: str | pd.Series,
    ) -> None:
        m = np.asarray(pd.Series(mask).fillna(False), dtype=bool)
        n = int(m.sum())
        if not n:
            return
        self.count += n
        self.bad |= m
        room = self.max_examples - len(self.examples)
        for i in np.flatnonzero(m)[: max(room, 0)]:
            text = message if isinstance(message, str) else str(message.iloc[i])
            self.examples.append((self.first_row + int(i), column, str(values.iloc[i]), text))

    def errors(self) -> list[LineError]:
        return [LineError(*e) for e in sorted(self.examples)][: self.max_examples]


def fill_down(raw: pd.Series, starts: pd.Series, carried: Any) -> pd.Series:
    """An order-level column: empty cells take the value of the order's earlier rows."""
    empty = raw.isna() | (raw.astype("string").str.strip() == "")
    if not empty.any():
        return raw
    block = starts.cumsum()
    filled = raw.astype(object).where(~empty, None).groupby(block).ffill()
    if carried is not None and not bool(starts.iloc[0]):
        first = (block == block.iloc[0]) & filled.isna()
        filled[first] = carried
    return filled.where(filled.notna(), raw.astype(object))


def normalize_chunk(
    raw: pd.DataFrame,
    layout: Layout,
    columns: Mapping[str, str],
    first_row: int,
    formats: Formats,
    *,
    field_counts: np.ndarray | None = None,
    width: int | None = None,
    carry: Carry | None = None,
    shape_hint: str = "a value containing the delimiter needs double quotes",
    max_examples: int = 20,
) -> ChunkResult:
    """Validate and normalize one chunk.

    `first_row` is the row number of the chunk's first row (the header is row 1). With
    `field_counts` (fields found on each row of a text file), a row with more or fewer fields
    than the header's `width` is invalid as a whole: its values would sit under the wrong
    columns. Returns the valid lines in the normalized layout; invalid lines are counted and the
    first `max_examples` described. Blank lines are ignored. Lines without a customer id are
    kept (customer_id None) and reported. `carry` is updated for the next chunk.
    """
    raw = raw.reset_index(drop=True)
    n = len(raw)
    carry = carry if carry is not None else Carry()
    check = _Checker(first_row, max_examples, n)
    cells = {role: raw[source] for role, source in columns.items()}
    texts = {role: as_text(values) for role, values in cells.items()}
    filled = {role: nonempty(text) for role, text in texts.items()}
    blank = ~pd.concat(list(filled.values()), axis=1).any(axis=1)
    if field_counts is not None and width is not None:
        counts = pd.Series(np.asarray(field_counts), index=raw.index)
        shape = (counts != width) & (counts != 0)
        if shape.any():
            message = (
                "has " + counts.astype(str) + f" fields, the header has {width} ({shape_hint})"
            )
            check.flag(shape, "", message, message)
            blank &= ~shape
    live = ~blank & ~pd.Series(check.bad, index=raw.index)

    order_text = texts[layout.order_role]
    if any(r.order_level for r in layout.roles):
        starts = order_starts(order_text, carry.order_id)
    else:
        starts = pd.Series(True, index=raw.index)
    for role in layout.roles:
        if role.order_level and role.name in cells:
            cells[role.name] = fill_down(cells[role.name], starts, carry.values.get(role.name))
            texts[role.name] = as_text(cells[role.name])
            filled[role.name] = nonempty(texts[role.name])
    if n:  # the last row's order, with its (filled) order-level values, for the next chunk
        carry.order_id = str(order_text.iloc[n - 1])
        carry.values = {
            role.name: cells[role.name].iloc[n - 1]
            for role in layout.roles
            if role.order_level
            and role.name in cells
            and _cell_text(cells[role.name].iloc[n - 1]) != ""
        }

    values: dict[str, pd.Series] = {}
    for role in layout.roles:
        if role.name not in cells:
            if role.kind == "number" and role.default is not None:
                values[role.name] = pd.Series(role.default, index=raw.index, dtype="float64")
            continue
        source = columns[role.name]
        if role.kind == "number":
            number, text, problem = parse_numbers(
                cells[role.name], formats.decimal, texts[role.name]
            )
            if role.default is not None:
                number = number.fillna(role.default)
            else:
                problem = problem.where(filled[role.name], "not a number")
            check.flag(live & problem.notna(), source, text, problem)
            values[role.name] = number
        elif role.kind == "date":
            stamps, text, problem = parse_dates(
                cells[role.name], formats.date_order, texts[role.name]
            )
            problem = problem.where(filled[role.name], "empty date")
            check.flag(live & problem.notna(), source, text, problem)
            values[role.name] = stamps
        else:
            values[role.name] = texts[role.name]
    built: Lines = layout.build(Parsed(values, starts))

    order_col = columns[layout.order_role]
    check.flag(live & ~nonempty(built.order_id), order_col, built.order_id, "empty order id")
    amount = built.amount.astype("float64")
    check.flag(
        live & (~np.isfinite(amount) | (amount.abs() >= MAX_ABS)) & ~pd.Series(check.bad),
        built.amount_source,
        amount,
        "amount out of range (must be below 10^12 in absolute value)",
    )
    category = built.category if built.category is not None else _empty(n)
    country = built.country if built.country is not None else _empty(n)
    for name, series, source in (
        ("order_id", built.order_id, order_col),
        ("customer_id", built.customer_id, columns.get("customer_id", "customer id")),
        ("category", category, columns.get("category", "category")),
        ("country", country, columns.get("country", columns.get("Country", "country"))),
    ):
        if name == "customer_id" and layout.name == "online-retail":
            source = columns["CustomerID"]
        check.flag(
            live & (series.str.len() > MAX_LENGTH[name]),
            source,
            series,
            f"longer than {MAX_LENGTH[name]} characters",
        )

    bad = check.bad
    keep = ~bad & ~blank.to_numpy()
    left_out: dict[str, int] = {}
    if built.left_out is not None:
        out = built.left_out.fillna(False).to_numpy(dtype=bool) & keep
        if out.any():
            left_out[built.left_out_reason] = int(out.sum())
            keep &= ~out
    lines = pd.DataFrame(
        {
            "customer_id": built.customer_id.replace("", pd.NA),
            "order_id": built.order_id,
            "ordered_at": built.ordered_at,
            "amount": amount,
            "category": category.replace("", pd.NA),
            "country": country.replace("", pd.NA),
        }
    )
    refund_lines = 0
    if built.refunds is not None:
        refund = built.refunds.fillna(0.0).to_numpy(dtype="float64")
        refunding = keep & (refund != 0)
        if refunding.any():
            extra = lines[refunding].copy()
            extra["order_id"] = extra["order_id"] + REFUND_SUFFIX
            extra["amount"] = -np.abs(refund[refunding])
            too_long = extra["order_id"].str.len() > MAX_LENGTH["order_id"]
            idx = np.flatnonzero(refunding)
            if too_long.any():
                mask = np.zeros(n, dtype=bool)
                mask[idx[too_long.to_numpy()]] = True
                check.flag(mask, order_col, built.order_id, "too long for its refund line")
                keep &= ~mask
                extra = extra[~too_long.to_numpy()]
            refund_lines = len(extra)
            lines = pd.concat([lines[keep], extra], ignore_index=True)
    if not refund_lines:
        lines = lines[keep].reset_index(drop=True)
        # Where each line was in the chunk: a keyed source (a database sync) pairs its lines
        # with their source's line keys by it.
        lines.attrs["rows"] = np.flatnonzero(keep)
    if built.dedupe:
        # Lines equal in every source column are duplicates: hashed here, dropped across
        # chunks by the caller (`drop_seen_duplicates`).
        lines.attrs["raw_hash"] = pd.util.hash_pandas_object(
            pd.DataFrame(texts)[keep], index=False
        ).to_numpy()
    return ChunkResult(
        lines=lines,
        errors=check.errors(),
        error_count=check.count,
        invalid_lines=int(bad.sum()),
        blank_lines=int(blank.sum()),
        left_out=left_out,
        refund_lines=refund_lines,
    )


def _empty(n: int) -> pd.Series:
    return pd.Series("", index=pd.RangeIndex(n), dtype="string")


def drop_seen_duplicates(result: ChunkResult, seen: set[int]) -> ChunkResult:
    """Online Retail layout: drop lines equal in every column to an earlier line of the file.

    `seen` carries the hashes of earlier chunks; it is updated in place.
    """
    hashes = result.lines.attrs.get("raw_hash")
    if hashes is None or len(hashes) == 0:
        return result
    keep = np.ones(len(hashes), dtype=bool)
    for i, h in enumerate(hashes.tolist()):
        if h in seen:
            keep[i] = False
        else:
            seen.add(h)
    dropped = int((~keep).sum())
    if dropped:
        rows = result.lines.attrs.get("rows")
        result.lines = result.lines[keep].reset_index(drop=True)
        if rows is not None:
            result.lines.attrs["rows"] = rows[keep]
        result.duplicates += dropped
    result.lines.attrs.pop("raw_hash", None)
    return result
