"""What a page says about a background job it queued and polls (a refit, a sync, a campaign's
measurement): the job's id in the page's store, and the line while the job waits for the
scheduler process (`custseg scheduler`), which runs every job (db/jobs.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from dash import html

from db.models import Job, JobStatus
from db.models.users import utcnow

QUEUED_WARNING = timedelta(seconds=60)  # still queued after this: is the scheduler running?


def started_job(started: Any) -> int | None:
    """The id of the job a page's store holds ({"job_id": n}); it comes back from the browser,
    so anything else is no job."""
    try:
        return int(started["job_id"]) if isinstance(started, dict) else None
    except (KeyError, TypeError, ValueError, OverflowError):
        return None


def is_late(job: Job) -> bool:
    """Whether a queued job has waited long enough to ask if the scheduler runs."""
    return utcnow() - job.created_at > QUEUED_WARNING


def waiting(what: str, job_id: int, late: bool = False) -> str:
    """The line of a queued job (`what`: "Queued", "Sync queued", ...), asking whether the
    scheduler runs when it is `late`."""
    text = f"{what} (job {job_id}): waiting for the scheduler process…"
    if late:
        text += " Still waiting: is `custseg scheduler` running?"
    return text


def progress(
    job: Job,
    *,
    queued: str,
    running: str,
    failed: str,
    done: str = "",
    skipped: str = "Nothing changed",
) -> tuple[Any, bool]:
    """The line of a job a page polls, and whether it has finished (the page stops polling and
    reads its data again): waiting (asking whether the scheduler runs once it is late),
    `running` with the job's stage, `done` before the job's message, `skipped` with the job's
    reason, or `failed` with the error."""
    if job.status == JobStatus.QUEUED:
        return waiting(queued, job.id, is_late(job)), False
    if job.status == JobStatus.RUNNING:
        return f"{running} (job {job.id}): {job.stage or 'starting'}…", False
    if job.status == JobStatus.FAILED:
        return html.Span(f"{failed}: {job.error}", className="text-danger"), True
    if job.status == JobStatus.SKIPPED:
        return html.Span(f"{skipped}: {job.message}.", className="text-muted"), True
    return html.Span(f"{done}{job.message}.", className="text-success"), True
