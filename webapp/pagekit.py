"""The page kit: what every chart callback of every page does, written once.

A page declares its chart callback with `chart_callback`: the charts it draws (each a component
id and the property it fills), any other outputs, and its inputs by name (the filter bar's
`FILTERS` by default). The kit parses the filters once (`analytics/exports/spec.py`), hands the
page a `Kit` to read export frames with (`kit.read`, through the one `Exporter`, with the user's
role), stores each chart's params for its download, and, when an input is refused or there is no
snapshot, answers with the page's message and blank charts instead. Outputs go by name: the
function returns a dict, and so does the callback (tests read `out["segments-shares"]`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, State
from flask import g

from analytics.exports import Filters, View, allowed
from analytics.exports import get as get_export
from db.exporter import Forbidden, SnapshotSources
from db.models import Snapshot
from db.snapshots import NoSnapshot
from webapp import alttext, roles
from webapp.charts import Palette, empty_figure
from webapp.components import params_id, summary_id, table_id
from webapp.filters import FILTERS, FilterError, parse_view
from webapp.state import state

# Errors a callback turns into a message on the page (never a server error).
HANDLED = (FilterError, ValueError, NoSnapshot, Forbidden)


def sources(snapshot_id: int | None) -> SnapshotSources:
    """The snapshot's frames, looked up once per request however many charts a page draws."""
    memo: dict[int | None, SnapshotSources] = g.setdefault("custseg_sources", {})
    if snapshot_id not in memo:
        memo[snapshot_id] = state().exporter.sources(snapshot_id)
    return memo[snapshot_id]


class Kit:
    """One callback's view of the data: its checked filters, and the exports it reads."""

    def __init__(self, view: View) -> None:
        self.view = view
        self.params: dict[str, dict[str, Any] | None] = {}
        # What each chart draws, for its text alternative: (export or frame kind, frame).
        self.frames: dict[str, tuple[str, pd.DataFrame]] = {}
        self._alternatives: dict[tuple[str, int], tuple[str, Any]] = {}

    def sources(self, view: View | None = None) -> SnapshotSources:
        return sources((view or self.view).snapshot_id)

    @property
    def snapshot(self) -> Snapshot:
        return self.sources().snap

    @property
    def segments(self) -> pd.DataFrame:
        """The snapshot's segments (analysts' names over generated ones)."""
        return self.sources().segments

    @property
    def palette(self) -> Palette:
        return Palette(self.segments)

    def may(self, export: str) -> bool:
        """Whether the user may receive `export`'s data (customer-level data: analysts)."""
        return allowed(get_export(export).role, roles.role_of_user())

    def read(
        self, export: str, view: View | None = None, *, charts: tuple[str, ...] = ()
    ) -> pd.DataFrame:
        """The frame of `export` for `view` (default: the callback's), through the one exporter,
        with the user's role; `charts` draw it, so their downloads recompute it."""
        view = view or self.view
        frame, _ = state().exporter.export(
            export,
            view.filters,
            view.snapshot_id,
            role=roles.role_of_user() or "viewer",
            src=self.sources(view),
        )
        for chart in charts:
            self.params[chart] = view.params(export)
            self.frames[chart] = (export, frame)
        return frame

    def shows(self, chart: str, kind: str, frame: pd.DataFrame) -> None:
        """Chart `chart` draws `frame`, which is no export (`kind` names its sentence in
        webapp/alttext.py): its text alternative comes from it."""
        self.frames[chart] = (kind, frame)

    def alternative(self, chart: str) -> tuple[str | None, Any]:
        """The sentence and the data table of chart `chart`, from the frame it draws (none when
        it drew no frame: a message, or data the user's role does not get)."""
        if chart not in self.frames:
            return None, None
        kind, frame = self.frames[chart]
        key = (kind, id(frame))  # charts drawn from one frame share its alternative
        if key not in self._alternatives:
            pal = self.palette
            self._alternatives[key] = (
                alttext.summary(kind, frame, pal.name),
                alttext.table(frame, pal.name),
            )
        return self._alternatives[key]


# What a chart's property shows when the view cannot be drawn.
BLANK: dict[str, Callable[[str], Any]] = {"figure": empty_figure, "data": lambda _: []}


@dataclass(frozen=True)
class Extra:
    """An output besides the charts, and its value when the view cannot be drawn."""

    output: Output
    blank: Any = None


def message(text: str, color: str = "warning") -> dbc.Alert:
    return dbc.Alert(text, color=color, className="py-2")


def chart_callback(
    page: str,
    charts: Mapping[str, str | None],
    *,
    inputs: Mapping[str, Input | State] = FILTERS,
    extras: Mapping[str, Extra] | None = None,
    role: roles.Role = "viewer",
    message_to: str | None = None,
    note_color: str = "warning",
    **dash_kwargs: Any,
) -> Callable[[Callable[..., dict[str, Any]]], Callable[..., dict[str, Any]]]:
    """Register a page's chart callback.

    `charts`: chart key -> the property of the component of that id it draws ("figure" for
    graphs, "children" or "data" for tables; None when the chart is drawn by `extras`, like the
    KPI cards); each also fills its params store. `extras`: other outputs by name. The page's
    message goes to "<page>-message" (or `message_to`). The decorated function takes the `Kit`
    and the inputs that are not filters, by name, and returns a dict by output name (charts,
    extras, and optionally "message"); what it leaves out is blank.
    """
    extras = dict(extras or {})
    outputs: dict[str, Output] = {}
    for chart, prop in charts.items():
        if prop is not None:
            outputs[chart] = Output(chart, prop)
        outputs[f"{chart}:params"] = Output(params_id(chart), "data")
        if prop == "figure":  # a drawn chart: its text alternative (components.chart_card)
            outputs[f"{chart}:summary"] = Output(summary_id(chart), "children")
            outputs[f"{chart}:table"] = Output(table_id(chart), "children")
    outputs.update({name: extra.output for name, extra in extras.items()})
    outputs["message"] = Output(message_to or f"{page}-message", "children")
    filter_names = [name for name in inputs if name in FILTERS]

    def blank(text: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for chart, prop in charts.items():
            if prop is not None:
                out[chart] = BLANK.get(prop, lambda _: None)(text)
            out[f"{chart}:params"] = None
            if prop == "figure":
                out[f"{chart}:summary"] = out[f"{chart}:table"] = None
        out.update({name: extra.blank for name, extra in extras.items()})
        out["message"] = message(text, note_color)
        return out

    def wrap(fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        @functools.wraps(fn)
        def run(**values: Any) -> dict[str, Any]:
            given = {name: values.pop(name, None) for name in FILTERS}
            try:
                view = parse_view(**given) if filter_names else View(Filters())
                kit = Kit(view)
                got = fn(kit, **values)
            except HANDLED as exc:
                return blank(str(exc))
            out: dict[str, Any] = {"message": got.get("message")}
            for chart, prop in charts.items():
                if prop is not None:
                    out[chart] = got.get(chart)
                out[f"{chart}:params"] = kit.params.get(chart)
                if prop == "figure":
                    out[f"{chart}:summary"], out[f"{chart}:table"] = kit.alternative(chart)
            for name, extra in extras.items():
                out[name] = got.get(name, extra.blank)
            return out

        return roles.callback(output=outputs, inputs=dict(inputs), role=role, **dash_kwargs)(run)

    return wrap


def auto_granularity(view: View, first: Any, last: Any) -> str:
    """Day for up to two months, week up to a year and a half, month beyond."""
    start = view.filters.start or first
    end = view.filters.end or last
    days = (end - start).days + 1 if start and end else 10_000
    return "day" if days <= 62 else "week" if days <= 550 else "month"
