"""Snapshots: one refit each. Metadata, per-customer segments and the aggregates pages read.

A snapshot's child rows and its status change to ``published`` are written in one transaction,
so readers (who only look at published snapshots) never see a half-written one.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, BigIntPK, parent_key, text_enum
from db.models.users import utcnow

SNAPSHOT_FK = "snapshots.id"


class SnapshotStatus(StrEnum):
    """Where a snapshot is in its life; readers only ever read `published` ones."""

    RUNNING = "running"
    PUBLISHED = "published"
    FAILED = "failed"


class RefitStage(StrEnum):
    """The step a refit is at, in order (shown by "Refit now"); then how it ended."""

    CHECKING = "checking"  # inputs and the data fingerprint: before any snapshot row exists
    LOADING = "loading"
    FEATURES = "features"
    CLUSTERING = "clustering"
    PROFILES = "profiles"
    AGGREGATES = "aggregates"
    WRITING = "writing"
    PUBLISHED = "published"
    FAILED = "failed"


RUNNING_STAGES = tuple(RefitStage)[: list(RefitStage).index(RefitStage.WRITING) + 1]


class Trigger(StrEnum):
    """Who asked for a refit or a job."""

    CLI = "cli"
    WEB = "web"
    SCHEDULER = "scheduler"
    BOOTSTRAP = "bootstrap"
    IMPORT = "import"  # queued at the end of an import (or a sync): db/campaigns.py


class PredictionStatus(StrEnum):
    """Where a published snapshot's predictions are: computed after it is published, by their
    own job, so segments never wait for them (db/predictions.py)."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # the snapshot stays published, without predictions
    OFF = "off"  # CUSTSEG_PREDICTIONS=false when it was published


class Snapshot(Base):
    __tablename__ = "snapshots"
    __table_args__ = (Index("ix_snapshots_status_id", "status", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[SnapshotStatus] = mapped_column(
        text_enum(SnapshotStatus, 16), default=SnapshotStatus.RUNNING
    )
    as_of: Mapped[date | None] = mapped_column(Date, nullable=True)
    data_start: Mapped[date | None] = mapped_column(Date, nullable=True)
    data_end: Mapped[date | None] = mapped_column(Date, nullable=True)
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    k: Mapped[int | None] = mapped_column(Integer, nullable=True)
    k_requested: Mapped[str] = mapped_column(String(8), default="auto")
    silhouette: Mapped[float | None] = mapped_column(Float, nullable=True)
    customers: Mapped[int | None] = mapped_column(Integer, nullable=True)
    previous_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    features: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    data_quality: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    timings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    matching: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    version: Mapped[str] = mapped_column(String(32), default="")
    stage: Mapped[RefitStage] = mapped_column(text_enum(RefitStage, 64), default=RefitStage.LOADING)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    trigger: Mapped[Trigger] = mapped_column(text_enum(Trigger, 32), default=Trigger.CLI)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Why this k: rule, range, best k, previous k, margin (analytics.segmentation.fit_kmeans).
    k_selection: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # What the refit read (db.refit.fingerprint): a refit that would read the same publishes
    # nothing. NULL for snapshots made before migration 0006.
    fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The prediction stage: its state, and when done its models, fit times, backtest and
    # unscored customers (analytics.predictions: Predictions.as_dict, Backtest.as_dict).
    predictions_status: Mapped[PredictionStatus] = mapped_column(
        text_enum(PredictionStatus, 16), default=PredictionStatus.PENDING
    )
    predictions: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # Import batches removed since this snapshot was built from them ([{id, file_name,
    # removed_at}], db/batches.py): its figures include data that is gone. NULL: none.
    removed_batches: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)


class SnapshotScore(Base):
    """Model quality for each k tried: silhouette, inertia, Davies-Bouldin."""

    __tablename__ = "snapshot_scores"

    snapshot_id: Mapped[int] = parent_key(SNAPSHOT_FK)
    k: Mapped[int] = mapped_column(Integer, primary_key=True)
    silhouette: Mapped[float] = mapped_column(Float)
    inertia: Mapped[float] = mapped_column(Float)
    davies_bouldin: Mapped[float] = mapped_column(Float)


class SnapshotSegment(Base):
    """A segment's profile in one snapshot. `segment_id` is stable across snapshots."""

    __tablename__ = "snapshot_segments"

    snapshot_id: Mapped[int] = parent_key(SNAPSHOT_FK)
    segment_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    description: Mapped[str] = mapped_column(String(400))
    color: Mapped[str] = mapped_column(String(16))
    customers: Mapped[int] = mapped_column(Integer)
    share: Mapped[float] = mapped_column(Float)
    gross_revenue: Mapped[float] = mapped_column(Float)
    revenue_share: Mapped[float] = mapped_column(Float)
    orders: Mapped[int] = mapped_column(Integer)
    aov: Mapped[float | None] = mapped_column(Float, nullable=True)
    repeat_rate: Mapped[float] = mapped_column(Float)
    recency_days: Mapped[float] = mapped_column(Float)  # medians
    frequency: Mapped[float] = mapped_column(Float)
    monetary: Mapped[float] = mapped_column(Float)
    centroid: Mapped[dict[str, float]] = mapped_column(JSON, default=dict)  # original units
    status: Mapped[str] = mapped_column(String(16), default="matched")  # matched|new
    action: Mapped[str | None] = mapped_column(String(300), nullable=True)  # analytics.actions
    action_basis: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class SegmentLabel(Base):
    """An analyst's name for a segment; follows the segment id into later snapshots."""

    __tablename__ = "segment_labels"

    segment_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    renamed_by: Mapped[str | None] = mapped_column(String(254), nullable=True)
    renamed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class SnapshotCustomer(Base):
    __tablename__ = "snapshot_customers"
    __table_args__ = (Index("ix_snapshot_customers_snapshot_segment", "snapshot_id", "segment_id"),)

    snapshot_id: Mapped[int] = parent_key(SNAPSHOT_FK)
    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    segment_id: Mapped[int] = mapped_column(Integer)
    recency_days: Mapped[int] = mapped_column(Integer)
    frequency: Mapped[int] = mapped_column(Integer)
    monetary: Mapped[float] = mapped_column(Float)
    aov: Mapped[float] = mapped_column(Float)
    tenure_days: Mapped[int] = mapped_column(Integer)
    return_rate: Mapped[float] = mapped_column(Float)
    category_breadth: Mapped[int] = mapped_column(Integer)
    first_order_day: Mapped[date] = mapped_column(Date)
    last_order_day: Mapped[date] = mapped_column(Date)
    # RFM quintile scores 1-5 and lifecycle stage (analytics.rfm); NULL in snapshots before them.
    r_score: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
    f_score: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
    m_score: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
    lifecycle_stage: Mapped[str | None] = mapped_column(String(32), nullable=True)


class SnapshotPrediction(Base):
    """A customer's predictions as of the snapshot's date (NULL with `unscored_reason` when the
    models cannot score the customer, e.g. only returns)."""

    __tablename__ = "snapshot_predictions"

    snapshot_id: Mapped[int] = parent_key(SNAPSHOT_FK)
    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    expected_orders_90d: Mapped[float | None] = mapped_column(Float, nullable=True)
    churn_risk: Mapped[float | None] = mapped_column(Float, nullable=True)
    clv_12m: Mapped[float | None] = mapped_column(Float, nullable=True)
    unscored_reason: Mapped[str | None] = mapped_column(String(120), nullable=True)


class SnapshotOrder(Base):
    """Orders up to the as-of date with their customer's segment (lines summed per order)."""

    __tablename__ = "snapshot_orders"
    __table_args__ = (Index("ix_snapshot_orders_snapshot_day", "snapshot_id", "day"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    # No foreign key (migration 0003): its per-row check was a third of the refit's write time.
    # db/refit.py writes these rows with their snapshot and deletes them with it.
    snapshot_id: Mapped[int] = mapped_column(Integer)
    customer_id: Mapped[str] = mapped_column(String(64))
    segment_id: Mapped[int] = mapped_column(Integer)
    day: Mapped[date] = mapped_column(Date)
    total: Mapped[float] = mapped_column(Float)


class SnapshotRetention(Base):
    __tablename__ = "snapshot_retention"

    snapshot_id: Mapped[int] = parent_key(SNAPSHOT_FK)
    cohort: Mapped[date] = mapped_column(Date, primary_key=True)
    months_since_first: Mapped[int] = mapped_column(Integer, primary_key=True)
    segment_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cohort_size: Mapped[int] = mapped_column(Integer)
    customers: Mapped[int] = mapped_column(Integer)
    revenue: Mapped[float] = mapped_column(Float)


class SnapshotMigration(Base):
    """Customers moving from the previous snapshot's segment to this one's (-1: new / gone)."""

    __tablename__ = "snapshot_migration"

    snapshot_id: Mapped[int] = parent_key(SNAPSHOT_FK)
    from_snapshot_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    from_segment: Mapped[int] = mapped_column(Integer, primary_key=True)
    to_segment: Mapped[int] = mapped_column(Integer, primary_key=True)
    customers: Mapped[int] = mapped_column(Integer)
    gross_revenue: Mapped[float] = mapped_column(Float)


class SnapshotKPreview(Base):
    """For every k a refit fitted, the clusters it would give (an admin previews k with these)."""

    __tablename__ = "snapshot_k_previews"

    snapshot_id: Mapped[int] = parent_key(SNAPSHOT_FK)
    k: Mapped[int] = mapped_column(Integer, primary_key=True)
    cluster: Mapped[int] = mapped_column(Integer, primary_key=True)  # 1.. by revenue
    name: Mapped[str] = mapped_column(String(120))
    customers: Mapped[int] = mapped_column(Integer)
    share: Mapped[float] = mapped_column(Float)
    gross_revenue: Mapped[float] = mapped_column(Float)
    recency_days: Mapped[float] = mapped_column(Float)  # medians
    frequency: Mapped[float] = mapped_column(Float)
    monetary: Mapped[float] = mapped_column(Float)


class SnapshotStage(Base):
    """One row per lifecycle stage: the `lifecycle` figures, medians and a suggested action."""

    __tablename__ = "snapshot_stages"

    snapshot_id: Mapped[int] = parent_key(SNAPSHOT_FK)
    stage: Mapped[str] = mapped_column(String(32), primary_key=True)
    customers: Mapped[int] = mapped_column(Integer)
    share: Mapped[float] = mapped_column(Float)
    gross_revenue: Mapped[float] = mapped_column(Float)
    aov: Mapped[float | None] = mapped_column(Float, nullable=True)  # NULL: empty stage
    repeat_rate: Mapped[float | None] = mapped_column(Float, nullable=True)
    recency_days: Mapped[float | None] = mapped_column(Float, nullable=True)  # medians
    frequency: Mapped[float | None] = mapped_column(Float, nullable=True)
    monetary: Mapped[float | None] = mapped_column(Float, nullable=True)
    action: Mapped[str | None] = mapped_column(String(300), nullable=True)
    action_basis: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class SnapshotStageMigration(Base):
    """Customers moving from the previous snapshot's stage to this one's ("(new)" / "(gone)")."""

    __tablename__ = "snapshot_stage_migration"

    snapshot_id: Mapped[int] = parent_key(SNAPSHOT_FK)
    from_snapshot_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    from_stage: Mapped[str] = mapped_column(String(32), primary_key=True)
    to_stage: Mapped[str] = mapped_column(String(32), primary_key=True)
    customers: Mapped[int] = mapped_column(Integer)
    gross_revenue: Mapped[float] = mapped_column(Float)


class KSetting(Base):
    """An admin's choice of the k range or a fixed k, as a history: the latest row counts.

    A row with no k, k_min or k_max clears the choice (back to the environment or default).
    """

    __tablename__ = "k_settings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    k_min: Mapped[int | None] = mapped_column(Integer, nullable=True)
    k_max: Mapped[int | None] = mapped_column(Integer, nullable=True)
    k: Mapped[int | None] = mapped_column(Integer, nullable=True)
    set_by: Mapped[str | None] = mapped_column(String(254), nullable=True)
    set_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
