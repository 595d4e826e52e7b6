"""Analysts' names for segments: they follow a segment id into later snapshots."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, func, select

from db.models import SegmentLabel, SnapshotSegment
from db.session import session_scope

MAX_NAME = 80


def rename_segment(engine: Engine, segment_id: int, name: str, by: str | None = None) -> str:
    """Give a segment an analyst's name (whitespace collapsed); returns the name kept."""
    name = " ".join(str(name).split())
    if not 1 <= len(name) <= MAX_NAME:
        raise ValueError(f"a segment name has 1 to {MAX_NAME} characters")
    with session_scope(engine) as db:
        known = db.scalar(
            select(func.count())
            .select_from(SnapshotSegment)
            .where(SnapshotSegment.segment_id == segment_id)
        )
        if not known:
            raise ValueError(f"no segment {segment_id} in any snapshot")
        label = db.get(SegmentLabel, segment_id) or SegmentLabel(segment_id=segment_id)
        label.name = name
        label.renamed_by = by
        label.renamed_at = datetime.now(UTC).replace(tzinfo=None)
        db.add(label)
    return name
