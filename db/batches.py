"""Import batches: list them, show one's report, remove one (its lines, its row, its content
hash) in one go, then queue a refit.

Shared by `custseg batches` and the Data page. A removal changes the raw lines; the refit it
queues (run by the scheduler process) publishes a snapshot without them. Until then, and for
as long as they are kept, the snapshots built while the batch was there say so: each records
the batches removed since (`snapshots.removed_batches`), shown in the `snapshots` export.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, delete, func, select, update

from db import jobs
from db.importer import ImportReport
from db.models import ImportBatch, Job, Snapshot, SnapshotStatus, Source, Transaction, Trigger
from db.models.users import utcnow

REFIT_KIND = "refit"  # db.scheduler.KINDS


class NoSuchBatch(ValueError):
    """No import batch has this id."""


@dataclass(frozen=True)
class BatchInfo:
    id: int
    file_name: str
    layout: str
    lines: int
    orders: int
    customers: int
    first_ordered_at: datetime | None
    last_ordered_at: datetime | None
    imported_at: datetime
    imported_by: str | None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("first_ordered_at", "last_ordered_at", "imported_at"):
            if data[key] is not None:
                data[key] = data[key].isoformat(sep=" ")
        return data


@dataclass(frozen=True)
class RemovedBatch:
    id: int
    file_name: str
    lines: int
    snapshots_marked: int = 0  # snapshots built while it was there
    refit_job_id: int | None = None  # the refit queued after the removal


def _when(value: Any) -> datetime | None:
    if isinstance(value, str):  # raw SQLite text
        return datetime.fromisoformat(value)
    return value  # type: ignore[no-any-return]


def list_batches(engine: Engine) -> list[BatchInfo]:
    """Every import batch, oldest first, with what its import recorded."""
    b = ImportBatch
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                b.id,
                b.file_name,
                b.layout,
                b.lines_imported,
                b.orders,
                b.customers,
                b.first_ordered_at,
                b.last_ordered_at,
                b.created_at,
                b.created_by,
            ).order_by(b.id)
        ).all()
    return [
        BatchInfo(
            id=r.id,
            file_name=r.file_name,
            layout=r.layout,
            lines=r.lines_imported,
            orders=r.orders,
            customers=r.customers,
            first_ordered_at=_when(r.first_ordered_at),
            last_ordered_at=_when(r.last_ordered_at),
            imported_at=_when(r.created_at) or datetime.min,
            imported_by=r.created_by,
        )
        for r in rows
    ]


def batch_report(engine: Engine, batch_id: int) -> str:
    """The report its import printed, from what the batch stored."""
    with engine.connect() as conn:
        stored = conn.execute(
            select(ImportBatch.report).where(ImportBatch.id == batch_id)
        ).scalar_one_or_none()
    if stored is None:
        raise NoSuchBatch(f"no import batch {batch_id} (custseg batches list shows them)")
    known = {k: v for k, v in stored.items() if k in ImportReport.__dataclass_fields__}
    for key in ("first_ordered_at", "last_ordered_at"):
        known[key] = _when(known.get(key))
    try:
        return ImportReport(**known).summary()
    except TypeError:  # a report without the fields every import writes
        return f"batch {batch_id}: no report stored"


def queue_refit(engine: Engine, trigger: Trigger, requested_by: str | None = None) -> Job:
    """Queue a refit with the app's settings for the scheduler process (one already waiting is
    reused)."""
    job, _new = jobs.enqueue(engine, REFIT_KIND, {}, trigger=trigger, requested_by=requested_by)
    return job


def mark_snapshots(conn: Connection, removed: Sequence[tuple[int, str, Any]]) -> int:
    """Record batches (id, file name, imported at) as removed in every published or running
    snapshot started after the batch was imported; how many snapshots say so now."""
    s = Snapshot
    marked: set[int] = set()
    now = utcnow().isoformat(sep=" ", timespec="seconds")
    for batch_id, file_name, imported_at in removed:
        rows = conn.execute(
            select(s.id, s.removed_batches).where(
                s.started_at >= imported_at, s.status != SnapshotStatus.FAILED
            )
        ).all()
        for snapshot_id, before in rows:
            entry = {"id": batch_id, "file_name": file_name, "removed_at": now}
            after = [*(before or []), entry]
            conn.execute(update(s).where(s.id == snapshot_id).values(removed_batches=after))
            marked.add(snapshot_id)
    return len(marked)


def delete_lines(conn: Connection, which: ColumnElement[bool]) -> int:
    """Delete the transactions `which` selects; how many there were."""
    lines = conn.execute(select(func.count()).select_from(Transaction).where(which)).scalar_one()
    conn.execute(delete(Transaction).where(which))
    return int(lines)


def remove_batch(
    engine: Engine,
    batch_id: int,
    *,
    refit: bool = True,
    trigger: Trigger = Trigger.CLI,
    requested_by: str | None = None,
) -> RemovedBatch:
    """Delete a batch's lines and its row in one transaction (all or nothing), marking the
    snapshots built from it; then queue a refit (unless `refit` is false). Its content hash
    goes with the row, so the same file can be imported again. A database source's batch:
    the source is the truth, so its next sync reads every line again (its watermark is reset)
    and brings back what it still has; to stop a source, remove the source."""
    with engine.begin() as conn:
        found = conn.execute(
            select(ImportBatch.file_name, ImportBatch.created_at, ImportBatch.source_id)
            .where(ImportBatch.id == batch_id)
            .with_for_update()
        ).one_or_none()
        if found is None:
            raise NoSuchBatch(f"no import batch {batch_id} (custseg batches list shows them)")
        name, imported_at, source_id = found
        if source_id is not None:
            conn.execute(update(Source).where(Source.id == source_id).values(watermark=None))
        lines = delete_lines(conn, Transaction.batch_id == batch_id)
        conn.execute(delete(ImportBatch).where(ImportBatch.id == batch_id))
        marked = mark_snapshots(conn, [(batch_id, name, _when(imported_at))])
    job = queue_refit(engine, trigger, requested_by) if refit else None
    return RemovedBatch(batch_id, name, lines, marked, job.id if job else None)
