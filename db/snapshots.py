"""Reads of snapshot tables: SQL in, frames out, nothing kept. Bound parameters only.

What the pages need of a snapshot is kept in memory by `db/snapshot_cache.py`; exports are
computed by `db/exporter.py`. Analysts' segment names (`segment_labels`) are read with the
segments, over the generated names, on every call.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pyarrow as pa
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from analytics.rfm import STAGE_FIGURES, STAGES
from db.models import (
    SegmentLabel,
    Snapshot,
    SnapshotCustomer,
    SnapshotKPreview,
    SnapshotMigration,
    SnapshotOrder,
    SnapshotRetention,
    SnapshotScore,
    SnapshotSegment,
    SnapshotStage,
    SnapshotStageMigration,
    SnapshotStatus,
)
from db.queries import read_frame

DAY = pd.ArrowDtype(pa.date32())  # the customers' first and last order days


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
    """Profiles, with analysts' names (segment_labels) over the generated ones. One query:
    every page's filter change reads it."""
    s = SnapshotSegment
    columns = [
        func.coalesce(SegmentLabel.name, c).label("name") if c.key == "name" else c
        for c in s.__table__.columns
    ]
    stmt = (
        select(*columns)
        .outerjoin(SegmentLabel, SegmentLabel.segment_id == s.segment_id)
        .where(s.snapshot_id == snapshot_id)
        .order_by(s.gross_revenue.desc())
    )
    return _frame(engine, stmt)


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
    """Each customer's segment, features, RFM scores and lifecycle stage (read from the database
    on each call). Scores are nullable integers and the stage a categorical of STAGES (in their
    order): both are missing in snapshots from before stages. A categorical keeps a million
    customers' stages in a byte each instead of a string object each. First and last order days
    are Arrow dates (`DAY`); exports give them as `datetime.date` (`member_rows`)."""
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
        c.r_score,
        c.f_score,
        c.m_score,
        c.lifecycle_stage,
    ).where(c.snapshot_id == snapshot_id)
    if segment_ids:
        stmt = stmt.where(c.segment_id.in_(segment_ids))
    ints = ("segment_id", "recency_days", "frequency", "tenure_days", "category_breadth")
    dtypes: dict[str, Any] = {
        "customer_id": str,
        "lifecycle_stage": str,
        **dict.fromkeys(ints, "int64"),
    }
    dtypes.update(dict.fromkeys(("monetary", "aov", "return_rate"), "float64"))
    dtypes.update(dict.fromkeys(("r_score", "f_score", "m_score"), "Int8"))
    dtypes["lifecycle_stage"] = str
    frame = read_frame(engine, stmt, dtypes)  # COPY on PostgreSQL: 1M customers at L
    for day in ("first_order_day", "last_order_day"):
        # Arrow dates: 4 bytes a day in one buffer (a web worker maps them from the snapshot's
        # file, db/snapshot_files.py) where `datetime.date` objects took ~40 bytes each.
        days = pd.to_datetime(frame[day], format="ISO8601").to_numpy().astype("datetime64[D]")
        frame[day] = pd.array(pa.array(days, type=pa.date32(), from_pandas=True), dtype=DAY)
    frame["lifecycle_stage"] = pd.Categorical(frame["lifecycle_stage"], categories=STAGES)
    return frame


STAGE_COLUMNS = ("stage", *STAGE_FIGURES, "action", "action_basis")


def stages(engine: Engine, snapshot_id: int) -> pd.DataFrame:
    """The snapshot's lifecycle stages in STAGES order (`snapshot_stages`; empty for a
    snapshot from before stages)."""
    t = SnapshotStage
    frame = _frame(
        engine,
        select(*(getattr(t, c) for c in STAGE_COLUMNS)).where(t.snapshot_id == snapshot_id),
    )
    if frame.empty:
        return pd.DataFrame(columns=list(STAGE_COLUMNS))
    order = {name: i for i, name in enumerate(STAGES)}
    frame = frame.sort_values("stage", key=lambda s: s.map(order), kind="stable")
    return frame.reset_index(drop=True)


def k_previews(engine: Engine, snapshot_id: int) -> pd.DataFrame:
    """The clusters of every k the snapshot's refit fitted, by k and cluster."""
    p = SnapshotKPreview
    return _frame(
        engine,
        select(
            p.k,
            p.cluster,
            p.name,
            p.customers,
            p.share,
            p.gross_revenue,
            p.recency_days,
            p.frequency,
            p.monetary,
        )
        .where(p.snapshot_id == snapshot_id)
        .order_by(p.k, p.cluster),
    )


def stage_migration_table(engine: Engine, snapshot_id: int) -> pd.DataFrame:
    """The stored moves between the previous snapshot's stages and this one's."""
    m = SnapshotStageMigration
    cols = ["from_snapshot_id", "from_stage", "to_stage", "customers", "gross_revenue"]
    frame = _frame(
        engine,
        select(m.from_snapshot_id, m.from_stage, m.to_stage, m.customers, m.gross_revenue).where(
            m.snapshot_id == snapshot_id
        ),
    )
    return frame if not frame.empty else pd.DataFrame(columns=cols)


def scores(engine: Engine, snapshot_id: int) -> pd.DataFrame:
    s = SnapshotScore
    return _frame(
        engine,
        select(s.k, s.silhouette, s.inertia, s.davies_bouldin).where(s.snapshot_id == snapshot_id),
    )


def removed_text(removed: Any) -> str | None:
    """A snapshot's batches removed since it was built, as people read them (None: none)."""
    if not removed:
        return None
    return "; ".join(f"batch {b.get('id')} ({b.get('file_name')})" for b in removed)


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
            s.removed_batches,
        ).order_by(s.id.desc()),
    )
    frame["removed_batches"] = [removed_text(r) for r in frame["removed_batches"]]
    if frame.empty:
        frame["duration_s"] = []
        return frame
    frame["duration_s"] = [
        round((f - b).total_seconds(), 1) if pd.notna(f) and pd.notna(b) else None
        for b, f in zip(frame["started_at"], frame["finished_at"], strict=True)
    ]
    return frame


def customer_history(engine: Engine, customer_id: str) -> pd.DataFrame:
    """The customer's segment, features, RFM scores and stage in each published snapshot,
    newest first (scores and stage None in snapshots from before stages)."""
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
            c.r_score,
            c.f_score,
            c.m_score,
            c.lifecycle_stage,
        )
        .join(s, s.id == c.snapshot_id)
        .where(c.customer_id == customer_id, s.status == SnapshotStatus.PUBLISHED)
        .order_by(s.id.desc()),
    )
    return frame
