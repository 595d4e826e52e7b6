"""All models, imported here so that `Base.metadata` knows every table."""

from db.models.snapshots import (
    KSetting,
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
)
from db.models.transactions import ImportBatch, Transaction
from db.models.users import ROLES, User

__all__ = [
    "ROLES",
    "ImportBatch",
    "KSetting",
    "SegmentLabel",
    "Snapshot",
    "SnapshotCustomer",
    "SnapshotKPreview",
    "SnapshotMigration",
    "SnapshotOrder",
    "SnapshotRetention",
    "SnapshotScore",
    "SnapshotSegment",
    "SnapshotStage",
    "SnapshotStageMigration",
    "Transaction",
    "User",
]
