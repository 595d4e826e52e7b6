"""Reads of snapshot tables for the pages, the exports and the CLI. Bound parameters only."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from analytics import exports
from analytics.exports import Filters
from db.models import (
    SegmentLabel,
    Snapshot,
    SnapshotCustomer,
    SnapshotMigration,
    SnapshotOrder,
    SnapshotRetention,
    SnapshotSegment,
)


class NoSnapshot(LookupError):
    """No published snapshot (or not the one asked for)."""


def latest_published(engine: Engine, snapshot_id: int | None = None) -> Snapshot | None:
    """The published snapshot `snapshot_id`, or the latest published one; None if none."""
    stmt = select(Snapshot).where(Snapshot.status == "published")
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


def orders(engine: Engine, snapshot_id: int, f: Filters) -> pd.DataFrame:
    o = SnapshotOrder
    stmt = select(o.customer_id, o.segment_id, o.day, o.total).where(o.snapshot_id == snapshot_id)
    if f.start:
        stmt = stmt.where(o.day >= f.start)
    if f.end:
        stmt = stmt.where(o.day <= f.end)
    if f.segments:
        stmt = stmt.where(o.segment_id.in_(f.segments))
    frame = _frame(engine, stmt)
    if frame.empty:
        frame = pd.DataFrame(columns=["customer_id", "segment_id", "day", "total"])
    frame["total"] = frame["total"].astype(float)
    return frame


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
        c.first_order_day,
        c.last_order_day,
    ).where(c.snapshot_id == snapshot_id)
    if segment_ids:
        stmt = stmt.where(c.segment_id.in_(segment_ids))
    return _frame(engine, stmt)


def validate_segments(engine: Engine, snapshot_id: int, segment_ids: tuple[int, ...]) -> None:
    known = set(segments(engine, snapshot_id)["segment_id"].astype(int))
    unknown = sorted(set(segment_ids) - known)
    if unknown:
        raise ValueError(
            f"unknown segment id(s) {unknown} in snapshot {snapshot_id}; known: {sorted(known)}"
        )


def export_frame(
    engine: Engine, name: str, f: Filters, snapshot_id: int | None = None, active_days: int = 90
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The data of export `name` and its provenance."""
    if name not in exports.EXPORTS:
        raise ValueError(f"unknown export {name!r}: choose one of {', '.join(exports.EXPORTS)}")
    if f.start and f.end and f.start > f.end:
        raise ValueError(f"--start {f.start} is after --end {f.end}")
    snap = get_snapshot(engine, snapshot_id)
    validate_segments(engine, snap.id, f.segments)
    if name == "kpis":
        frame = exports.kpis(orders(engine, snap.id, f), f, active_days)
    elif name == "segments":
        frame = exports.segments(segments(engine, snap.id), f)
    elif name == "sales":
        frame = exports.sales(orders(engine, snap.id, f), f)
    elif name == "retention":
        frame = exports.retention(retention_table(engine, snap.id), f)
    elif name == "migration":
        frame = exports.migration(migration_table(engine, snap.id), f)
    else:
        frame = exports.members(customers(engine, snap.id, f.segments), f)
    provenance: dict[str, Any] = {
        "export": name,
        "snapshot_id": snap.id,
        "as_of": snap.as_of,
        "data_window": f"{snap.data_start} .. {snap.data_end}",
        "fitted_at": snap.finished_at,
        **{f"filter_{k}": v for k, v in f.describe().items()},
        "exported_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "rows": len(frame),
    }
    return frame, provenance
