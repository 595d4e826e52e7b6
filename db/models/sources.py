"""Database sources (a shop's own PostgreSQL or MySQL/MariaDB) and the history of their syncs.

A source is read-only to this app: its URL is stored without a password (the password comes
from an environment variable or a secret file, named here, read when connecting) and every
sync reads in a read-only transaction (db/sources.py).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, text_enum
from db.models.snapshots import Trigger
from db.models.users import utcnow


class SyncStatus(StrEnum):
    RUNNING = "running"
    DONE = "done"  # lines added, changed or removed
    UNCHANGED = "unchanged"  # nothing new at the source
    FAILED = "failed"  # see `error`; nothing was written


class Source(Base):
    """A read-only database the order lines are synced from, and where its last sync ended."""

    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    url: Mapped[str] = mapped_column(String(1000))  # never with a password
    password_env: Mapped[str | None] = mapped_column(String(128), nullable=True)
    password_file: Mapped[str | None] = mapped_column(String(500), nullable=True)
    table_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    query: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Normalized column (customer_id, order_id, ordered_at, amount, category, country) -> the
    # source's column.
    mapping: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    key_column: Mapped[str] = mapped_column(String(128))
    watermark_column: Mapped[str] = mapped_column(String(128))
    # The largest watermark synced, typed ({"type": "datetime", "value": "..."}); NULL: never.
    watermark: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    last_synced_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(254), nullable=True)


class SourceSync(Base):
    """One sync of a source: when, how many lines, and how it ended."""

    __tablename__ = "source_syncs"
    __table_args__ = (Index("ix_source_syncs_source_id_id", "source_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    status: Mapped[SyncStatus] = mapped_column(text_enum(SyncStatus, 16))
    full: Mapped[bool] = mapped_column(Boolean, default=False)
    trigger: Mapped[Trigger] = mapped_column(text_enum(Trigger, 32))
    requested_by: Mapped[str | None] = mapped_column(String(254), nullable=True)
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    lines_read: Mapped[int] = mapped_column(Integer, default=0)
    lines_new: Mapped[int] = mapped_column(Integer, default=0)
    lines_changed: Mapped[int] = mapped_column(Integer, default=0)
    lines_removed: Mapped[int] = mapped_column(Integer, default=0)
    # The batch it imported; no foreign key: the history stays when the batch is removed.
    batch_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    since: Mapped[str | None] = mapped_column(String(64), nullable=True)  # watermark, as text
    until: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
