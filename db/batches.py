"""Import batches: list them, remove one (its lines, its row, its content hash) in one go.

Shared by `custseg batches` and, later, the Admin page. A removal changes the raw lines only:
published snapshots keep what they were built from until the next refit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, func, select

from db.models import ImportBatch, Transaction


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


def remove_batch(engine: Engine, batch_id: int) -> RemovedBatch:
    """Delete a batch's lines and its row in one transaction (all or nothing). Its content
    hash goes with the row, so the same file can be imported again."""
    with engine.begin() as conn:
        name = conn.execute(
            select(ImportBatch.file_name).where(ImportBatch.id == batch_id).with_for_update()
        ).scalar_one_or_none()
        if name is None:
            raise NoSuchBatch(f"no import batch {batch_id} (custseg batches list shows them)")
        lines = conn.execute(
            select(func.count()).select_from(Transaction).where(Transaction.batch_id == batch_id)
        ).scalar_one()
        conn.execute(delete(Transaction).where(Transaction.batch_id == batch_id))
        conn.execute(delete(ImportBatch).where(ImportBatch.id == batch_id))
    return RemovedBatch(batch_id, name, int(lines))
