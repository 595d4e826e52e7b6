"""Parsing and validation of transaction files, one chunk at a time (pure: DataFrame in/out).

Two layouts are recognised from the header:
- ``normalized``: customer_id, order_id, ordered_at, amount[, category, country]
- ``online-retail``: the raw UCI Online Retail export (InvoiceNo, StockCode, Description,
  Quantity, InvoiceDate, UnitPrice, CustomerID, Country); amount = Quantity x UnitPrice,
  invoices starting with ``C`` are cancellations, ids look like ``17850.0``.
Any other layout is read as ``normalized`` through an explicit column mapping.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

NORMALIZED = "normalized"
ONLINE_RETAIL = "online-retail"
LAYOUTS = (NORMALIZED, ONLINE_RETAIL)

NORMALIZED_COLUMNS = ("customer_id", "order_id", "ordered_at", "amount", "category", "country")
NORMALIZED_REQUIRED = ("customer_id", "order_id", "ordered_at", "amount")
RAW_COLUMNS = (
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
)
MAX_LENGTH = {"customer_id": 64, "order_id": 64, "category": 128, "country": 64}
EARLIEST = pd.Timestamp("1990-01-01")
LATEST = pd.Timestamp("2100-01-01")


class LayoutError(ValueError):
    """The header does not match a known layout or the given column mapping."""


@dataclass(frozen=True)
class LineError:
    """One bad value: the file line number (header = line 1), the column and what is wrong."""

    row: int
    column: str
    value: str
    message: str

    def describe(self, file_name: str) -> str:
        shown = self.value if len(self.value) <= 60 else self.value[:57] + "..."
        return f"{file_name}, row {self.row}, column {self.column}: {self.message} ({shown!r})"


@dataclass
class ChunkResult:
    """Valid normalized lines of one chunk, plus what was wrong or left out."""

    lines: pd.DataFrame
    errors: list[LineError] = field(default_factory=list)
    error_count: int = 0
    invalid_lines: int = 0
    duplicates: int = 0
    blank_lines: int = 0

    @property
    def no_customer_lines(self) -> int:
        return int(self.lines["customer_id"].isna().sum())

    @property
    def no_customer_revenue(self) -> float:
        return float(self.lines.loc[self.lines["customer_id"].isna(), "amount"].sum())

    @property
    def zero_amount_lines(self) -> int:
        return int((self.lines["amount"] == 0).sum())


def detect_layout(header: list[str]) -> str:
    """The layout a header belongs to, or a LayoutError that says what was found."""
    names = {h.strip() for h in header}
    if set(NORMALIZED_REQUIRED) <= names:
        return NORMALIZED
    if set(RAW_COLUMNS) - {"StockCode", "Description"} <= names:
        return ONLINE_RETAIL
    raise LayoutError(
        "unknown layout: expected the columns "
        f"{', '.join(NORMALIZED_REQUIRED)} (normalized) or {', '.join(RAW_COLUMNS)} "
        f"(Online Retail), found {', '.join(header) or 'nothing'}. "
        "Use --map target=source to name the columns of another layout."
    )


def resolve_columns(
    header: list[str], layout: str, mapping: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Map each target column of `layout` to its source column in the file."""
    header = [h.strip() for h in header]
    mapping = dict(mapping or {})
    targets: tuple[str, ...]
    required: tuple[str, ...]
    if layout == NORMALIZED:
        targets, required = NORMALIZED_COLUMNS, NORMALIZED_REQUIRED
    elif layout == ONLINE_RETAIL:
        targets = RAW_COLUMNS
        required = tuple(c for c in RAW_COLUMNS if c not in ("StockCode", "Description"))
    else:
        raise LayoutError(f"unknown format {layout!r}: choose one of {', '.join(LAYOUTS)}")
    unknown_targets = set(mapping) - set(targets)
    if unknown_targets:
        raise LayoutError(
            f"--map names unknown target column(s) {', '.join(sorted(unknown_targets))}; "
            f"targets are {', '.join(targets)}"
        )
    columns: dict[str, str] = {}
    for target in targets:
        source = mapping.get(target, target)
        if source in header:
            columns[target] = source
        elif target in mapping:
            raise LayoutError(
                f"--map {target}={source}: the file has no column {source!r} "
                f"(found {', '.join(header)})"
            )
    missing = [t for t in required if t not in columns]
    if missing:
        raise LayoutError(
            f"missing required column(s) {', '.join(missing)} for the {layout} layout "
            f"(found {', '.join(header)})"
        )
    return columns


def _text(series: pd.Series) -> pd.Series:
    return series.astype("string").str.strip().fillna("")


def _parse_dates(values: pd.Series) -> pd.Series:
    parsed = pd.to_datetime(values, format="ISO8601", errors="coerce", utc=True)
    parsed = parsed.dt.tz_localize(None)
    missing = parsed.isna() & values.ne("")
    if missing.any():
        # The UCI file as first published writes dates like 12/1/2010 8:26.
        alt = pd.to_datetime(values[missing], format="%m/%d/%Y %H:%M", errors="coerce")
        parsed = parsed.astype("datetime64[us]")
        parsed[missing] = alt.astype("datetime64[us]")
    return parsed.astype("datetime64[us]")


class _Checker:
    """Collects errors per column for one chunk, keeping the first `max_examples`."""

    def __init__(self, first_row: int, max_examples: int) -> None:
        self.first_row = first_row
        self.max_examples = max_examples
        self.examples: list[tuple[int, str, str, str]] = []
        self.count = 0
        self.bad: np.ndarray | None = None

    def flag(self, mask: pd.Series, column: str, values: pd.Series, message: str) -> None:
        mask = mask.fillna(False).astype(bool)
        n = int(mask.sum())
        if not n:
            return
        self.count += n
        self.bad = mask.to_numpy() if self.bad is None else (self.bad | mask.to_numpy())
        room = self.max_examples - len(self.examples)
        if room > 0:
            idx = np.flatnonzero(mask.to_numpy())[:room]
            for i in idx:
                row = self.first_row + int(i)
                self.examples.append((row, column, str(values.iloc[i]), message))

    def errors(self) -> list[LineError]:
        return [LineError(*e) for e in sorted(self.examples)][: self.max_examples]


def normalize_chunk(
    raw: pd.DataFrame,
    layout: str,
    columns: Mapping[str, str],
    first_row: int,
    max_examples: int = 20,
) -> ChunkResult:
    """Validate and normalize one chunk of a file read with ``dtype=str``.

    `first_row` is the file line number of the chunk's first row (the header is line 1).
    Returns the valid lines in the normalized layout; invalid lines are counted and the first
    `max_examples` described. Blank lines are ignored. Lines without a customer id are kept
    (customer_id None) and reported.
    """
    raw = raw.reset_index(drop=True)
    src = {target: _text(raw[source]) for target, source in columns.items()}
    blank = pd.concat(list(src.values()), axis=1).eq("").all(axis=1)
    check = _Checker(first_row, max_examples)

    if layout == ONLINE_RETAIL:
        order_id = src["InvoiceNo"]
        customer = src["CustomerID"].str.replace(r"^(\d+)\.0+$", r"\1", regex=True)
        date_text = src["InvoiceDate"]
        qty = pd.to_numeric(src["Quantity"], errors="coerce")
        price = pd.to_numeric(src["UnitPrice"], errors="coerce")
        check.flag(
            ~blank & (qty.isna() | ~np.isfinite(qty)),
            columns["Quantity"],
            src["Quantity"],
            "not a number",
        )
        check.flag(
            ~blank & (price.isna() | ~np.isfinite(price)),
            columns["UnitPrice"],
            src["UnitPrice"],
            "not a number",
        )
        amount = (qty * price).round(6)
        cancel = order_id.str.upper().str.startswith("C")
        amount = amount.where(~cancel, -amount.abs())
        category = pd.Series("", index=raw.index, dtype="string")
        country = src["Country"]
    else:
        order_id = src["order_id"]
        customer = src["customer_id"]
        date_text = src["ordered_at"]
        amount = pd.to_numeric(src["amount"], errors="coerce")
        check.flag(
            ~blank & (amount.isna() | ~np.isfinite(amount)),
            columns["amount"],
            src["amount"],
            "not a number",
        )
        category = src.get("category", pd.Series("", index=raw.index, dtype="string"))
        country = src.get("country", pd.Series("", index=raw.index, dtype="string"))

    order_col = columns["InvoiceNo" if layout == ONLINE_RETAIL else "order_id"]
    date_col = columns["InvoiceDate" if layout == ONLINE_RETAIL else "ordered_at"]
    cust_col = columns["CustomerID" if layout == ONLINE_RETAIL else "customer_id"]
    check.flag(~blank & order_id.eq(""), order_col, order_id, "empty order id")
    check.flag(
        order_id.str.len() > MAX_LENGTH["order_id"],
        order_col,
        order_id,
        f"longer than {MAX_LENGTH['order_id']} characters",
    )
    check.flag(
        customer.str.len() > MAX_LENGTH["customer_id"],
        cust_col,
        customer,
        f"longer than {MAX_LENGTH['customer_id']} characters",
    )
    ordered_at = _parse_dates(date_text)
    check.flag(~blank & date_text.eq(""), date_col, date_text, "empty date")
    check.flag(
        ~blank & date_text.ne("") & ordered_at.isna(),
        date_col,
        date_text,
        "not an ISO 8601 date (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS)",
    )
    check.flag(
        ordered_at.notna() & ((ordered_at < EARLIEST) | (ordered_at >= LATEST)),
        date_col,
        date_text,
        "date outside 1990..2099",
    )
    for name, values in (("category", category), ("country", country)):
        source = columns.get(name) or (columns.get("Country", name) if name == "country" else name)
        check.flag(
            values.str.len() > MAX_LENGTH[name],
            source,
            values,
            f"longer than {MAX_LENGTH[name]} characters",
        )

    bad = check.bad if check.bad is not None else np.zeros(len(raw), dtype=bool)
    keep = ~bad & ~blank.to_numpy()
    lines = pd.DataFrame(
        {
            "customer_id": customer.replace("", pd.NA),
            "order_id": order_id,
            "ordered_at": ordered_at,
            "amount": amount.astype("float64"),
            "category": category.replace("", pd.NA),
            "country": country.replace("", pd.NA),
        }
    )[keep].reset_index(drop=True)
    if layout == ONLINE_RETAIL:
        # Remember the source text of the raw columns: lines equal in every column are
        # duplicates. Hashing happens in the caller, across chunks.
        lines.attrs["raw_hash"] = pd.util.hash_pandas_object(
            pd.DataFrame(src)[keep], index=False
        ).to_numpy()
    return ChunkResult(
        lines=lines,
        errors=check.errors(),
        error_count=check.count,
        invalid_lines=int(bad.sum()),
        blank_lines=int(blank.sum()),
    )


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
        result.lines = result.lines[keep].reset_index(drop=True)
        result.duplicates += dropped
    result.lines.attrs.pop("raw_hash", None)
    return result
