"""All models, imported here so that `Base.metadata` knows every table."""

from db.models.campaigns import (
    Campaign,
    CampaignDaily,
    CampaignEvent,
    CampaignLift,
    CampaignMember,
    CampaignResult,
)
from db.models.jobs import Job, JobStatus
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
    "Campaign",
    "CampaignDaily",
    "CampaignEvent",
    "CampaignLift",
    "CampaignMember",
    "CampaignResult",
    "ImportBatch",
    "KSetting",
    "Job",
    "JobStatus",
    "RefitStage",
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
    "Transaction",
    "Trigger",
    "User",
]
