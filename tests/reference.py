"""The pandas definitions of the order exports: the oracle the fast path is tested against.

`analytics/orderindex.py` computes these figures with sorted arrays and running sums; here they
are written the plain way, over a frame of orders (customer_id, segment_id, day, total), from
the definitions of docs/METRICS.md (`analytics.metrics`, `analytics.aggregates.rollup`). Also
`FrameSources`: a snapshot's frames served from memory, for calling exports without a database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pandas as pd

from analytics.aggregates import rollup
from analytics.exports import SnapshotInfo
from analytics.exports.customers import profile_table, sample_customers
from analytics.exports.orders import sales_columns
from analytics.exports.spec import GRANULARITIES, Filters
from analytics.metrics import kpis as kpi_figures
from analytics.orderindex import OrderIndex


def _in_segments(frame: pd.DataFrame, segments: Sequence[int]) -> pd.DataFrame:
    return frame[frame["segment_id"].isin(segments)] if segments else frame


def _in_days(frame: pd.DataFrame, f: Filters) -> pd.DataFrame:
    day = pd.to_datetime(frame["day"])
    mask = pd.Series(True, index=frame.index)
    if f.start:
        mask &= day >= pd.Timestamp(f.start)
    if f.end:
        mask &= day <= pd.Timestamp(f.end)
    return frame[mask]


def kpis(orders: pd.DataFrame, f: Filters, active_days: int = 90) -> pd.DataFrame:
    o = _in_segments(orders, f.segments)
    o = o.assign(ordered_at=pd.to_datetime(o["day"]))
    return pd.DataFrame([kpi_figures(o, f.start, f.end, active_days).as_dict()])


def sales(orders: pd.DataFrame, f: Filters) -> pd.DataFrame:
    assert f.granularity in GRANULARITIES
    o = _in_days(_in_segments(orders, f.segments), f)
    day = pd.to_datetime(o["day"])
    if f.granularity == "day":
        period = day
    elif f.granularity == "week":
        period = day - pd.to_timedelta(day.dt.dayofweek, unit="D")
    else:
        period = day.dt.to_period("M").dt.to_timestamp()
    keys = ["period", "segment_id"]
    return sales_columns(rollup(o.assign(period=period.dt.date), keys).reset_index())


def aov_distribution(orders: pd.DataFrame, f: Filters) -> pd.DataFrame:
    cols = ["segment_id", "orders", "mean", "min", "p05", "q1", "median", "q3", "p95", "max"]
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


def repeat_rate(orders: pd.DataFrame, f: Filters) -> pd.DataFrame:
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


def customer_orders(orders: pd.DataFrame, f: Filters) -> pd.DataFrame:
    o = orders[orders["customer_id"] == f.customer]
    out = o[["customer_id", "day", "segment_id", "total"]].sort_values(["day", "total"])
    out = out.reset_index(drop=True)
    out["day"] = pd.to_datetime(out["day"]).dt.date
    out["total"] = out["total"].astype(float).round(2)
    return out


@dataclass
class FrameSources:
    """A snapshot's frames in memory (see `analytics.exports.Sources`)."""

    orders_frame: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["customer_id", "segment_id", "day", "total"])
    )
    customers_frame: pd.DataFrame = field(default_factory=pd.DataFrame)
    segments_frame: pd.DataFrame = field(default_factory=pd.DataFrame)
    retention_frame: pd.DataFrame = field(default_factory=pd.DataFrame)
    scores_frame: pd.DataFrame = field(default_factory=pd.DataFrame)
    history_frame: pd.DataFrame = field(default_factory=pd.DataFrame)
    moves: pd.DataFrame = field(default_factory=pd.DataFrame)
    predictions_frame: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(
            columns=[
                "customer_id",
                "segment_id",
                "expected_orders_90d",
                "churn_risk",
                "clv_12m",
                "unscored_reason",
            ]
        )
    )
    stages_frame: pd.DataFrame = field(default_factory=pd.DataFrame)
    previews_frame: pd.DataFrame = field(default_factory=pd.DataFrame)
    stage_moves: pd.DataFrame = field(default_factory=pd.DataFrame)
    info: SnapshotInfo = field(
        default_factory=lambda: SnapshotInfo(1, None, None, None, None, None, 90)
    )
    _index: OrderIndex | None = None
    read: list[str] = field(default_factory=list)  # what exports read, in order

    def _note(self, name: str) -> None:
        self.read.append(name)

    @property
    def snapshot(self) -> SnapshotInfo:
        self._note("snapshot")
        return self.info

    @property
    def orders(self) -> OrderIndex:
        self._note("orders")
        if self._index is None:
            self._index = OrderIndex.build(self.orders_frame)
        return self._index

    @property
    def customers(self) -> pd.DataFrame:
        self._note("customers")
        return self.customers_frame

    @property
    def predictions(self) -> pd.DataFrame:
        self._note("predictions")
        return self.predictions_frame

    @property
    def segments(self) -> pd.DataFrame:
        self._note("segments")
        return self.segments_frame

    @property
    def profiles(self) -> pd.DataFrame:
        self._note("profiles")
        return profile_table(self.customers_frame, self.segments_frame)

    @property
    def customer_sample(self) -> pd.DataFrame:
        self._note("customer_sample")
        return sample_customers(self.customers_frame)

    @property
    def retention(self) -> pd.DataFrame:
        self._note("retention")
        return self.retention_frame

    @property
    def scores(self) -> pd.DataFrame:
        self._note("scores")
        return self.scores_frame

    @property
    def history(self) -> pd.DataFrame:
        self._note("history")
        return self.history_frame

    def migration(self, compare_to: int | None) -> tuple[pd.DataFrame, int | None]:
        self._note("migration")
        return self.moves, compare_to

    @property
    def stages(self) -> pd.DataFrame:
        self._note("stages")
        return self.stages_frame

    @property
    def k_previews(self) -> pd.DataFrame:
        self._note("k_previews")
        return self.previews_frame

    def stage_migration(self, compare_to: int | None) -> tuple[pd.DataFrame, int | None]:
        self._note("stage_migration")
        return self.stage_moves, compare_to


def window(first: date, last: date, **kw: Any) -> SnapshotInfo:
    """A SnapshotInfo with a data window (for kpi_comparison)."""
    return SnapshotInfo(1, last, first, last, kw.get("k"), None, kw.get("active_days", 90))
