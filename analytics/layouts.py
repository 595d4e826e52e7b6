"""The layouts an order file can have: which columns it needs and how its rows become lines.

Two layouts are recognised from the header alone:
- ``normalized``: customer_id, order_id, ordered_at, amount[, category, country]
- ``online-retail``: the raw UCI Online Retail export (InvoiceNo, StockCode, Description,
  Quantity, InvoiceDate, UnitPrice, CustomerID, Country); amount = Quantity x UnitPrice,
  invoices starting with ``C`` are cancellations, ids look like ``17850.0``.

Presets read the order exports of shop systems; they are chosen with ``--format`` (a header that
looks like one gets a hint, never a silent guess), since each carries rules of its own:
- ``shopify``: Shopify admin, Orders > Export (one row per line item).
- ``woocommerce``: WooCommerce Customer / Order / Coupon Export, "Default - One Row per Item".
What each preset reads and why: the table in `docs/IMPORT.md`.

Each layout is a set of roles (a column it reads, under one of the header names it accepts) and
a `build` function from the parsed values of one chunk to order lines. Parsing and validation
are shared (`analytics.ingest`).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

NORMALIZED = "normalized"
ONLINE_RETAIL = "online-retail"
SHOPIFY = "shopify"
WOOCOMMERCE = "woocommerce"

DELIMITERS = (",", ";", "\t", "|")


class LayoutError(ValueError):
    """The header does not match the layout, or a column mapping names a missing column."""


@dataclass(frozen=True)
class Role:
    """A column a layout reads.

    `sources`: the header names it accepts, the first one found wins. `kind`: ``text``,
    ``number`` or ``date``. `required`: the column must be in the file. `order_level`: the
    export fills it on an order's first row only; it is carried down the order's other rows.
    `default`: a number role's value when the cell is empty (None: an empty cell is invalid).
    """

    name: str
    sources: tuple[str, ...]
    kind: str = "text"
    required: bool = False
    order_level: bool = False
    default: float | None = None


@dataclass
class Parsed:
    """The parsed values of one chunk, by role: text (stripped, "" when empty), numbers
    (float), the date (datetime64). `order_start` marks the first row of each order (rows of
    one order are consecutive in the shop exports), across chunks."""

    values: dict[str, pd.Series]
    order_start: pd.Series

    def get(self, role: str, default: str = "") -> pd.Series:
        if role in self.values:
            return self.values[role]
        return pd.Series(default, index=self.order_start.index, dtype="string")


@dataclass
class Lines:
    """What `Layout.build` returns: one order line per row, plus what the layout adds or leaves
    out. `amount_source` names the column(s) in error messages. `left_out`: rows not imported
    (e.g. unpaid orders), counted under `left_out_reason`. `refunds` (>= 0 per row): each
    positive value becomes a line of minus that amount in the order "<order id> refund", dated
    as the row, so refunds count as returns like the Online Retail cancellations."""

    customer_id: pd.Series
    order_id: pd.Series
    ordered_at: pd.Series
    amount: pd.Series
    amount_source: str
    category: pd.Series | None = None
    country: pd.Series | None = None
    left_out: pd.Series | None = None
    left_out_reason: str = ""
    refunds: pd.Series | None = None
    refund_source: str = ""
    dedupe: bool = False


@dataclass(frozen=True)
class Layout:
    name: str
    title: str
    roles: tuple[Role, ...]
    build: Callable[[Parsed], Lines]
    order_role: str = "order_id"
    detected: bool = False
    signature: tuple[str, ...] = ()
    how_to_export: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    def role(self, name: str) -> Role:
        return next(r for r in self.roles if r.name == name)

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.roles)


def _build_normalized(p: Parsed) -> Lines:
    return Lines(
        customer_id=p.get("customer_id"),
        order_id=p.get("order_id"),
        ordered_at=p.values["ordered_at"],
        amount=p.values["amount"],
        amount_source="amount",
        category=p.get("category"),
        country=p.get("country"),
    )


def _build_online_retail(p: Parsed) -> Lines:
    order_id = p.get("InvoiceNo")
    amount = (p.values["Quantity"] * p.values["UnitPrice"]).round(6)
    cancel = order_id.str.upper().str.startswith("C").fillna(False).astype(bool)
    return Lines(
        customer_id=p.get("CustomerID").str.replace(r"^(\d+)\.0+$", r"\1", regex=True),
        order_id=order_id,
        ordered_at=p.values["InvoiceDate"],
        amount=amount.where(~cancel, -amount.abs()),
        amount_source="Quantity × UnitPrice",
        country=p.get("Country"),
        dedupe=True,
    )


SHOPIFY_UNPAID = ("pending", "voided", "expired")


def _build_shopify(p: Parsed) -> Lines:
    amount = (p.values["quantity"] * p.values["price"] - p.values["discount"]).round(6)
    status = p.get("financial_status").str.lower()
    return Lines(
        customer_id=p.get("customer_id").str.lower(),
        order_id=p.get("order_id"),
        ordered_at=p.values["ordered_at"],
        amount=amount,
        amount_source="Lineitem quantity × Lineitem price − Lineitem discount",
        country=p.get("country"),
        left_out=status.isin(SHOPIFY_UNPAID),
        left_out_reason="unpaid_order_lines",
        # The refunded amount is the order's: one refund line per order.
        refunds=p.values["refunded"].where(p.order_start, 0.0),
        refund_source="Refunded Amount",
    )


WOOCOMMERCE_UNPAID = ("pending", "failed", "cancelled", "checkout-draft")


def _build_woocommerce(p: Parsed) -> Lines:
    email = p.get("customer_id").str.lower()
    user = p.get("user_id")
    user = user.where(~user.isin(["", "0"]), "")
    status = p.get("status").str.lower().str.removeprefix("wc-")
    return Lines(
        customer_id=email.where(email != "", user),
        order_id=p.get("order_id"),
        ordered_at=p.values["ordered_at"],
        amount=p.values["amount"],
        amount_source="item_total",
        country=p.get("country"),
        left_out=status.isin(WOOCOMMERCE_UNPAID),
        left_out_reason="unpaid_order_lines",
        refunds=p.values["refunded"],
        refund_source="item_refunded",
    )


LAYOUTS: dict[str, Layout] = {
    NORMALIZED: Layout(
        NORMALIZED,
        "normalized",
        (
            Role("customer_id", ("customer_id",), required=True),
            Role("order_id", ("order_id",), required=True),
            Role("ordered_at", ("ordered_at",), "date", required=True),
            Role("amount", ("amount",), "number", required=True),
            Role("category", ("category",)),
            Role("country", ("country",)),
        ),
        _build_normalized,
        detected=True,
    ),
    ONLINE_RETAIL: Layout(
        ONLINE_RETAIL,
        "Online Retail",
        (
            Role("InvoiceNo", ("InvoiceNo",), required=True),
            Role("StockCode", ("StockCode",)),
            Role("Description", ("Description",)),
            Role("Quantity", ("Quantity",), "number", required=True),
            Role("InvoiceDate", ("InvoiceDate",), "date", required=True),
            Role("UnitPrice", ("UnitPrice",), "number", required=True),
            Role("CustomerID", ("CustomerID",), required=True),
            Role("Country", ("Country",), required=True),
        ),
        _build_online_retail,
        order_role="InvoiceNo",
        detected=True,
    ),
    SHOPIFY: Layout(
        SHOPIFY,
        "Shopify orders export",
        (
            Role("order_id", ("Name",), required=True),
            Role("customer_id", ("Email",), required=True, order_level=True),
            Role("ordered_at", ("Created at",), "date", required=True, order_level=True),
            Role("quantity", ("Lineitem quantity",), "number", required=True),
            Role("price", ("Lineitem price",), "number", required=True),
            Role("discount", ("Lineitem discount",), "number", default=0.0),
            Role("refunded", ("Refunded Amount",), "number", order_level=True, default=0.0),
            Role("financial_status", ("Financial Status",), order_level=True),
            Role("country", ("Billing Country",), order_level=True),
        ),
        _build_shopify,
        signature=("Name", "Email", "Financial Status", "Created at", "Lineitem quantity"),
        how_to_export="export from the Shopify admin: Orders > Export, as a plain CSV file",
    ),
    WOOCOMMERCE: Layout(
        WOOCOMMERCE,
        "WooCommerce order export",
        (
            Role("order_id", ("order_number", "order_id"), required=True),
            Role("ordered_at", ("order_date", "date"), "date", required=True),
            Role("customer_id", ("billing_email",), required=True),
            Role("user_id", ("customer_id",)),
            Role("amount", ("item_total",), "number", required=True),
            Role("refunded", ("item_refunded",), "number", default=0.0),
            Role("status", ("status",)),
            Role("country", ("billing_country",)),
        ),
        _build_woocommerce,
        signature=("order_id", "order_date", "status", "billing_email", "item_total"),
        how_to_export=(
            "export with WooCommerce Customer / Order / Coupon Export in the "
            "'Default - One Row per Item' CSV format"
        ),
    ),
}
PRESETS = tuple(name for name, layout in LAYOUTS.items() if not layout.detected)


def get_layout(name: str) -> Layout:
    try:
        return LAYOUTS[name]
    except KeyError:
        raise LayoutError(f"unknown format {name!r}: choose one of {', '.join(LAYOUTS)}") from None


def _names(header: list[str]) -> set[str]:
    return {h.strip() for h in header}


def matches(header: list[str], layout: Layout) -> bool:
    """Whether the header has every required column of `layout`."""
    names = _names(header)
    return all(any(s in names for s in r.sources) for r in layout.roles if r.required)


def detect_layout(header: list[str]) -> str | None:
    """The layout recognised from the header alone (normalized, online-retail), or None."""
    for layout in LAYOUTS.values():
        if layout.detected and matches(header, layout):
            return layout.name
    return None


def looks_like_preset(header: list[str]) -> Layout | None:
    """A preset whose export this header looks like (its signature columns, or all it needs)."""
    names = _names(header)
    for name in PRESETS:
        layout = LAYOUTS[name]
        if set(layout.signature) <= names or matches(header, layout):
            return layout
    return None


def split_header(line: str, delimiter: str) -> list[str]:
    return [h.strip() for h in next(csv.reader([line], delimiter=delimiter), [])]


def show_delimiter(delimiter: str) -> str:
    """How to write the delimiter on the command line."""
    return "tab" if delimiter == "\t" else delimiter


def detect_delimiter(line: str, layout: str | None = None) -> str:
    """The delimiter of a header line: one under which the header matches `layout` (or any
    recognised layout, or a preset), else the one that splits it into the most fields."""
    wanted = [get_layout(layout)] if layout else list(LAYOUTS.values())
    for candidate in DELIMITERS:
        fields = split_header(line, candidate)
        if len(fields) > 1 and any(matches(fields, w) for w in wanted):
            return candidate
    counts = {d: len(split_header(line, d)) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] > 1 else ","


def unknown_header(header: list[str], line: str, delimiter: str) -> str:
    """Why the header matches no layout, pointing at the likely cause."""
    for candidate in DELIMITERS:
        if candidate == delimiter:
            continue
        fields = split_header(line, candidate)
        if len(fields) > 1 and (detect_layout(fields) or looks_like_preset(fields)):
            return (
                f"the header looks like {show_delimiter(candidate)!r}-separated, not "
                f"{show_delimiter(delimiter)!r}-separated: try "
                f"--delimiter '{show_delimiter(candidate)}'"
            )
    preset = looks_like_preset(header)
    if preset is not None:
        return f"this looks like a {preset.title}: try --format {preset.name}"
    normalized, raw = LAYOUTS[NORMALIZED], LAYOUTS[ONLINE_RETAIL]
    return (
        "unknown layout: expected the columns "
        f"{', '.join(r.name for r in normalized.roles if r.required)} (normalized) or "
        f"{', '.join(r.name for r in raw.roles)} (Online Retail), found "
        f"{', '.join(header) or 'nothing'}. Use --format for a shop's export "
        f"({', '.join(PRESETS)}), or --map target=source to name the columns of another layout."
    )


def resolve_columns(
    header: list[str], layout: Layout, mapping: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Map each role of `layout` found in the header to its source column."""
    names = [h.strip() for h in header]
    mapping = dict(mapping or {})
    unknown = set(mapping) - set(layout.targets)
    if unknown:
        raise LayoutError(
            f"--map names unknown target column(s) {', '.join(sorted(unknown))}; "
            f"targets of the {layout.name} layout are {', '.join(layout.targets)}"
        )
    columns: dict[str, str] = {}
    for role in layout.roles:
        if role.name in mapping:
            source = mapping[role.name]
            if source not in names:
                raise LayoutError(
                    f"--map {role.name}={source}: the file has no column {source!r} "
                    f"(found {', '.join(names)})"
                )
            columns[role.name] = source
            continue
        found = next((s for s in role.sources if s in names), None)
        if found is not None:
            columns[role.name] = found
    missing = [r for r in layout.roles if r.required and r.name not in columns]
    if missing:
        wanted = ", ".join(" or ".join(r.sources) for r in missing)
        hint = f"; {layout.how_to_export}" if layout.how_to_export else ""
        raise LayoutError(
            f"missing required column(s) {wanted} for the {layout.name} layout "
            f"(found {', '.join(names)}){hint}"
        )
    duplicated = sorted({s for s in columns.values() if names.count(s) > 1})
    if duplicated:
        raise LayoutError(f"the header names {', '.join(map(repr, duplicated))} more than once")
    return columns


def order_starts(order_id: pd.Series, previous: str | None) -> pd.Series:
    """True where a row starts a new order: its order id differs from the row before."""
    before = order_id.shift(1)
    if len(order_id):
        before.iloc[0] = previous if previous is not None else np.nan
    return (order_id != before).fillna(True).astype(bool)
