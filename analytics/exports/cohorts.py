"""Exports of cohorts: retention by cohort and month, month-m retention across cohorts.

Both read the snapshot's retention table (analytics/aggregates.retention): per cohort month ×
months since first order × segment, the cohort's size and the customers active that month.
"""

from __future__ import annotations

import pandas as pd

from analytics.exports.registry import Sources, export, in_segments
from analytics.exports.spec import Filters

RETENTION_COLUMNS = (
    "cohort",
    "months_since_first",
    "segment_id",
    "cohort_size",
    "customers",
    "retention",
    "revenue",
)
TREND_COLUMNS = (
    "cohort",
    "segment_id",
    "months_since_first",
    "cohort_size",
    "customers",
    "retention",
)


def _month(day: object) -> pd.Timestamp:
    return pd.Timestamp(day).to_period("M").to_timestamp()


@export(
    "retention",
    reads=("retention",),
    columns=RETENTION_COLUMNS,
    optional=("segment_id",),
    row=(
        "cohort × month offset (× segment with `--split-by-segment`), every month from the "
        "cohort's to the data end or `--end`, months nobody came back included (0)"
    ),
    options=("split_by_segment",),
)
def retention(src: Sources, f: Filters) -> pd.DataFrame:
    """Cohorts whose month lies in the range, their activity counted up to the range's end."""
    t = in_segments(src.retention, f.segments)
    cohort = pd.to_datetime(t["cohort"])
    mask = pd.Series(True, index=t.index)
    if f.start:
        mask &= cohort >= _month(f.start)
    if f.end:
        end_month = _month(f.end)
        mask &= cohort <= end_month
        months_left = (end_month.year - cohort.dt.year) * 12 + (end_month.month - cohort.dt.month)
        mask &= t["months_since_first"] <= months_left
    t = t[mask]
    split = ["segment_id"] if f.split_by_segment else []
    keys = ["cohort", "months_since_first", *split]
    sizes = t[["cohort", "segment_id", "cohort_size"]].drop_duplicates()
    size = sizes.groupby(["cohort", *split])["cohort_size"].sum()
    out = t.groupby(keys)[["customers", "revenue"]].sum().reset_index()
    out = out.merge(size.reset_index(), on=["cohort", *split])
    out["retention"] = (out["customers"] / out["cohort_size"]).round(6)
    cols = [c for c in RETENTION_COLUMNS if c != "segment_id" or split]
    return out[cols].sort_values(keys).reset_index(drop=True)


@export(
    "retention_trend",
    reads=("retention",),
    columns=TREND_COLUMNS,
    row="cohort × segment (`--month M`, default 1)",
    options=("month",),
)
def retention_trend(src: Sources, f: Filters) -> pd.DataFrame:
    """Retention at month m for each cohort and segment, cohorts old enough only.

    A cohort counts when cohort + m lies in the range (up to the end month, or the last month
    with any activity); cohorts with nobody back that month get 0.
    """
    t = in_segments(src.retention, f.segments)
    if t.empty:
        return pd.DataFrame(columns=list(TREND_COLUMNS))
    cohort = pd.to_datetime(t["cohort"])
    if f.end:
        end_month = _month(f.end)
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
        keep &= sizes["cohort"] >= _month(f.start)
    sizes = sizes[keep]
    back = t[t["months_since_first"] == f.month].assign(cohort=cohort)
    out = sizes.merge(
        back[["cohort", "segment_id", "customers"]], on=["cohort", "segment_id"], how="left"
    )
    out["customers"] = out["customers"].fillna(0).astype(int)
    out["months_since_first"] = f.month
    out["retention"] = (out["customers"] / out["cohort_size"]).round(6)
    out["cohort"] = out["cohort"].dt.date
    return out[list(TREND_COLUMNS)].sort_values(["segment_id", "cohort"]).reset_index(drop=True)
