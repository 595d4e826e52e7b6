"""Run a refit against the database: lock, check, load, segment (analytics.pipeline), publish.

One refit at a time: a PostgreSQL transaction-level advisory lock (held by a connection for the
whole run), or an exclusive file lock beside an SQLite database. The inputs are checked first
(there is data, up to the as-of date, and enough customers for k) and the data's fingerprint is
compared with the latest published snapshot's: a bad input or unchanged data records nothing.
Then the snapshot row is recorded as ``running``; every child row and the switch to
``published`` are written in one transaction. A failure marks the run ``failed`` and changes
nothing else; a run killed outright stays ``running`` until the next refit, holding the lock,
marks it failed.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    cast,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url

from analytics.pipeline import Previous, RefitResult, RefitSettings, run_refit
from db import jobs
from db.bulk import bulk_insert
from db.jobs import JobResult
from db.k_settings import effective_k_setting
from db.models import (
    ImportBatch,
    Job,
    JobStatus,
    PredictionStatus,
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
    Transaction,
    Trigger,
)
from db.queries import category_breadth, data_window, load_orders, read_frame
from db.snapshots import latest_published

if TYPE_CHECKING:
    from config import Settings

log = logging.getLogger("custseg.refit")
LOCK_KEY = 0x5E6_0001  # advisory lock id of the refit job


class RefitSkipped(RuntimeError):
    """Another refit holds the lock."""


class RefitRejected(ValueError):
    """The refit's inputs cannot give a snapshot (no data, as-of date, k); nothing recorded."""


class RefitUnchanged(RuntimeError):
    """The data, settings and as-of date are those of the latest published snapshot."""

    def __init__(self, snapshot_id: int) -> None:
        super().__init__(f"no change since snapshot {snapshot_id}")
        self.snapshot_id = snapshot_id


class RefitFailed(RuntimeError):
    """The refit failed; the published snapshot is unchanged and the run is marked failed."""

    def __init__(self, snapshot_id: int, message: str) -> None:
        super().__init__(message)
        self.snapshot_id = snapshot_id


@dataclass
class RefitOutcome:
    snapshot_id: int
    k: int
    silhouette: float
    as_of: date
    customers: int
    segments: list[dict[str, Any]] = field(default_factory=list)
    duration_s: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def package_version() -> str:
    try:
        return version("customer-segmentation")
    except PackageNotFoundError:
        return "dev"


@contextmanager
def refit_lock(engine: Engine) -> Iterator[None]:
    """Hold the one-refit-at-a-time lock, or raise RefitSkipped."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            with conn.begin():
                got = conn.execute(
                    text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": LOCK_KEY}
                ).scalar()
                if not got:
                    raise RefitSkipped("another refit is running")
                yield
        return
    database = make_url(str(engine.url)).database
    if not database or database == ":memory:":
        yield
        return
    path = f"{database}.refit.lock"
    with open(path, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RefitSkipped("another refit is running") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def data_quality(engine: Engine, as_of: date) -> dict[str, Any]:
    """Counts the refit reports about the raw lines (computed in the database)."""
    t = Transaction
    until = datetime.combine(as_of + timedelta(days=1), datetime.min.time())
    with engine.connect() as conn:
        total, no_cust, no_cust_rev, zero, after = conn.execute(
            select(
                func.count(),
                func.count().filter(t.customer_id.is_(None)),
                func.coalesce(func.sum(t.amount).filter(t.customer_id.is_(None)), 0.0),
                func.count().filter(t.amount == 0),
                func.count().filter(t.ordered_at >= until),
            )
        ).one()
        reports = conn.execute(select(ImportBatch.report)).scalars().all()
    dupes = sum(int((r or {}).get("skipped", {}).get("duplicate_lines", 0)) for r in reports)
    invalid = sum(int((r or {}).get("skipped", {}).get("invalid_lines", 0)) for r in reports)
    return {
        "lines": int(total),
        "lines_without_customer_id": int(no_cust),
        "revenue_without_customer_id": round(float(no_cust_rev), 2),
        "zero_amount_lines": int(zero),
        "lines_after_as_of": int(after),
        "duplicate_lines_dropped_at_import": dupes,
        "invalid_lines_skipped_at_import": invalid,
    }


@dataclass(frozen=True)
class Checked:
    """A refit's inputs, checked: the as-of date, the data window and the data's fingerprint."""

    as_of: date
    data_start: date
    data_end: date
    fingerprint: str


def _until(as_of: date) -> datetime:
    return datetime.combine(as_of + timedelta(days=1), datetime.min.time())


def _customers_up_to(engine: Engine, as_of: date, enough: int) -> int:
    """Customers with a line up to `as_of`, counted up to `enough` (an index scan that stops)."""
    t = Transaction
    ids = (
        select(t.customer_id)
        .where(t.customer_id.is_not(None), t.ordered_at < _until(as_of))
        .distinct()
        .limit(enough)
        .subquery()
    )
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(ids)).scalar_one())


def fingerprint(engine: Engine, settings: RefitSettings, as_of: date) -> str:
    """SHA-256 of what a refit as of `as_of` reads and how: the lines up to that day (count,
    sum in cents, largest id, first and last timestamps), the import batches, the settings
    that shape the segments and the code's version. One SQL aggregate over the lines."""
    t = Transaction
    with engine.connect() as conn:
        lines = conn.execute(
            select(
                func.count(),
                func.sum(cast(func.round(t.amount * 100), BigInteger)),
                func.max(t.id),
                func.min(t.ordered_at),
                func.max(t.ordered_at),
            ).where(t.ordered_at < _until(as_of))
        ).one()
        batches = conn.execute(select(func.count(), func.max(ImportBatch.id))).one()
    parts = {
        "lines": [None if v is None else str(v) for v in lines],
        "batches": [None if v is None else int(v) for v in batches],
        "as_of": as_of.isoformat(),
        "settings": settings.as_dict(),
        "version": package_version(),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def check_inputs(engine: Engine, settings: RefitSettings, as_of: date | None) -> Checked:
    """Raise RefitRejected, saying what to do, when a refit cannot give a snapshot."""
    first, last = data_window(engine)
    if first is None or last is None:
        raise RefitRejected(
            "no transactions with a customer id: import a file first "
            "(custseg import FILE, or custseg demo-data)"
        )
    as_of = as_of or last
    if as_of < first:
        raise RefitRejected(f"as-of date {as_of} is before the first order ({first})")
    # K-Means needs more customers than segments (analytics.segmentation.fit_kmeans), 3 at least.
    k = settings.k or settings.k_min
    enough = max(3, k + 1)
    found = _customers_up_to(engine, as_of, enough)
    if found < enough:
        wanted = f"k={k}" if settings.k else f"k from {k} (CUSTSEG_K_MIN)"
        raise RefitRejected(
            f"{found} customer(s) with orders up to {as_of}: {wanted} needs at least {enough}"
        )
    return Checked(as_of, first, min(last, as_of), fingerprint(engine, settings, as_of))


def _next_segment_id(engine: Engine) -> int:
    """One above every segment id in a kept snapshot or in an analyst's rename."""
    with engine.connect() as conn:
        in_snapshots = conn.execute(select(func.max(SnapshotSegment.segment_id))).scalar()
        in_labels = conn.execute(select(func.max(SegmentLabel.segment_id))).scalar()
    return max(in_snapshots or 0, in_labels or 0) + 1


def _previous(engine: Engine) -> Previous | None:
    snap = latest_published(engine)
    if snap is None:
        return None
    with engine.connect() as conn:
        seg = conn.execute(
            select(
                SnapshotSegment.segment_id,
                SnapshotSegment.name,
                SnapshotSegment.centroid,
                SnapshotSegment.color,
            ).where(SnapshotSegment.snapshot_id == snap.id)
        ).all()
    c = SnapshotCustomer
    customers = read_frame(
        engine,
        select(c.customer_id, c.segment_id, c.monetary, c.lifecycle_stage).where(
            c.snapshot_id == snap.id
        ),
        {"customer_id": str, "segment_id": "int64", "monetary": "float64", "lifecycle_stage": str},
    )
    return Previous(
        snapshot_id=snap.id,
        segments=pd.DataFrame(seg, columns=["segment_id", "name", "centroid", "color"]),
        customers=customers,
        k=snap.k,
    )


def _load(engine: Engine, as_of: date) -> tuple[pd.DataFrame, pd.Series, dict[str, Any], Any]:
    """Orders, category breadth, data-quality counts and the previous snapshot.

    On PostgreSQL the three smaller reads run on their own connections while the orders load,
    so the server works on them in parallel (at 10M lines the breadth query alone takes ~9 s).
    """
    if engine.dialect.name != "postgresql":
        orders = load_orders(engine, end=as_of, with_order_id=False)
        return (
            orders,
            category_breadth(engine, as_of),
            data_quality(engine, as_of),
            _previous(engine),
        )
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="refit-load") as pool:
        breadth = pool.submit(category_breadth, engine, as_of)
        quality = pool.submit(data_quality, engine, as_of)
        previous = pool.submit(_previous, engine)
        orders = load_orders(engine, end=as_of, with_order_id=False)
        return orders, breadth.result(), quality.result(), previous.result()


def _set_stage(engine: Engine, snapshot_id: int, stage: RefitStage) -> None:
    with engine.begin() as conn:
        conn.execute(update(Snapshot).where(Snapshot.id == snapshot_id).values(stage=stage))


def snapshots_to_keep(
    published: Sequence[tuple[int, date | None]], keep: int, monthly: int
) -> set[int]:
    """The ids of published snapshots (id, as-of date) that the keep policy keeps.

    The `keep` newest, and the last one (by as-of date, then id) of each of the `monthly`
    calendar months up to the month of the newest as-of date, so that Migration can compare
    with a month ago, or a year ago, however often refits run.
    """
    kept = {i for i, _ in sorted(published, reverse=True)[:keep]}
    dated = [(d, i) for i, d in published if d is not None]
    if monthly > 0 and dated:
        newest = max(dated)[0]
        first_month = newest.year * 12 + newest.month - monthly
        last_of_month: dict[int, tuple[date, int]] = {}
        for d, i in dated:
            month = d.year * 12 + d.month - 1
            if month >= first_month and (d, i) > last_of_month.get(month, (date.min, 0)):
                last_of_month[month] = (d, i)
        kept |= {i for _, i in last_of_month.values()}
    return kept


def _write(
    engine: Engine,
    snapshot_id: int,
    result: RefitResult,
    previous: Previous | None,
    settings: RefitSettings,
    started: float,
    write_orders: Callable[[Connection], None] | None = None,
) -> dict[str, float]:
    """Write every table of the snapshot and publish it, in one transaction; its timings.
    `write_orders` writes snapshot_orders instead of `result.orders` (the Spark engine's
    staged orders)."""
    write_started = time.perf_counter()
    with engine.begin() as conn:

        def write(model: Any, frame: pd.DataFrame, **extra: Any) -> None:
            table = model.__table__
            columns = [c for c in table.c.keys() if c in frame.columns]
            bulk_insert(conn, table, frame[columns].assign(snapshot_id=snapshot_id, **extra))

        write(SnapshotScore, result.scores)
        write(SnapshotSegment, result.segments)
        write(SnapshotCustomer, result.customers)
        if write_orders is not None:
            write_orders(conn)
        else:
            write(SnapshotOrder, result.orders)
        write(SnapshotRetention, result.retention)
        write(SnapshotKPreview, result.previews)
        write(SnapshotStage, result.stages)
        if previous is not None:
            write(SnapshotMigration, result.migration, from_snapshot_id=previous.snapshot_id)
            write(
                SnapshotStageMigration,
                result.stage_migration,
                from_snapshot_id=previous.snapshot_id,
            )
        timings = dict(result.timings)
        timings["write"] = round(time.perf_counter() - write_started, 4)
        timings["total"] = round(time.perf_counter() - started, 4)
        conn.execute(
            update(Snapshot)
            .where(Snapshot.id == snapshot_id)
            .values(
                status=SnapshotStatus.PUBLISHED,
                stage=RefitStage.PUBLISHED,
                finished_at=_now(),
                k=result.k,
                silhouette=result.silhouette,
                customers=int(len(result.customers)),
                features=result.features,
                data_quality=result.data_quality,
                timings=timings,
                matching=result.matching,
                k_selection=result.k_selection,
                previous_id=previous.snapshot_id if previous else None,
            )
        )
        # The keep policy; the one just published is the newest. The one it replaces stays
        # too, until the next publish: a page that picked it a moment ago is still reading it.
        published = conn.execute(
            select(Snapshot.id, Snapshot.as_of).where(Snapshot.status == SnapshotStatus.PUBLISHED)
        ).all()
        kept = snapshots_to_keep(
            [(i, d) for i, d in published], settings.keep, settings.keep_monthly
        )
        kept |= {snapshot_id, previous.snapshot_id if previous else 0}
        old = sorted(i for i, _ in published if i not in kept)
        if old:  # child rows go with them (ON DELETE CASCADE; snapshot_orders has no FK)
            conn.execute(delete(SnapshotOrder).where(SnapshotOrder.snapshot_id.in_(old)))
            conn.execute(delete(Snapshot).where(Snapshot.id.in_(old)))
    return timings


def _run_local(
    engine: Engine, settings: RefitSettings, checked: Checked, stage: Callable[[str], None]
) -> tuple[RefitResult, Previous | None]:
    """The local engine: orders loaded in SQL (GROUP BY per order), the pipeline in pandas."""
    t0 = time.perf_counter()
    stage(RefitStage.LOADING)
    orders, breadth, quality, previous = _load(engine, checked.as_of)
    load_s = time.perf_counter() - t0
    result = run_refit(
        orders,
        checked.as_of,
        settings,
        breadth,
        previous,
        quality,
        stage,
        next_segment_id=_next_segment_id(engine),
    )
    result.timings = {"load": round(load_s, 4), **result.timings}
    return result, previous


def _run_spark(
    engine: Engine,
    settings: RefitSettings,
    snapshot_id: int,
    checked: Checked,
    stage: Callable[[str], None],
) -> tuple[RefitResult, Previous | None, Callable[[Connection], None]]:
    """The Spark engine (db/spark_refit.py); its orders are staged in the database and moved
    into snapshot_orders by the publishing transaction."""
    from db.spark_refit import publish_staged, run_spark_refit

    previous = _previous(engine)
    result = run_spark_refit(
        engine,
        settings,
        snapshot_id,
        checked.data_start,
        checked.as_of,
        previous,
        data_quality(engine, checked.as_of),
        stage,
        next_segment_id=_next_segment_id(engine),
    )
    return result, previous, lambda conn: publish_staged(conn, snapshot_id)


def _drop_staging(engine: Engine, snapshot_id: int | None = None) -> None:
    from db.spark_refit import drop_staging

    try:
        drop_staging(engine, snapshot_id)
    except Exception:  # noqa: BLE001 - cleaning up after a failure must not hide it
        log.exception("could not drop the Spark refit's staging table")


def _mark_failed(engine: Engine, message: str, snapshot_id: int | None = None) -> None:
    """Mark run `snapshot_id` failed; without an id, every run left `running` (from dead
    processes: the caller holds the lock)."""
    which = (
        Snapshot.id == snapshot_id
        if snapshot_id is not None
        else Snapshot.status == SnapshotStatus.RUNNING
    )
    with engine.begin() as conn:
        conn.execute(
            update(Snapshot)
            .where(which)
            .values(
                status=SnapshotStatus.FAILED,
                stage=RefitStage.FAILED,
                finished_at=_now(),
                error=message[:2000],
            )
        )


def _record_run(engine: Engine, settings: RefitSettings, checked: Checked, trigger: Trigger) -> int:
    with engine.begin() as conn:
        return int(
            conn.execute(
                insert(Snapshot)
                .values(
                    status=SnapshotStatus.RUNNING,
                    stage=RefitStage.LOADING,
                    started_at=_now(),
                    as_of=checked.as_of,
                    data_start=checked.data_start,
                    data_end=checked.data_end,
                    k_requested=str(settings.k or "auto"),
                    settings=settings.as_dict(),
                    version=package_version(),
                    trigger=trigger,
                    pid=os.getpid(),
                    fingerprint=checked.fingerprint,
                    predictions_status=(
                        PredictionStatus.PENDING if settings.predictions else PredictionStatus.OFF
                    ),
                    features={},
                    data_quality={},
                    timings={},
                    matching={},
                )
                .returning(Snapshot.id)
            ).scalar_one()
        )


def refit(
    engine: Engine,
    settings: RefitSettings,
    *,
    as_of: date | None = None,
    trigger: Trigger = Trigger.CLI,
    force: bool = False,
    on_stage: Callable[[RefitStage], None] | None = None,
) -> RefitOutcome:
    """Refit and publish a snapshot.

    Raises RefitSkipped (another refit runs), RefitRejected (bad inputs: nothing recorded),
    RefitUnchanged (same fingerprint as the latest published snapshot and not `force`:
    nothing recorded) or RefitFailed (the run is recorded as failed).
    """
    started = time.perf_counter()
    tell = on_stage or (lambda _stage: None)
    spark = settings.engine.name == "spark"
    if spark:
        from db.spark_refit import SparkUnavailable, check_available

        try:
            check_available(engine, settings.engine)
        except SparkUnavailable as exc:
            raise RefitRejected(str(exc)) from None
    with refit_lock(engine):
        _mark_failed(engine, "interrupted: the process ended before publishing")
        if engine.dialect.name == "postgresql":
            _drop_staging(engine)  # left by a Spark refit that died
        tell(RefitStage.CHECKING)
        checked = check_inputs(engine, settings, as_of)
        latest = latest_published(engine)
        if not force and latest is not None and latest.fingerprint == checked.fingerprint:
            log.info("refit unchanged", extra={"snapshot_id": latest.id, "trigger": trigger})
            raise RefitUnchanged(latest.id)
        snapshot_id = _record_run(engine, settings, checked, trigger)
        log.info("refit started", extra={"snapshot_id": snapshot_id, "trigger": trigger})

        def stage(name: str) -> None:
            current = RefitStage(name)
            _set_stage(engine, snapshot_id, current)
            tell(current)

        try:
            if spark:
                result, previous, write_orders = _run_spark(
                    engine, settings, snapshot_id, checked, stage
                )
            else:
                result, previous = _run_local(engine, settings, checked, stage)
                write_orders = None
            stage(RefitStage.WRITING)
            timings = _write(engine, snapshot_id, result, previous, settings, started, write_orders)
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            if spark:
                _drop_staging(engine, snapshot_id)
            _mark_failed(engine, message, snapshot_id)
            log.error("refit failed", extra={"snapshot_id": snapshot_id, "error": message})
            raise RefitFailed(snapshot_id, str(exc)) from exc
        except BaseException:  # stopped (Ctrl-C, the scheduler's SIGTERM): say so, then stop
            _mark_failed(engine, "interrupted: the refit was stopped", snapshot_id)
            raise
    duration = time.perf_counter() - started
    segments = result.segments[["segment_id", "name", "customers", "share"]].to_dict("records")
    log.info(
        "refit published",
        extra={"snapshot_id": snapshot_id, "k": result.k, "duration_s": round(duration, 3)},
    )
    return RefitOutcome(
        snapshot_id,
        result.k,
        result.silhouette,
        checked.as_of,
        len(result.customers),
        segments,
        duration,
        timings,
    )


def _job_params(params: dict[str, Any]) -> tuple[int | None, date | None, bool]:
    """A refit job's k, as-of date and force flag; ValueError naming a bad one."""
    k, as_of, force = params.get("k"), params.get("as_of"), params.get("force", False)
    if k is not None and (not isinstance(k, int) or isinstance(k, bool) or not 2 <= k <= 30):
        raise RefitRejected(f"job parameter k={k!r}: use a whole number from 2 to 30, or none")
    day = None
    if as_of is not None:
        try:
            day = date.fromisoformat(str(as_of))
        except ValueError:
            raise RefitRejected(
                f"job parameter as_of={as_of!r} is not a date (YYYY-MM-DD)"
            ) from None
    if not isinstance(force, bool):
        raise RefitRejected(f"job parameter force={force!r}: true or false")
    return k, day, force


def refit_settings(engine: Engine, settings: Settings, k: int | None = None) -> RefitSettings:
    """What the next refit runs with: the app's settings and the effective k setting (`k` from
    the command line, then an admin's setting in the app, the environment, the default)."""
    return RefitSettings.from_settings(settings, choice=effective_k_setting(engine, settings, k))


def refit_job(
    engine: Engine, settings: Settings, job: Job, on_stage: Callable[[str], None]
) -> JobResult:
    """The `refit` job kind: params k (None: auto), as_of (ISO date, None: the last order day),
    force. A bad parameter or input fails the job and records no snapshot."""
    try:
        k, as_of, force = _job_params(job.params)
        o = refit(
            engine,
            refit_settings(engine, settings, k),
            as_of=as_of,
            trigger=job.trigger,
            force=force,
            on_stage=on_stage,
        )
    except RefitRejected as exc:
        return JobResult(JobStatus.FAILED, error=str(exc))
    except RefitUnchanged as exc:
        return JobResult(JobStatus.SKIPPED, message=str(exc))
    except RefitSkipped as exc:
        return JobResult(JobStatus.SKIPPED, message=str(exc))
    except RefitFailed as exc:
        return JobResult(JobStatus.FAILED, error=str(exc), snapshot_id=exc.snapshot_id)
    # The snapshot's files for the web workers first, then its predictions (their own job).
    jobs.enqueue(engine, "files", {"snapshot_id": o.snapshot_id}, trigger=job.trigger)
    if settings.predictions:
        jobs.enqueue(engine, "predict", {"snapshot_id": o.snapshot_id}, trigger=job.trigger)
    from db.notify import notify_after_refit  # digests and alerts: a job of their own

    notify_after_refit(engine, o.snapshot_id)
    return JobResult(
        JobStatus.DONE,
        message=f"snapshot {o.snapshot_id} published (k={o.k})",
        snapshot_id=o.snapshot_id,
        details={
            "k": o.k,
            "silhouette": round(o.silhouette, 4),
            "customers": o.customers,
            "duration_s": round(o.duration_s, 3),
        },
    )
