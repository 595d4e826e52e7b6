"""All models, imported here so that `Base.metadata` knows every table."""

from db.models.jobs import Job, JobStatus
from db.models.snapshots import (
    RefitStage,
    SegmentLabel,
    Snapshot,
    SnapshotCustomer,
    SnapshotMigration,
    SnapshotOrder,
    SnapshotRetention,
    SnapshotScore,
    SnapshotSegment,
    SnapshotStatus,
    Trigger,
)
from db.models.transactions import ImportBatch, Transaction
from db.models.users import ROLES, User

__all__ = [
    "ROLES",
    "ImportBatch",
    "Job",
    "JobStatus",
    "RefitStage",
    "SegmentLabel",
    "Snapshot",
    "SnapshotCustomer",
    "SnapshotMigration",
    "SnapshotOrder",
    "SnapshotRetention",
    "SnapshotScore",
    "SnapshotSegment",
    "SnapshotStatus",
    "Transaction",
    "Trigger",
    "User",
]
