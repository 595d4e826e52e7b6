"""All models, imported here so that `Base.metadata` knows every table."""

from db.models.snapshots import (
    SegmentLabel,
    Snapshot,
    SnapshotCustomer,
    SnapshotMigration,
    SnapshotOrder,
    SnapshotRetention,
    SnapshotScore,
    SnapshotSegment,
)
from db.models.transactions import ImportBatch, Transaction
from db.models.users import ROLES, User

__all__ = [
    "ROLES",
    "ImportBatch",
    "SegmentLabel",
    "Snapshot",
    "SnapshotCustomer",
    "SnapshotMigration",
    "SnapshotOrder",
    "SnapshotRetention",
    "SnapshotScore",
    "SnapshotSegment",
    "Transaction",
    "User",
]
