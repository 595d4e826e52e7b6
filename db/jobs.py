"""The job queue in the database: enqueue, claim, progress, outcome; jobs whose process died.

Any process may enqueue (a web worker for "Refit now", the scheduler for its periodic jobs);
only the scheduler process (db/scheduler.py) claims and runs them. Claiming is one UPDATE of
the oldest queued row (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite runs one writer at a
time), so two schedulers never run the same job.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from db.models import Job, JobStatus, Trigger
from db.models.users import utcnow

HOST = socket.gethostname()[:255]
# A job recorded under this process's pid before this time is an earlier process's (a restarted
# container gets the same hostname and, often, the same pid).
PROCESS_STARTED = utcnow()


@dataclass(frozen=True)
class JobResult:
    """How a job ended: DONE or SKIPPED with a message, or FAILED with an error."""

    status: JobStatus
    message: str | None = None
    error: str | None = None
    snapshot_id: int | None = None
    details: dict[str, Any] = field(default_factory=dict)  # extra fields of its log line


def enqueue(
    engine: Engine,
    kind: str,
    params: dict[str, Any] | None = None,
    *,
    trigger: Trigger,
    requested_by: str | None = None,
) -> tuple[Job, bool]:
    """Queue a job; returns it and whether it is new.

    A job of the same kind and params still waiting in the queue is returned instead of adding
    a second one: pressing "Refit now" twice, or a schedule firing while its last run still
    waits, queues one job.
    """
    params = dict(params or {})
    with Session(engine, expire_on_commit=False) as db, db.begin():
        waiting = db.scalars(
            select(Job).where(Job.kind == kind, Job.status == JobStatus.QUEUED).order_by(Job.id)
        ).all()
        for job in waiting:
            if job.params == params:
                return job, False
        job = Job(
            kind=kind,
            params=params,
            status=JobStatus.QUEUED,
            trigger=trigger,
            requested_by=requested_by,
            created_at=utcnow(),
        )
        db.add(job)
    return job, True


def claim(engine: Engine) -> Job | None:
    """Take the oldest queued job (now `running`, by this process), or None if there is none."""
    oldest = (
        select(Job.id)
        .where(Job.status == JobStatus.QUEUED)
        .order_by(Job.id)
        .limit(1)
        .with_for_update(skip_locked=True)  # PostgreSQL; SQLite has one writer at a time
        .scalar_subquery()
    )
    with engine.begin() as conn:
        job_id = conn.execute(
            update(Job)
            .where(Job.id == oldest, Job.status == JobStatus.QUEUED)
            .values(status=JobStatus.RUNNING, started_at=utcnow(), host=HOST, pid=os.getpid())
            .returning(Job.id)
        ).scalar()
    return None if job_id is None else get(engine, job_id)


def set_stage(engine: Engine, job_id: int, stage: str) -> None:
    with engine.begin() as conn:
        conn.execute(update(Job).where(Job.id == job_id).values(stage=str(stage)[:64]))


def finish(engine: Engine, job_id: int, result: JobResult) -> None:
    """Record how the job ended."""
    with engine.begin() as conn:
        conn.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(
                status=result.status,
                finished_at=utcnow(),
                message=result.message,
                error=None if result.error is None else result.error[:2000],
                snapshot_id=result.snapshot_id,
            )
        )


def get(engine: Engine, job_id: int) -> Job | None:
    with Session(engine, expire_on_commit=False) as db:
        return db.get(Job, job_id)


def recent(engine: Engine, limit: int = 20) -> list[Job]:
    """The latest jobs, newest first."""
    with Session(engine, expire_on_commit=False) as db:
        return list(db.scalars(select(Job).order_by(Job.id.desc()).limit(limit)))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def reap(engine: Engine) -> list[int]:
    """Mark failed the `running` jobs of this host whose process is gone; their ids.

    Jobs of other hosts are left to their own scheduler.
    """
    with engine.connect() as conn:
        rows = conn.execute(
            select(Job.id, Job.pid, Job.started_at).where(
                Job.status == JobStatus.RUNNING, Job.host == HOST
            )
        ).all()
    dead = [
        i
        for i, pid, started in rows
        if pid is None
        or not _alive(pid)
        or (pid == os.getpid() and (started is None or started < PROCESS_STARTED))
    ]
    if dead:
        with engine.begin() as conn:
            conn.execute(
                update(Job)
                .where(Job.id.in_(dead), Job.status == JobStatus.RUNNING)
                .values(
                    status=JobStatus.FAILED,
                    finished_at=utcnow(),
                    error="interrupted: the process running it ended",
                )
            )
    return dead
