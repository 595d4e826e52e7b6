"""Background jobs: a queue in the database, worked by the scheduler process (db/scheduler.py).

The web app only records jobs; `custseg scheduler` claims them one at a time, runs them and
records how they ended, so any web worker can show their progress and a web worker that dies
takes no job with it.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, DateTime, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, text_enum
from db.models.snapshots import Trigger
from db.models.users import utcnow


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"  # did its work (a refit: published a snapshot)
    FAILED = "failed"  # see `error`
    SKIPPED = "skipped"  # nothing to do (a refit: no change since the last snapshot), see `message`


FINISHED = (JobStatus.DONE, JobStatus.FAILED, JobStatus.SKIPPED)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_id", "status", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # a name in db.scheduler.KINDS
    status: Mapped[JobStatus] = mapped_column(text_enum(JobStatus, 16), default=JobStatus.QUEUED)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    trigger: Mapped[Trigger] = mapped_column(text_enum(Trigger, 32))
    requested_by: Mapped[str | None] = mapped_column(String(254), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    stage: Mapped[str | None] = mapped_column(String(64), nullable=True)
    snapshot_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The process running it, so that a scheduler can tell a job whose process died.
    host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
