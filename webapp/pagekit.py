"""What every page callback does: check the filters, read export frames, report problems."""

from __future__ import annotations

from typing import Any

import pandas as pd

from db import snapshots
from webapp.charts import Palette
from webapp.filters import FilterError, View
from webapp.state import state

# Errors a callback turns into a message on the page (never a server error).
HANDLED = (FilterError, ValueError, snapshots.NoSnapshot)


def read(view: View, export: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The frame a chart draws and the params its download recomputes it from."""
    st = state()
    frame, _ = snapshots.export_frame(
        st.engine, export, view.filters, view.snapshot_id, st.settings.active_days
    )
    return frame, view.params(export)


def palette(view: View) -> Palette:
    snap = snapshots.get_snapshot(state().engine, view.snapshot_id)
    return Palette(snapshots.segments(state().engine, snap.id))


def auto_granularity(view: View, first: Any, last: Any) -> str:
    """Day for up to two months, week up to a year and a half, month beyond."""
    start = view.filters.start or first
    end = view.filters.end or last
    days = (end - start).days + 1 if start and end else 10_000
    return "day" if days <= 62 else "week" if days <= 550 else "month"
