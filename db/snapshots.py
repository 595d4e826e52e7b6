"""Reads of snapshot tables for the pages, the exports and the CLI. Bound parameters only.

A published snapshot never changes (only analysts' segment names, kept apart in
`segment_labels`, do), so its tables are read once per process and kept in a small cache keyed
by database, snapshot id and start time: a filter change then costs a pandas filter over
in-memory frames, never a database scan.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from analytics import aggregates, exports
from analytics.exports import Filters
from analytics.orderindex import OrderIndex
from db.models import (
    SegmentLabel,
    Snapshot,
    SnapshotCustomer,
    SnapshotMigration,
    SnapshotOrder,
    SnapshotRetention,
    SnapshotScore,
    SnapshotSegment,
    SnapshotStatus,
)
from db.queries import read_frame
from db.session import session_scope

CACHE_ENTRIES = 12  # frames (a few kinds x the snapshots being looked at)
_cache: OrderedDict[tuple[Any, ...], pd.DataFrame] = OrderedDict()
_cache_lock = threading.Lock()


_building: dict[tuple[Any, ...], threading.Lock] = {}


def _cached(engine: Engine, snap: Snapshot, kind: str, load: Callable[[], pd.DataFrame]) -> Any:
    key = (str(engine.url), snap.id, snap.started_at, kind)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
        building = _building.setdefault(key, threading.Lock())
    # One load per key: a request that needs what another thread (e.g. `warm`) is reading waits
    # for it instead of reading it a second time (twice the memory, twice the database work).
    with building:
        with _cache_lock:
            if key in _cache:
                _cache.move_to_end(key)
                return _cache[key]
        try:
            frame = load()
            with _cache_lock:
                _cache[key] = frame
                while len(_cache) > CACHE_ENTRIES:
                    _cache.popitem(last=False)
        finally:
            with _cache_lock:
                _building.pop(key, None)
    return frame


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


def warm(engine: Engine, snap: Snapshot) -> None:
    """Read what the pages' filter changes need of `snap` into the cache: its orders (and the
    per-granularity sales tables), customers, retention table, profiles and customer sample.
    A worker does this in the background when it starts and when a snapshot is published
    (webapp/warmup.py), so no user waits for it."""
    index = order_index(engine, snap)
    for granularity in exports.GRANULARITIES:
        index.sales(None, None, (), granularity)
    index.aov_distribution(None, None, ())  # builds each segment's order-value runs
    cached_customers(engine, snap)
    cached_retention(engine, snap)
    segs = segments(engine, snap.id)
    for name in ("profiles", "customer_sample"):
        export_frame(engine, name, Filters(), snap.id, snap=snap, segs=segs)


class NoSnapshot(LookupError):
    """No published snapshot (or not the one asked for)."""


def latest_published(engine: Engine, snapshot_id: int | None = None) -> Snapshot | None:
    """The published snapshot `snapshot_id`, or the latest published one; None if none."""
    stmt = select(Snapshot).where(Snapshot.status == SnapshotStatus.PUBLISHED)
    if snapshot_id is not None:
        stmt = stmt.where(Snapshot.id == snapshot_id)
    with Session(engine, expire_on_commit=False) as db:
        return db.scalars(stmt.order_by(Snapshot.id.desc()).limit(1)).first()


def get_snapshot(engine: Engine, snapshot_id: int | None = None) -> Snapshot:
    """As `latest_published`, but raises NoSnapshot with what to do when there is none."""
    snap = latest_published(engine, snapshot_id)
    if snap is None:
        if snapshot_id is not None:
            raise NoSnapshot(f"no published snapshot {snapshot_id}")
        raise NoSnapshot("no snapshot yet: run `custseg refit` (or 'Refit now' on the Model page)")
    return snap


def _frame(engine: Engine, stmt: Any) -> pd.DataFrame:
    with engine.connect() as conn:
        result = conn.execute(stmt)
        return pd.DataFrame(result.all(), columns=list(result.keys()))


def segments(engine: Engine, snapshot_id: int) -> pd.DataFrame:
    """Profiles, with analysts' names (segment_labels) over the generated ones."""
    s = SnapshotSegment
    frame = _frame(
        engine, select(s).where(s.snapshot_id == snapshot_id).order_by(s.gross_revenue.desc())
    )
    frame.columns = [c.split(".")[-1] for c in frame.columns]
    labels = _frame(engine, select(SegmentLabel.segment_id, SegmentLabel.name))
    if not labels.empty and not frame.empty:
        names = dict(zip(labels["segment_id"], labels["name"], strict=True))
        frame["name"] = [
            names.get(i, n) for i, n in zip(frame["segment_id"], frame["name"], strict=True)
        ]
    return frame


def published(engine: Engine) -> list[Snapshot]:
    """Published snapshots, newest first."""
    stmt = (
        select(Snapshot)
        .where(Snapshot.status == SnapshotStatus.PUBLISHED)
        .order_by(Snapshot.id.desc())
    )
    with Session(engine, expire_on_commit=False) as db:
        return list(db.scalars(stmt))


def orders(engine: Engine, snap: Snapshot) -> pd.DataFrame:
    """Every order of the snapshot with its customer's segment (`day` as a timestamp)."""
    o = SnapshotOrder
    # PostgreSQL: COPY as CSV into pandas' C parser (db.queries.read_frame). At 4.3M orders the
    # fetched-tuples path took ~25 s, the first filter change of every worker after a publish.
    frame = read_frame(
        engine,
        select(o.customer_id, o.segment_id, o.day, o.total).where(o.snapshot_id == snap.id),
        {"customer_id": str, "segment_id": "int64", "total": "float64"},
    )
    if frame.empty:
        frame = pd.DataFrame(columns=["customer_id", "segment_id", "day", "total"])
    frame["segment_id"] = frame["segment_id"].astype(int)
    frame["day"] = pd.to_datetime(frame["day"], format="ISO8601")
    frame["total"] = frame["total"].astype(float)
    return frame


def order_index(engine: Engine, snap: Snapshot) -> OrderIndex:
    """The snapshot's orders as sorted arrays, read once per process (see analytics/orderindex)."""
    return _cached(  # type: ignore[no-any-return]
        engine, snap, "orders", lambda: OrderIndex.build(orders(engine, snap))
    )


def retention_table(engine: Engine, snapshot_id: int) -> pd.DataFrame:
    r = SnapshotRetention
    return _frame(
        engine,
        select(
            r.cohort, r.months_since_first, r.segment_id, r.cohort_size, r.customers, r.revenue
        ).where(r.snapshot_id == snapshot_id),
    )


def migration_table(engine: Engine, snapshot_id: int) -> pd.DataFrame:
    m = SnapshotMigration
    frame = _frame(
        engine,
        select(
            m.from_snapshot_id, m.from_segment, m.to_segment, m.customers, m.gross_revenue
        ).where(m.snapshot_id == snapshot_id),
    )
    if frame.empty:
        return pd.DataFrame(
            columns=["from_snapshot_id", "from_segment", "to_segment", "customers", "gross_revenue"]
        )
    return frame


def customers(engine: Engine, snapshot_id: int, segment_ids: tuple[int, ...] = ()) -> pd.DataFrame:
    """Each customer's segment and features (read from the database on each call)."""
    c = SnapshotCustomer
    stmt = select(
        c.customer_id,
        c.segment_id,
        c.recency_days,
        c.frequency,
        c.monetary,
        c.aov,
        c.tenure_days,
        c.return_rate,
        c.category_breadth,
        c.first_order_day,
        c.last_order_day,
    ).where(c.snapshot_id == snapshot_id)
    if segment_ids:
        stmt = stmt.where(c.segment_id.in_(segment_ids))
    ints = ("segment_id", "recency_days", "frequency", "tenure_days", "category_breadth")
    dtypes: dict[str, Any] = {"customer_id": str, **dict.fromkeys(ints, "int64")}
    dtypes.update(dict.fromkeys(("monetary", "aov", "return_rate"), "float64"))
    frame = read_frame(engine, stmt, dtypes)  # COPY on PostgreSQL: 1M customers at L
    for day in ("first_order_day", "last_order_day"):
        frame[day] = pd.to_datetime(frame[day], format="ISO8601").dt.date
    return frame


def cached_customers(engine: Engine, snap: Snapshot) -> pd.DataFrame:
    """Every customer of the snapshot, sorted by customer id, read once per process."""

    def load() -> pd.DataFrame:
        frame = customers(engine, snap.id).sort_values("customer_id", kind="stable")
        return frame.reset_index(drop=True)

    return _cached(engine, snap, "customers", load)  # type: ignore[no-any-return]


def members_page(
    engine: Engine, snap: Snapshot, segment_ids: tuple[int, ...], page: int, size: int
) -> tuple[pd.DataFrame, int]:
    """One page of the `members` export (same order), and how many members there are."""
    frame = cached_customers(engine, snap)
    if not segment_ids:
        return exports.members(frame.iloc[page * size : (page + 1) * size], Filters()), len(frame)
    # Positions only, then the page's rows: filtering the whole frame copied every column of
    # up to 1M customers on each page turn.
    rows = np.flatnonzero(np.isin(frame["segment_id"].to_numpy(), segment_ids))
    part = exports.members(frame.iloc[rows[page * size : (page + 1) * size]], Filters())
    return part, len(rows)


def cached_retention(engine: Engine, snap: Snapshot) -> pd.DataFrame:
    return _cached(  # type: ignore[no-any-return]
        engine, snap, "retention", lambda: retention_table(engine, snap.id)
    )


def scores(engine: Engine, snapshot_id: int) -> pd.DataFrame:
    s = SnapshotScore
    return _frame(
        engine,
        select(s.k, s.silhouette, s.inertia, s.davies_bouldin).where(s.snapshot_id == snapshot_id),
    )


def history(engine: Engine) -> pd.DataFrame:
    """Every snapshot kept (published, failed, running), with its duration."""
    s = Snapshot
    frame = _frame(
        engine,
        select(
            s.id.label("snapshot_id"),
            s.status,
            s.trigger,
            s.as_of,
            s.started_at,
            s.finished_at,
            s.k,
            s.silhouette,
            s.customers,
            s.stage,
            s.error,
            s.timings,
        ).order_by(s.id.desc()),
    )
    if frame.empty:
        frame["duration_s"] = []
        return frame
    frame["duration_s"] = [
        round((f - b).total_seconds(), 1) if pd.notna(f) and pd.notna(b) else None
        for b, f in zip(frame["started_at"], frame["finished_at"], strict=True)
    ]
    return frame


def migration_between(engine: Engine, source: Snapshot, target: Snapshot) -> pd.DataFrame:
    """Customers moving from `source`'s segments to `target`'s (-1: new / gone)."""
    if target.previous_id == source.id:
        stored = migration_table(engine, target.id)
        if not stored.empty:
            return stored
    frame = aggregates.migration(cached_customers(engine, source), cached_customers(engine, target))
    frame.insert(0, "from_snapshot_id", source.id)
    return frame


def rename_segment(engine: Engine, segment_id: int, name: str, by: str | None = None) -> str:
    """Give a segment an analyst's name; it follows the segment into later snapshots."""
    name = " ".join(str(name).split())
    if not 1 <= len(name) <= 80:
        raise ValueError("a segment name has 1 to 80 characters")
    with session_scope(engine) as db:
        known = db.scalar(
            select(func.count())
            .select_from(SnapshotSegment)
            .where(SnapshotSegment.segment_id == segment_id)
        )
        if not known:
            raise ValueError(f"no segment {segment_id} in any snapshot")
        label = db.get(SegmentLabel, segment_id) or SegmentLabel(segment_id=segment_id)
        label.name = name
        label.renamed_by = by
        label.renamed_at = datetime.now(UTC).replace(tzinfo=None)
        db.add(label)
    return name


def validate_segments(engine: Engine, snapshot_id: int, segment_ids: tuple[int, ...]) -> None:
    _check_segments(segments(engine, snapshot_id), snapshot_id, segment_ids)


def _check_segments(segs: pd.DataFrame, snapshot_id: int, segment_ids: tuple[int, ...]) -> None:
    known = set(segs["segment_id"].astype(int))
    unknown = sorted(set(segment_ids) - known)
    if unknown:
        raise ValueError(
            f"unknown segment id(s) {unknown} in snapshot {snapshot_id}; known: {sorted(known)}"
        )


def export_frame(
    engine: Engine,
    name: str,
    f: Filters,
    snapshot_id: int | None = None,
    active_days: int = 90,
    *,
    snap: Snapshot | None = None,
    segs: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The data of export `name` and its provenance: what a chart shows and its download holds.

    `snap` and `segs` (the snapshot and its `segments`) save a page that draws several charts
    the same lookups; without them they are read here.
    """
    if name not in exports.EXPORTS:
        raise ValueError(f"unknown export {name!r}: choose one of {', '.join(exports.EXPORTS)}")
    if f.start and f.end and f.start > f.end:
        raise ValueError(f"--start {f.start} is after --end {f.end}")
    for day in (f.start, f.end):
        if day is not None and not exports.FIRST_DAY <= day <= exports.LAST_DAY:
            raise ValueError(
                f"{day} is outside the dates a filter accepts "
                f"({exports.FIRST_DAY} to {exports.LAST_DAY})"
            )
    if snap is None or (snapshot_id is not None and snap.id != snapshot_id):
        snap = get_snapshot(engine, snapshot_id)
        segs = None
    if segs is None:
        segs = segments(engine, snap.id)
    _check_segments(segs, snap.id, f.segments)
    extra: dict[str, Any] = {}
    if name == "kpis":
        frame = exports.kpis(order_index(engine, snap), f, active_days)
    elif name == "kpi_comparison":
        assert snap.data_start is not None and snap.data_end is not None
        frame = exports.kpi_comparison(
            order_index(engine, snap), f, snap.data_start, snap.data_end, active_days
        )
    elif name == "segments":
        frame = exports.segments(segs, f)
    elif name == "profiles":
        # Computed once per snapshot for every segment; the names are today's (renames).
        every = _cached(
            engine,
            snap,
            "profiles",
            lambda: exports.profiles(cached_customers(engine, snap), segs, Filters()),
        )
        frame = every[every["segment_id"].isin(f.segments)] if f.segments else every.copy()
        names = dict(zip(segs["segment_id"], segs["name"], strict=True))
        frame["name"] = frame["segment_id"].map(names)
        frame = frame.reset_index(drop=True)
    elif name == "customer_sample":
        every = _cached(
            engine,
            snap,
            "customer_sample",
            lambda: exports.customer_sample(cached_customers(engine, snap), Filters()),
        )
        frame = exports.customer_sample(every, f) if f.segments else every.copy()
    elif name == "sales":
        frame = exports.sales(order_index(engine, snap), f)
    elif name == "aov_distribution":
        frame = exports.aov_distribution(order_index(engine, snap), f)
    elif name == "retention":
        frame = exports.retention(cached_retention(engine, snap), f)
    elif name == "retention_trend":
        frame = exports.retention_trend(cached_retention(engine, snap), f)
    elif name == "repeat_rate":
        frame = exports.repeat_rate(order_index(engine, snap), f)
    elif name == "migration":
        if f.compare_to is not None:
            if f.compare_to >= snap.id:
                raise ValueError(
                    f"compare_to must be a snapshot earlier than {snap.id} (got {f.compare_to})"
                )
            source = get_snapshot(engine, f.compare_to)
        elif snap.previous_id is not None:
            source = latest_published(engine, snap.previous_id) or snap
        else:
            source = snap
        if source.id == snap.id:  # the first snapshot: nobody moved yet
            frame = exports.migration(migration_table(engine, snap.id).iloc[0:0], f)
        else:
            frame = exports.migration(migration_between(engine, source, snap), f)
        extra["from_snapshot_id"] = source.id if source.id != snap.id else None
    elif name == "members":
        frame = exports.members(cached_customers(engine, snap), f)
    elif name == "customer_orders":
        frame = exports.customer_orders(order_index(engine, snap), f)
        frame["day"] = frame["day"].dt.date
    elif name == "scores":
        frame = exports.scores(scores(engine, snap.id), snap.k)
    else:
        frame = exports.snapshots(history(engine))
    provenance: dict[str, Any] = {
        "export": name,
        "snapshot_id": snap.id,
        "as_of": snap.as_of,
        "data_window": f"{snap.data_start} .. {snap.data_end}",
        "fitted_at": snap.finished_at,
        **extra,
        **{f"filter_{k}": v for k, v in f.describe().items()},
        "exported_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "rows": len(frame),
    }
    return frame, provenance


def customer_history(engine: Engine, customer_id: str) -> pd.DataFrame:
    """The customer's segment and features in each published snapshot, newest first."""
    c, s = SnapshotCustomer, Snapshot
    frame = _frame(
        engine,
        select(
            s.id.label("snapshot_id"),
            s.as_of,
            c.segment_id,
            c.recency_days,
            c.frequency,
            c.monetary,
        )
        .join(s, s.id == c.snapshot_id)
        .where(c.customer_id == customer_id, s.status == SnapshotStatus.PUBLISHED)
        .order_by(s.id.desc()),
    )
    return frame
