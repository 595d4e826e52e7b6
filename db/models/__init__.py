"""All models, imported here so that `Base.metadata` knows every table."""

from db.models.jobs import Job, JobStatus
from db.models.snapshots import (
    KSetting,
    PredictionStatus,
    RefitStage,
    SegmentLabel,
    Snapshot,
    SnapshotCustomer,
    SnapshotKPreview,
    SnapshotMigration,
    SnapshotOrder,
    SnapshotPrediction,
    SnapshotRetention,
    SnapshotScore,
    SnapshotSegment,
    SnapshotStage,
    SnapshotStageMigration,
    SnapshotStatus,
    Trigger,
)
from db.models.transactions import ImportBatch, Transaction
from db.models.users import ROLES, User

__all__ = [
    "ROLES",
    "ImportBatch",
    "KSetting",
    "PredictionStatus",
    "Job",
    "JobStatus",
    "RefitStage",
    "SegmentLabel",
    "Snapshot",
    "SnapshotCustomer",
    "SnapshotKPreview",
    "SnapshotMigration",
    "SnapshotOrder",
    "SnapshotPrediction",
    "SnapshotRetention",
    "SnapshotScore",
    "SnapshotSegment",
    "SnapshotStage",
    "SnapshotStageMigration",
    "SnapshotStatus",
    "Transaction",
    "Trigger",
    "User",
]
