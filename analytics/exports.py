"""The brief's exports as pure functions over snapshot frames, and their file formats.

The same functions serve `custseg export` and the pages' download buttons. Column names are
stable (users automate them); provenance (snapshot, as-of, filters, export time) travels with
every file: `#` comment lines at the top of a CSV, a "provenance" sheet in an XLSX.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

import pandas as pd

from analytics.aggregates import rollup
from analytics.metrics import kpis as kpi_figures
from analytics.orderindex import OrderIndex
from analytics.segmentation import PROFILE_FEATURES

# The brief's six exports first; then one per further chart, so every chart's data can be taken
# out the same way from the page and from `custseg export`.
EXPORTS = (
    "kpis",
    "segments",
    "sales",
    "retention",
    "migration",
    "members",
    "kpi_comparison",
    "profiles",
    "customer_sample",
    "aov_distribution",
    "retention_trend",
    "repeat_rate",
    "customer_orders",
    "scores",
    "snapshots",
)
GRANULARITIES = ("day", "week", "month")
# Filter dates outside these days are refused: far enough for any shop, near enough that a
# range and the period of equal length before it stay within what pandas can represent.
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(2100, 12, 31)
MAX_RETENTION_MONTH = 24
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "|", "%")


@dataclass(frozen=True)
class Filters:
    start: date | None = None
    end: date | None = None
    segments: tuple[int, ...] = ()
    granularity: str = "month"
    split_by_segment: bool = False
    month: int = 1  # retention_trend: the month since first order
    compare_to: int | None = None  # migration: the snapshot customers come from
    customer: str | None = None  # customer_orders: one customer id

    def describe(self) -> dict[str, str]:
        out = {
            "start": str(self.start or "all"),
            "end": str(self.end or "all"),
            "segments": ",".join(map(str, self.segments)) or "all",
            "granularity": self.granularity,
            "split_by_segment": str(self.split_by_segment).lower(),
            "month": str(self.month),
        }
        if self.compare_to is not None:
            out["compare_to"] = str(self.compare_to)
        if self.customer is not None:
            out["customer"] = self.customer
        return out


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


type Orders = pd.DataFrame | OrderIndex  # the frame (reference) or its sorted index (fast)


def kpis(orders: Orders, f: Filters, active_days: int = 90) -> pd.DataFrame:
    """orders: customer_id, segment_id, day, total."""
    if isinstance(orders, OrderIndex):
        return pd.DataFrame([orders.kpis(f.start, f.end, f.segments, active_days).as_dict()])
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
    out = _in_segments(profiles, f.segments)[cols].reset_index(drop=True)
    # Sums of cents and ratios, rounded as the other exports round them.
    out[["gross_revenue", "monetary"]] = out[["gross_revenue", "monetary"]].astype(float).round(2)
    out[["share", "revenue_share", "repeat_rate"]] = (
        out[["share", "revenue_share", "repeat_rate"]].astype(float).round(6)
    )
    out["aov"] = out["aov"].astype(float).round(4)
    return out


def sales(orders: Orders, f: Filters) -> pd.DataFrame:
    """Per period x segment: orders, customers, gross and net revenue, AOV, revenue share."""
    if f.granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {', '.join(GRANULARITIES)}")
    keys = ["period", "segment_id"]
    if isinstance(orders, OrderIndex):
        return _sales_columns(orders.sales(f.start, f.end, f.segments, f.granularity))
    o = _in_days(_in_segments(orders, f.segments), f)
    day = pd.to_datetime(o["day"])
    if f.granularity == "day":
        period = day
    elif f.granularity == "week":
        period = day - pd.to_timedelta(day.dt.dayofweek, unit="D")
    else:
        period = day.dt.to_period("M").dt.to_timestamp()
    return _sales_columns(rollup(o.assign(period=period.dt.date), keys).reset_index())


def _sales_columns(out: pd.DataFrame) -> pd.DataFrame:
    keys = ["period", "segment_id"]
    out["aov"] = (out["gross_revenue"] / out["orders"].where(out["orders"] > 0)).round(4)
    period_total = out.groupby("period")["gross_revenue"].transform("sum")
    out["revenue_share"] = (out["gross_revenue"] / period_total.where(period_total > 0)).round(6)
    cols = ["period", "segment_id", "orders", "customers", "gross_revenue", "net_revenue", "aov"]
    return out[cols + ["revenue_share"]].sort_values(keys).reset_index(drop=True)


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
    out = t[cols].sort_values(["from_segment", "to_segment"]).reset_index(drop=True)
    out["gross_revenue"] = out["gross_revenue"].astype(float).round(2)  # sums of cents
    return out


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
    out = _in_segments(customers, f.segments)[cols]
    if not out["customer_id"].is_monotonic_increasing:
        out = out.sort_values("customer_id")
    return out.reset_index(drop=True)


KPI_ORDER = (
    "customers",
    "active_customers",
    "orders",
    "returns",
    "gross_revenue",
    "net_revenue",
    "aov",
    "repeat_rate",
)


def previous_period(start: date, end: date) -> tuple[date, date]:
    """The period of the same length that ends the day before `start`."""
    days = (end - start).days + 1
    prev_end = start - timedelta(days=1)
    return prev_end - timedelta(days=days - 1), prev_end


def kpi_comparison(
    orders: Orders, f: Filters, first: date, last: date, active_days: int = 90
) -> pd.DataFrame:
    """Each KPI in the period and in the previous period of equal length, with the change.

    `first`, `last`: the snapshot's data window, used where the filter leaves a bound open.
    """
    start, end = f.start or first, f.end or last
    prev_start, prev_end = previous_period(start, end)
    now = kpis(orders, replace(f, start=start, end=end), active_days).iloc[0]
    before = kpis(orders, replace(f, start=prev_start, end=prev_end), active_days).iloc[0]
    rows = []
    for metric in KPI_ORDER:
        cur, prev = now[metric], before[metric]
        cur = None if pd.isna(cur) else float(cur)
        prev = None if pd.isna(prev) else float(prev)
        diff = cur - prev if cur is not None and prev is not None else None
        change = diff / abs(prev) if diff is not None and prev else None
        rows.append(
            {
                "metric": metric,
                "current": cur,
                "previous": prev,
                "difference": diff,
                "change": change,
                "current_start": start,
                "current_end": end,
                "previous_start": prev_start,
                "previous_end": prev_end,
            }
        )
    return pd.DataFrame(rows)


def profiles(customers: pd.DataFrame, segment_names: pd.DataFrame, f: Filters) -> pd.DataFrame:
    """Per segment x feature: the segment's mean and median against every customer's mean.

    `ratio_to_average` = segment mean / mean of all customers (2.0: twice the average).
    customers: one row per customer with the PROFILE_FEATURES; segment_names: segment_id, name,
    centroid (the K-Means centre in original units, for the model features).
    """
    features = [c for c in PROFILE_FEATURES if c in customers.columns]
    overall = customers[features].mean()
    g = customers.groupby("segment_id")[features]
    means, medians = g.mean(), g.median()
    rows = []
    for seg in segment_names.itertuples():
        if f.segments and seg.segment_id not in f.segments:
            continue
        if seg.segment_id not in means.index:
            continue
        centroid = seg.centroid if isinstance(seg.centroid, dict) else {}
        for feat in features:
            avg = float(overall[feat])
            mean = float(means.at[seg.segment_id, feat])
            rows.append(
                {
                    "segment_id": int(seg.segment_id),
                    "name": seg.name,
                    "feature": feat,
                    "segment_mean": round(mean, 4),
                    "segment_median": round(float(medians.at[seg.segment_id, feat]), 4),
                    "centroid": centroid.get(feat),
                    "average": round(avg, 4),
                    "ratio_to_average": round(mean / avg, 4) if avg else None,
                }
            )
    cols = [
        "segment_id",
        "name",
        "feature",
        "segment_mean",
        "segment_median",
        "centroid",
        "average",
        "ratio_to_average",
    ]
    return pd.DataFrame(rows, columns=cols)


def customer_sample(
    customers: pd.DataFrame, f: Filters, per_segment: int = 400, seed: int = 0
) -> pd.DataFrame:
    """A fixed-seed sample of up to `per_segment` customers of each segment, for a scatter."""
    c = _in_segments(customers, f.segments).sort_values("customer_id")
    parts = [
        grp.sample(n=min(per_segment, len(grp)), random_state=seed)
        for _, grp in c.groupby("segment_id", sort=True)
    ]
    cols = ["customer_id", "segment_id", "recency_days", "frequency", "monetary"]
    if not parts:
        return pd.DataFrame(columns=cols)
    return pd.concat(parts)[cols].sort_values(["segment_id", "customer_id"]).reset_index(drop=True)


def aov_distribution(orders: Orders, f: Filters) -> pd.DataFrame:
    """Per segment: the distribution of positive order totals in the period (box-plot figures)."""
    cols = ["segment_id", "orders", "mean", "min", "p05", "q1", "median", "q3", "p95", "max"]
    if isinstance(orders, OrderIndex):
        out = orders.aov_distribution(f.start, f.end, f.segments)
        out[cols[2:]] = out[cols[2:]].astype(float).round(4)
        return out[cols]
    o = _in_days(_in_segments(orders, f.segments), f)
    o = o[o["total"] > 0]
    if o.empty:
        return pd.DataFrame(columns=cols)
    g = o.groupby("segment_id")["total"]
    q = g.quantile([0.05, 0.25, 0.5, 0.75, 0.95]).unstack()
    out = pd.DataFrame(
        {
            "orders": g.size(),
            "mean": g.mean(),
            "min": g.min(),
            "p05": q[0.05],
            "q1": q[0.25],
            "median": q[0.5],
            "q3": q[0.75],
            "p95": q[0.95],
            "max": g.max(),
        }
    ).round(4)
    return out.reset_index()[cols]


def retention_trend(table: pd.DataFrame, f: Filters) -> pd.DataFrame:
    """Retention at month `f.month` for each cohort and segment, cohorts old enough only.

    A cohort counts when cohort + month lies in the range (up to the end month, or the last month
    with any activity); cohorts with nobody back that month get 0.
    """
    if not 1 <= f.month <= MAX_RETENTION_MONTH:
        raise ValueError(f"month must be from 1 to {MAX_RETENTION_MONTH}")
    cols = ["cohort", "segment_id", "months_since_first", "cohort_size", "customers", "retention"]
    t = _in_segments(table, f.segments)
    if t.empty:
        return pd.DataFrame(columns=cols)
    cohort = pd.to_datetime(t["cohort"])
    if f.end:
        end_month = pd.Timestamp(f.end).to_period("M").to_timestamp()
    else:
        months = cohort.dt.year * 12 + cohort.dt.month - 1 + t["months_since_first"]
        last = int(months.max())
        end_month = pd.Timestamp(year=last // 12, month=last % 12 + 1, day=1)
    sizes = (
        t.assign(cohort=cohort)[["cohort", "segment_id", "cohort_size"]]
        .drop_duplicates(["cohort", "segment_id"])
        .reset_index(drop=True)
    )
    months_left = (end_month.year - sizes["cohort"].dt.year) * 12 + (
        end_month.month - sizes["cohort"].dt.month
    )
    keep = months_left >= f.month
    if f.start:
        keep &= sizes["cohort"] >= pd.Timestamp(f.start).to_period("M").to_timestamp()
    sizes = sizes[keep]
    back = t[t["months_since_first"] == f.month].assign(cohort=cohort)
    out = sizes.merge(
        back[["cohort", "segment_id", "customers"]], on=["cohort", "segment_id"], how="left"
    )
    out["customers"] = out["customers"].fillna(0).astype(int)
    out["months_since_first"] = f.month
    out["retention"] = (out["customers"] / out["cohort_size"]).round(6)
    out["cohort"] = out["cohort"].dt.date
    return out[cols].sort_values(["segment_id", "cohort"]).reset_index(drop=True)


def repeat_rate(orders: Orders, f: Filters) -> pd.DataFrame:
    """Per segment: customers with a positive order in the period, those with two or more."""
    if isinstance(orders, OrderIndex):
        return orders.repeat_rate(f.start, f.end, f.segments)
    o = _in_days(_in_segments(orders, f.segments), f)
    o = o[o["total"] > 0]
    cols = ["segment_id", "customers", "repeat_customers", "repeat_rate"]
    if o.empty:
        return pd.DataFrame(columns=cols)
    per_customer = o.groupby(["segment_id", "customer_id"]).size()
    g = per_customer.groupby(level="segment_id")
    out = pd.DataFrame({"customers": g.size(), "repeat_customers": g.agg(lambda s: (s >= 2).sum())})
    out["repeat_rate"] = (out["repeat_customers"] / out["customers"]).round(6)
    return out.reset_index()[cols]


def customer_orders(orders: Orders, f: Filters) -> pd.DataFrame:
    """Every order of customer `f.customer` up to the snapshot's as-of date (returns included)."""
    cols = ["customer_id", "day", "segment_id", "total"]
    if not f.customer:
        raise ValueError("customer_orders needs a customer id")
    if isinstance(orders, OrderIndex):
        o = orders.customer_orders(f.customer)
    else:
        o = orders[orders["customer_id"] == f.customer]
    out = o[cols].sort_values(["day", "total"]).reset_index(drop=True)
    out["total"] = out["total"].astype(float).round(2)  # sums of line amounts in cents
    return out


def scores(table: pd.DataFrame, chosen_k: int | None) -> pd.DataFrame:
    """Model quality per k tried, the chosen k marked."""
    out = table[["k", "silhouette", "inertia", "davies_bouldin"]].sort_values("k").copy()
    out["chosen"] = out["k"] == chosen_k
    return out.reset_index(drop=True)


def snapshots(history: pd.DataFrame) -> pd.DataFrame:
    """Every snapshot still kept: status, times and size (newest first)."""
    cols = [
        "snapshot_id",
        "status",
        "trigger",
        "as_of",
        "started_at",
        "finished_at",
        "duration_s",
        "k",
        "silhouette",
        "customers",
        "stage",
        "error",
    ]
    return history[cols].sort_values("snapshot_id", ascending=False).reset_index(drop=True)


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
