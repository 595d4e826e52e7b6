"""What every page callback does: check the filters, read export frames, report problems."""

from __future__ import annotations

from typing import Any

import pandas as pd
from flask import g

from db import snapshots
from db.models import Snapshot
from webapp.charts import Palette
from webapp.filters import FilterError, View
from webapp.state import state

# Errors a callback turns into a message on the page (never a server error).
HANDLED = (FilterError, ValueError, snapshots.NoSnapshot)


def _lookups(snapshot_id: int | None) -> tuple[Snapshot, pd.DataFrame]:
    """The snapshot and its segments, read once per request however many charts a page draws."""
    memo = g.setdefault("custseg_lookups", {})
    if snapshot_id not in memo:
        engine = state().engine
        snap = snapshots.get_snapshot(engine, snapshot_id)
        memo[snapshot_id] = (snap, snapshots.segments(engine, snap.id))
    return memo[snapshot_id]  # type: ignore[no-any-return]


def read(view: View, export: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The frame a chart draws and the params its download recomputes it from."""
    st = state()
    snap, segs = _lookups(view.snapshot_id)
    frame, _ = snapshots.export_frame(
        st.engine,
        export,
        view.filters,
        view.snapshot_id,
        st.settings.active_days,
        snap=snap,
        segs=segs,
    )
    return frame, view.params(export)


def snapshot_of(view: View) -> Snapshot:
    return _lookups(view.snapshot_id)[0]


def palette(view: View) -> Palette:
    return Palette(_lookups(view.snapshot_id)[1])


def auto_granularity(view: View, first: Any, last: Any) -> str:
    """Day for up to two months, week up to a year and a half, month beyond."""
    start = view.filters.start or first
    end = view.filters.end or last
    days = (end - start).days + 1 if start and end else 10_000
    return "day" if days <= 62 else "week" if days <= 550 else "month"
