"""Order lines as imported, and the import batches they came in."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, BigIntPK
from db.models.users import utcnow


class ImportBatch(Base):
    """One imported file. Its content hash makes a second import of the same file a no-op."""

    __tablename__ = "import_batches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    file_name: Mapped[str] = mapped_column(String(500))
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    layout: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="done")
    lines_read: Mapped[int] = mapped_column(Integer, default=0)
    lines_imported: Mapped[int] = mapped_column(Integer, default=0)
    orders: Mapped[int] = mapped_column(Integer, default=0)
    customers: Mapped[int] = mapped_column(Integer, default=0)
    first_ordered_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    last_ordered_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    report: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(254), nullable=True)
    # The database source a sync batch came from (db/sources.py); NULL for a file.
    source_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Transaction(Base):
    """One order line (normalized layout). Lines without a customer id are kept (NULL)."""

    __tablename__ = "transactions"
    __table_args__ = (
        Index("ix_transactions_ordered_at", "ordered_at"),
        Index("ix_transactions_customer_id_ordered_at", "customer_id", "ordered_at"),
        Index("ix_transactions_batch_id", "batch_id"),
        # A database source's line key is unique per source: a changed line replaces its
        # earlier version. Partial: lines from files (NULL key) cost the index nothing.
        Index(
            "uq_transactions_source_id_source_key",
            "source_id",
            "source_key",
            unique=True,
            postgresql_where=text("source_key IS NOT NULL"),
            sqlite_where=text("source_key IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("import_batches.id", ondelete="CASCADE"))
    customer_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    order_id: Mapped[str] = mapped_column(String(64))
    ordered_at: Mapped[datetime] = mapped_column(DateTime)
    amount: Mapped[float] = mapped_column(Float(53))
    category: Mapped[str | None] = mapped_column(String(128), nullable=True)
    country: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # A database source's id and its order-line id (db/sources.py); NULL for lines from files.
    source_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    source_key: Mapped[str | None] = mapped_column(String(128), nullable=True)
