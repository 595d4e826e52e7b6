"""Run a refit against the database: lock, load, segment (analytics.pipeline), publish.

One refit at a time: a PostgreSQL transaction-level advisory lock (held by a connection for the
whole run), or an exclusive file lock beside an SQLite database. The snapshot row is recorded as
``running`` first; every child row and the switch to ``published`` are written in one
transaction. A failure marks the run ``failed`` and changes nothing else; a run killed outright
stays ``running`` until the next refit, holding the lock, marks it failed.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import pandas as pd
from sqlalchemy import Engine, delete, func, insert, select, text, update
from sqlalchemy.engine import make_url

from analytics.pipeline import KChoice, Previous, RefitResult, RefitSettings, run_refit
from db.bulk import bulk_insert
from db.models import (
    ImportBatch,
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
    Transaction,
)
from db.queries import category_breadth, data_window, load_orders, read_frame
from db.snapshots import latest_published

log = logging.getLogger("custseg.refit")
LOCK_KEY = 0x5E6_0001  # advisory lock id of the refit job


class RefitSkipped(RuntimeError):
    """Another refit holds the lock."""


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
                SnapshotSegment.segment_id, SnapshotSegment.name, SnapshotSegment.centroid
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
        segments=pd.DataFrame(seg, columns=["segment_id", "name", "centroid"]),
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


def _set_stage(engine: Engine, snapshot_id: int, stage: str) -> None:
    with engine.begin() as conn:
        conn.execute(update(Snapshot).where(Snapshot.id == snapshot_id).values(stage=stage))


def _write(
    engine: Engine,
    snapshot_id: int,
    result: RefitResult,
    previous: Previous | None,
    keep: int,
    started: float,
) -> dict[str, float]:
    """Write every table of the snapshot and publish it, in one transaction; its timings."""
    write_started = time.perf_counter()
    with engine.begin() as conn:

        def write(model: Any, frame: pd.DataFrame, **extra: Any) -> None:
            table = model.__table__
            columns = [c for c in table.c.keys() if c in frame.columns]
            bulk_insert(conn, table, frame[columns].assign(snapshot_id=snapshot_id, **extra))

        write(SnapshotScore, result.scores)
        write(SnapshotSegment, result.segments)
        write(SnapshotCustomer, result.customers)
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
                status="published",
                stage="published",
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
        # Keep the latest `keep` published snapshots; the one just published is the newest. The
        # one it replaces stays too, until the next publish: a page that picked it a moment ago
        # is still reading its rows.
        old = (
            conn.execute(
                select(Snapshot.id)
                .where(Snapshot.status == "published")
                .order_by(Snapshot.id.desc())
                .offset(keep)
            )
            .scalars()
            .all()
        )
        spared = {snapshot_id, previous.snapshot_id if previous else None}
        old = [i for i in old if i not in spared]
        if old:  # child rows go with them (ON DELETE CASCADE; snapshot_orders has no FK)
            conn.execute(delete(SnapshotOrder).where(SnapshotOrder.snapshot_id.in_(old)))
            conn.execute(delete(Snapshot).where(Snapshot.id.in_(old)))
    return timings


def refit(
    engine: Engine,
    *,
    k: int | None = None,
    as_of: date | None = None,
    k_min: int = 4,
    k_max: int = 8,
    k_margin: float = 0.01,
    k_choice: KChoice | None = None,
    seed: int = 42,
    silhouette_sample: int = 20_000,
    keep: int = 5,
    trigger: str = "cli",
    on_stage: Callable[[str], None] | None = None,
) -> RefitOutcome:
    """Refit and publish a snapshot. Raises RefitSkipped or RefitFailed.

    `k_choice` (db.k_settings.effective_k_setting), when given, replaces `k`, `k_min`, `k_max`
    and records where they came from.
    """
    started = time.perf_counter()
    if k_choice is None:
        k_choice = KChoice(k_min, k_max, k, "command line" if k else "arguments")
    k = k_choice.k
    settings = RefitSettings(
        k_min=k_choice.k_min,
        k_max=k_choice.k_max,
        k=k,
        seed=seed,
        silhouette_sample=silhouette_sample,
        k_margin=k_margin,
        k_source=k_choice.source,
    )
    with refit_lock(engine):
        with engine.begin() as conn:
            conn.execute(
                update(Snapshot)
                .where(Snapshot.status == "running")
                .values(
                    status="failed",
                    stage="failed",
                    finished_at=_now(),
                    error="interrupted: the process ended before publishing",
                )
            )
            snapshot_id = conn.execute(
                insert(Snapshot)
                .values(
                    status="running",
                    stage="loading",
                    started_at=_now(),
                    k_requested=str(k or "auto"),
                    settings=settings.as_dict(),
                    version=package_version(),
                    trigger=trigger,
                    pid=os.getpid(),
                    features={},
                    data_quality={},
                    timings={},
                    matching={},
                )
                .returning(Snapshot.id)
            ).scalar_one()
        log.info("refit started", extra={"snapshot_id": snapshot_id, "trigger": trigger})

        def stage(name: str) -> None:
            _set_stage(engine, snapshot_id, name)
            if on_stage:
                on_stage(name)

        try:
            t0 = time.perf_counter()
            first, last = data_window(engine)
            if first is None or last is None:
                raise ValueError(
                    "no transactions with a customer id: import a file first "
                    "(custseg import FILE, or custseg demo-data)"
                )
            as_of = as_of or last
            if as_of < first:
                raise ValueError(f"--as-of {as_of} is before the first order ({first})")
            stage("loading")
            orders, breadth, quality, previous = _load(engine, as_of)
            load_s = time.perf_counter() - t0
            with engine.begin() as conn:
                conn.execute(
                    update(Snapshot)
                    .where(Snapshot.id == snapshot_id)
                    .values(as_of=as_of, data_start=first, data_end=min(last, as_of))
                )
            result = run_refit(
                orders,
                as_of,
                settings,
                breadth,
                previous,
                quality,
                stage,
                next_segment_id=_next_segment_id(engine),
            )
            result.timings = {"load": round(load_s, 4), **result.timings}
            stage("writing")
            timings = _write(engine, snapshot_id, result, previous, keep, started)
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            with engine.begin() as conn:
                conn.execute(
                    update(Snapshot)
                    .where(Snapshot.id == snapshot_id)
                    .values(
                        status="failed", stage="failed", finished_at=_now(), error=message[:2000]
                    )
                )
            log.error("refit failed", extra={"snapshot_id": snapshot_id, "error": message})
            raise RefitFailed(snapshot_id, str(exc)) from exc
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
        as_of,
        len(result.customers),
        segments,
        duration,
        timings,
    )
