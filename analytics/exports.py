"""The brief's exports as pure functions over snapshot frames, and their file formats.

The same functions serve `custseg export` and the pages' download buttons. Column names are
stable (users automate them); provenance (snapshot, as-of, filters, export time) travels with
every file: `#` comment lines at the top of a CSV, a "provenance" sheet in an XLSX.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd

from analytics.aggregates import rollup
from analytics.metrics import kpis as kpi_figures

EXPORTS = ("kpis", "segments", "sales", "retention", "migration", "members")
GRANULARITIES = ("day", "week", "month")
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "|", "%")


@dataclass(frozen=True)
class Filters:
    start: date | None = None
    end: date | None = None
    segments: tuple[int, ...] = ()
    granularity: str = "month"
    split_by_segment: bool = False

    def describe(self) -> dict[str, str]:
        return {
            "start": str(self.start or "all"),
            "end": str(self.end or "all"),
            "segments": ",".join(map(str, self.segments)) or "all",
            "granularity": self.granularity,
            "split_by_segment": str(self.split_by_segment).lower(),
        }


def _in_segments(
    frame: pd.DataFrame, segments: Sequence[int], column: str = "segment_id"
) -> pd.DataFrame:
    return frame[frame[column].isin(segments)] if segments else frame


def _in_days(frame: pd.DataFrame, f: Filters, column: str = "day") -> pd.DataFrame:
    day = pd.to_datetime(frame[column])
    mask = pd.Series(True, index=frame.index)
    if f.start:
        mask &= day >= pd.Timestamp(f.start)
    if f.end:
        mask &= day <= pd.Timestamp(f.end)
    return frame[mask]


def kpis(orders: pd.DataFrame, f: Filters, active_days: int = 90) -> pd.DataFrame:
    """orders: customer_id, segment_id, day, total."""
    o = _in_segments(orders, f.segments)
    o = o.assign(ordered_at=pd.to_datetime(o["day"]))
    figures = kpi_figures(o, f.start, f.end, active_days).as_dict()
    return pd.DataFrame([figures])


def segments(profiles: pd.DataFrame, f: Filters) -> pd.DataFrame:
    cols = [
        "segment_id",
        "name",
        "customers",
        "share",
        "gross_revenue",
        "revenue_share",
        "aov",
        "recency_days",
        "frequency",
        "monetary",
        "repeat_rate",
        "description",
    ]
    return _in_segments(profiles, f.segments)[cols].reset_index(drop=True)


def sales(orders: pd.DataFrame, f: Filters) -> pd.DataFrame:
    """Per period x segment: orders, customers, gross and net revenue, AOV."""
    if f.granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {', '.join(GRANULARITIES)}")
    o = _in_days(_in_segments(orders, f.segments), f)
    day = pd.to_datetime(o["day"])
    if f.granularity == "day":
        period = day
    elif f.granularity == "week":
        period = day - pd.to_timedelta(day.dt.dayofweek, unit="D")
    else:
        period = day.dt.to_period("M").dt.to_timestamp()
    keys = ["period", "segment_id"]
    out = rollup(o.assign(period=period.dt.date), keys).reset_index()
    out["aov"] = (out["gross_revenue"] / out["orders"].where(out["orders"] > 0)).round(4)
    return (
        out[["period", "segment_id", "orders", "customers", "gross_revenue", "net_revenue", "aov"]]
        .sort_values(keys)
        .reset_index(drop=True)
    )


def retention(table: pd.DataFrame, f: Filters) -> pd.DataFrame:
    """Cohorts whose month lies in [start, end], activity counted up to the end month.

    table: cohort, months_since_first, segment_id, cohort_size, customers, revenue.
    """
    t = _in_segments(table, f.segments)
    cohort = pd.to_datetime(t["cohort"])
    mask = pd.Series(True, index=t.index)
    if f.start:
        mask &= cohort >= pd.Timestamp(f.start).to_period("M").to_timestamp()
    if f.end:
        end_month = pd.Timestamp(f.end).to_period("M").to_timestamp()
        mask &= cohort <= end_month
        months_left = (end_month.year - cohort.dt.year) * 12 + (end_month.month - cohort.dt.month)
        mask &= t["months_since_first"] <= months_left
    t = t[mask]
    keys = ["cohort", "months_since_first"] + (["segment_id"] if f.split_by_segment else [])
    sizes = t[["cohort", "segment_id", "cohort_size"]].drop_duplicates()
    size_keys = ["cohort"] + (["segment_id"] if f.split_by_segment else [])
    size = sizes.groupby(size_keys)["cohort_size"].sum()
    out = t.groupby(keys)[["customers", "revenue"]].sum().reset_index()
    out = out.merge(size.reset_index(), on=size_keys)
    out["retention"] = (out["customers"] / out["cohort_size"]).round(6)
    cols = ["cohort", "months_since_first"] + (["segment_id"] if f.split_by_segment else [])
    cols += ["cohort_size", "customers", "retention", "revenue"]
    return out[cols].sort_values(keys).reset_index(drop=True)


def migration(table: pd.DataFrame, f: Filters) -> pd.DataFrame:
    t = table
    if f.segments:
        t = t[t["from_segment"].isin(f.segments) | t["to_segment"].isin(f.segments)]
    cols = ["from_segment", "to_segment", "customers", "gross_revenue"]
    return t[cols].sort_values(["from_segment", "to_segment"]).reset_index(drop=True)


def members(customers: pd.DataFrame, f: Filters) -> pd.DataFrame:
    cols = [
        "customer_id",
        "segment_id",
        "recency_days",
        "frequency",
        "monetary",
        "aov",
        "tenure_days",
        "return_rate",
        "first_order_day",
        "last_order_day",
    ]
    return (
        _in_segments(customers, f.segments)[cols].sort_values("customer_id").reset_index(drop=True)
    )


def neutralize(frame: pd.DataFrame) -> pd.DataFrame:
    """Text cells a spreadsheet would run as a formula get a leading apostrophe."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            s = out[col]
            is_text = s.map(lambda v: isinstance(v, str))
            risky = is_text & s.astype(str).str.startswith(FORMULA_PREFIXES)
            if risky.any():
                out[col] = s.where(~risky, "'" + s.astype(str))
    return out


def to_bytes(frame: pd.DataFrame, fmt: str, provenance: dict[str, Any]) -> bytes:
    """The file content of an export: CSV (comment header) or XLSX (data + provenance sheet)."""
    safe = neutralize(frame)
    if fmt == "csv":
        # CRLF rows (RFC 4180): the writer then quotes any cell holding a bare CR, which a
        # spreadsheet would otherwise read as a new row starting with what follows the CR.
        head = "".join(f"# {k}: {v}\r\n" for k, v in provenance.items())
        return (head + safe.to_csv(index=False, lineterminator="\r\n")).encode("utf-8")
    if fmt == "xlsx":
        buf = io.BytesIO()
        prov = neutralize(
            pd.DataFrame({"key": list(provenance), "value": [str(v) for v in provenance.values()]})
        )
        with pd.ExcelWriter(buf, engine="openpyxl") as writer:
            safe.to_excel(writer, sheet_name="data", index=False)
            prov.to_excel(writer, sheet_name="provenance", index=False)
        return buf.getvalue()
    raise ValueError(f"format must be csv or xlsx, not {fmt!r}")
