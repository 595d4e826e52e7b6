"""The scheduler process (`custseg scheduler`): the background jobs, declared here as data, and
the loop that runs them.

`KINDS` maps a job kind to its function `(engine, settings, job, on_stage) -> JobResult`;
`SCHEDULE` lists the periodic jobs, each with the setting that holds its cron expression. A new
background job is one entry in `KINDS` plus its function (and one in `SCHEDULE` if it is
periodic).

The loop queues the periodic jobs that are due, then runs the queued jobs, oldest first, one at
a time in this process (a refit under the refit lock, as `custseg refit`), and waits
`CUSTSEG_SCHEDULER_POLL` seconds when the queue is empty. Every event is one JSON log line.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import Engine

from config import Settings
from db import jobs
from db.campaigns import campaign_results_job
from db.exporter import files_job
from db.jobs import JobResult
from db.models import Job, JobStatus, Trigger
from db.notify import notify_job
from db.predictions import predict_job
from db.refit import refit_job
from db.sources import sync_job

log = logging.getLogger("custseg.scheduler")

JobFunction = Callable[[Engine, Settings, Job, Callable[[str], None]], JobResult]

KINDS: dict[str, JobFunction] = {
    "refit": refit_job,
    "files": files_job,  # queued by a refit that published and by its predictions: the files
    "predict": predict_job,  # queued by a refit that published: its snapshot's predictions
    "notify": notify_job,  # digests and alerts; queued by a refit that publishes, and daily
    "campaign_results": campaign_results_job,  # queued after imports too (db/importer.py)
    "sync": sync_job,  # database sources (db/sources.py); queues a refit when data changed
}


@dataclass(frozen=True)
class Periodic:
    """A job queued on a cron schedule, read from the setting named `cron_setting`."""

    kind: str
    cron_setting: str
    params: Mapping[str, Any] = field(default_factory=dict)


# The sync shares the refit's schedule and is queued first, so the scheduled refit (run after
# it: oldest job first) reads the synced data. With no source it ends at once as skipped.
SCHEDULE: tuple[Periodic, ...] = (
    Periodic("sync", cron_setting="refit_cron"),
    Periodic("refit", cron_setting="refit_cron"),
    Periodic("notify", cron_setting="notify_cron", params={"daily": True}),
    Periodic("campaign_results", cron_setting="campaign_results_cron"),
)


def _env_name(setting: str) -> str:
    """The environment variable of a Settings field (for error messages)."""
    alias = Settings.model_fields[setting].validation_alias
    choices = getattr(alias, "choices", None)
    return str(choices[0]) if choices else setting.upper()


def _cron(settings: Settings, periodic: Periodic) -> CronTrigger:
    expression = getattr(settings, periodic.cron_setting)
    try:
        return CronTrigger.from_crontab(expression, timezone="UTC")
    except ValueError as exc:
        raise ValueError(f"{_env_name(periodic.cron_setting)}={expression!r}: {exc}") from None


class Scheduler:
    """Queues the periodic jobs when due and works the queue (one job at a time)."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        kinds: Mapping[str, JobFunction] = KINDS,
        schedule: tuple[Periodic, ...] = SCHEDULE,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.kinds = kinds
        self.crons = [(p, _cron(settings, p)) for p in schedule]
        self._next: dict[int, datetime] = {}

    def queue_due(self, now: datetime | None = None) -> list[Job]:
        """Queue each periodic job whose time has come since the last call (the first call
        only looks ahead: starting the scheduler does not run anything); the jobs queued."""
        now = now or datetime.now(UTC)
        queued = []
        for i, (periodic, cron) in enumerate(self.crons):
            due = self._next.get(i) or cron.get_next_fire_time(None, now)
            if due is not None and now >= due:
                job, new = jobs.enqueue(
                    self.engine, periodic.kind, dict(periodic.params), trigger=Trigger.SCHEDULER
                )
                log.info(
                    "periodic job queued" if new else "periodic job already queued",
                    extra={"job_id": job.id, "kind": job.kind},
                )
                queued.append(job)
                due = cron.get_next_fire_time(None, now + timedelta(microseconds=1))
            if due is not None:
                self._next[i] = due
        return queued

    def run_next(self) -> Job | None:
        """Run the oldest queued job; the job as it ended, or None if the queue was empty."""
        for job_id in jobs.reap(self.engine):
            log.warning("job interrupted: its process ended", extra={"job_id": job_id})
        job = jobs.claim(self.engine)
        if job is None:
            return None
        log.info(
            "job started",
            extra={
                "job_id": job.id,
                "kind": job.kind,
                "trigger": job.trigger,
                "requested_by": job.requested_by,
                "params": job.params,
            },
        )
        result = self._run(job)
        level = logging.ERROR if result.status == JobStatus.FAILED else logging.INFO
        log.log(
            level,
            f"job {result.status}",
            extra={
                "job_id": job.id,
                "kind": job.kind,
                "snapshot_id": result.snapshot_id,
                "outcome": result.message,
                "error": result.error,
                **result.details,
            },
        )
        return jobs.get(self.engine, job.id)

    def _run(self, job: Job) -> JobResult:
        function = self.kinds.get(job.kind)
        try:
            if function is None:
                raise ValueError(f"unknown job kind {job.kind!r}")
            result = function(
                self.engine,
                self.settings,
                job,
                lambda stage: jobs.set_stage(self.engine, job.id, stage),
            )
        except Exception as exc:  # noqa: BLE001 - any failure is the job's outcome
            result = JobResult(JobStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        except BaseException:
            stopped = JobResult(JobStatus.FAILED, error="interrupted: the scheduler stopped")
            jobs.finish(self.engine, job.id, stopped)
            raise
        jobs.finish(self.engine, job.id, result)
        return result

    def drain(self) -> list[Job]:
        """Run queued jobs until none is left (`custseg scheduler --once`); the jobs run."""
        done = []
        while (job := self.run_next()) is not None:
            done.append(job)
        return done

    def run_forever(self, poll_s: float, parent_pid: int | None = None) -> None:
        """Loop until interrupted (Ctrl-C, or SIGTERM turned into KeyboardInterrupt by the
        caller), or, given `parent_pid`, until that parent process is gone (checked between
        jobs: a job that runs is finished first). A database error is logged once and retried
        every `poll_s` seconds."""
        log.info(
            "scheduler started",
            extra={
                "pid": os.getpid(),
                "schedule": {p.kind: getattr(self.settings, p.cron_setting) for p, _ in self.crons},
                "poll_s": poll_s,
            },
        )
        failing = False
        try:
            while parent_pid is None or os.getppid() == parent_pid:
                try:
                    self.queue_due()
                    ran = self.run_next()
                    failing = False
                except Exception:  # noqa: BLE001 - the database may be back next time
                    if not failing:
                        log.exception("scheduler cannot reach its jobs; retrying")
                    failing, ran = True, None
                if ran is None:
                    time.sleep(poll_s)
            log.info("scheduler stopping: its parent process is gone")
        except KeyboardInterrupt:
            pass
        log.info("scheduler stopped", extra={"pid": os.getpid()})
