"""All models, imported here so that `Base.metadata` knows every table."""

from db.models.jobs import Job, JobStatus
from db.models.notifications import (
    AlertEvent,
    AlertRule,
    Channel,
    Delivery,
    DeliveryStatus,
    Frequency,
    RuleState,
    Subscription,
)
from db.models.snapshots import (
    KSetting,
    RefitStage,
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
    Trigger,
)
from db.models.transactions import ImportBatch, Transaction
from db.models.users import ROLES, User

__all__ = [
    "ROLES",
    "AlertEvent",
    "AlertRule",
    "Channel",
    "Delivery",
    "DeliveryStatus",
    "Frequency",
    "ImportBatch",
    "KSetting",
    "Job",
    "JobStatus",
    "RefitStage",
    "RuleState",
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
    "SnapshotStatus",
    "Subscription",
    "Transaction",
    "Trigger",
    "User",
]
