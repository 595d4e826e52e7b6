"""Alert rules: their kinds (one table), how a rule is checked against a snapshot's export frames,
and when it fires.

A kind says which exports it reads (`requests`: export, filters, this snapshot or the one before)
and turns their frames into a `Check`: whether its condition holds, the figures and one sentence
saying what moved. `transition` is the firing rule: a rule fires when its condition becomes true
and not again until it has been false. The database side (reading the exports, keeping each
rule's state, sending) is `db/notify.py`.

Adding a kind (a campaign's lift becoming significant, once campaigns exist) is one `RuleKind`
entry in `RULE_KINDS`: its parameters' check, its requests, its evaluation and its description.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from typing import Any, Literal

import pandas as pd

from analytics.exports.spec import Filters
from analytics.metrics import KPI_ORDER

KPI_LABELS = {
    "customers": "Customers",
    "active_customers": "Active customers",
    "orders": "Orders",
    "returns": "Returns",
    "gross_revenue": "Gross revenue",
    "net_revenue": "Net revenue",
    "aov": "AOV",
    "repeat_rate": "Repeat rate",
}
DIRECTIONS = ("either", "up", "down")
SEGMENT_MEASURES = {"customers": "customers", "share": "share of customers"}
MAX_THRESHOLD_PCT = 1000.0
MAX_PERIOD_DAYS = 366


class RuleError(ValueError):
    """A rule's parameters are not valid; the message names the parameter."""


class RuleState(StrEnum):
    ARMED = "armed"  # the condition was false (or the rule is new): the next true fires
    FIRED = "fired"  # fired; quiet until the condition has been false


@dataclass(frozen=True)
class SnapshotRef:
    """What a rule or digest knows of a snapshot besides its frames."""

    id: int
    as_of: date | None
    data_start: date | None
    data_end: date | None
    previous_id: int | None


@dataclass(frozen=True)
class Request:
    """An export frame a check needs: of this snapshot or of the one before it."""

    export: str
    filters: Filters = field(default_factory=Filters)
    of: Literal["current", "previous"] = "current"


@dataclass(frozen=True)
class Check:
    """One rule checked against one snapshot.

    `active` is None when it cannot be told (no previous period or snapshot to compare with, a
    segment that is new): the rule's state stays as it was.
    """

    active: bool | None
    message: str
    value: float | None = None
    previous: float | None = None
    change: float | None = None
    link_path: str = "/"
    link_query: tuple[tuple[str, Any], ...] = ()

    def details(self) -> dict[str, Any]:
        return {"value": self.value, "previous": self.previous, "change": self.change}


Frames = Mapping[str, pd.DataFrame | None]  # by request key; None: there is no such snapshot


@dataclass(frozen=True)
class RuleKind:
    """One kind of rule. `parse` checks and normalizes the parameters a user gave."""

    name: str
    label: str
    parse: Callable[[Mapping[str, Any]], dict[str, Any]]
    requests: Callable[[Mapping[str, Any], SnapshotRef], dict[str, Request]]
    evaluate: Callable[[Mapping[str, Any], SnapshotRef, Frames], Check]
    describe: Callable[[Mapping[str, Any], Mapping[int, str]], str]  # params, segment names
    daily: bool = False  # also checked by the daily run (not only after a refit)


# --- parameters ----------------------------------------------------------------------------


def _number(params: Mapping[str, Any], key: str, low: float, high: float, label: str) -> float:
    value = params.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise RuleError(f"The {label} must be a number.")
    if not low < value <= high:
        raise RuleError(f"The {label} must be above {low:g} and at most {high:g}.")
    return float(value)


def _whole(params: Mapping[str, Any], key: str, low: int, high: int, label: str) -> int:
    value = params.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RuleError(f"The {label} must be a whole number from {low} to {high}.")
    return value


def _choice(params: Mapping[str, Any], key: str, choices: Any, label: str) -> str:
    value = params.get(key)
    if not isinstance(value, str) or value not in choices:
        raise RuleError(f"The {label} must be one of {', '.join(choices)}.")
    return value


def _common(params: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "threshold_pct": _number(params, "threshold_pct", 0, MAX_THRESHOLD_PCT, "threshold (%)"),
        "direction": _choice(params, "direction", DIRECTIONS, "direction"),
    }


def crosses(change: float | None, threshold_pct: float, direction: str) -> bool | None:
    """Whether a relative change moves by more than the threshold in the direction."""
    if change is None:
        return None
    limit = threshold_pct / 100
    if direction == "up":
        return change > limit
    if direction == "down":
        return change < -limit
    return abs(change) > limit


def _moved(change: float) -> str:
    return "rose" if change > 0 else "fell" if change < 0 else "did not change"


def _rule_text(params: Mapping[str, Any]) -> str:
    way = {"either": "by", "up": "up by", "down": "down by"}[params["direction"]]
    return f"{way} more than {params['threshold_pct']:g}%"


def _compared(
    params: Mapping[str, Any],
    message: str,
    value: float | None,
    previous: float | None,
    change: float,
    link_path: str,
    link_query: tuple[tuple[str, Any], ...],
) -> Check:
    """A change measured against its comparison: active when it crosses the rule's threshold in
    the rule's direction; the message ends with the rule."""
    return Check(
        crosses(change, params["threshold_pct"], params["direction"]),
        f"{message} (rule: {_rule_text(params)}).",
        value,
        previous,
        change,
        link_path,
        link_query,
    )


def figure(metric: str, value: float | None) -> str:
    """A KPI or segment figure as the pages show it."""
    if value is None:
        return "–"
    if metric in ("repeat_rate", "share"):
        return f"{value * 100:.1f}%"
    if metric == "aov":
        return f"{value:,.2f}"
    return f"{value:,.0f}"


# --- a KPI against the previous period of the same length --------------------------------------


def kpi_period(params: Mapping[str, Any], snap: SnapshotRef) -> tuple[date, date]:
    """The last `period_days` days of the snapshot's data, its last order day included."""
    assert snap.data_end is not None
    end = snap.data_end
    return end - timedelta(days=int(params["period_days"]) - 1), end


def _kpi_parse(params: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "metric": _choice(params, "metric", KPI_ORDER, "KPI"),
        "period_days": _whole(params, "period_days", 1, MAX_PERIOD_DAYS, "period (days)"),
        **_common(params),
    }


def _kpi_requests(params: Mapping[str, Any], snap: SnapshotRef) -> dict[str, Request]:
    start, end = kpi_period(params, snap)
    return {"kpis": Request("kpi_comparison", Filters(start=start, end=end))}


def _kpi_evaluate(params: Mapping[str, Any], snap: SnapshotRef, frames: Frames) -> Check:
    metric, days = params["metric"], params["period_days"]
    start, end = kpi_period(params, snap)
    table = frames["kpis"]
    assert table is not None
    row = table.set_index("metric").loc[metric]
    value = None if pd.isna(row["current"]) else float(row["current"])
    before = None if pd.isna(row["previous"]) else float(row["previous"])
    change = None if pd.isna(row["change"]) else float(row["change"])
    label = KPI_LABELS[metric]
    query = (("start", start.isoformat()), ("end", end.isoformat()), ("snapshot", snap.id))
    if change is None:
        message = (
            f"{label}: {figure(metric, value)} in the last {days} days to {end}; no figure "
            f"for the {days} days before to compare with."
        )
        return Check(None, message, value, before, None, "/", query)
    message = (
        f"{label} {_moved(change)} {abs(change) * 100:.1f}% to {figure(metric, value)} in the "
        f"last {days} days to {end}, from {figure(metric, before)} in the {days} days before"
    )
    return _compared(params, message, value, before, change, "/", query)


def _kpi_describe(params: Mapping[str, Any], names: Mapping[int, str]) -> str:
    return (
        f"{KPI_LABELS[params['metric']]} moves {_rule_text(params)} "
        f"(last {params['period_days']} days against the {params['period_days']} before)"
    )


# --- a segment's size or share against the previous snapshot -----------------------------------


def _segment_parse(params: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "segment_id": _whole(params, "segment_id", 0, 2**31 - 1, "segment"),
        "measure": _choice(params, "measure", SEGMENT_MEASURES, "measure"),
        **_common(params),
    }


def _segment_requests(params: Mapping[str, Any], snap: SnapshotRef) -> dict[str, Request]:
    return {"now": Request("segments"), "before": Request("segments", of="previous")}


def _segment_row(frame: pd.DataFrame | None, segment_id: int) -> pd.Series | None:
    if frame is None:
        return None
    rows = frame[frame["segment_id"] == segment_id]
    return None if rows.empty else rows.iloc[0]


def _segment_evaluate(params: Mapping[str, Any], snap: SnapshotRef, frames: Frames) -> Check:
    sid, measure = int(params["segment_id"]), params["measure"]
    now, before = _segment_row(frames["now"], sid), _segment_row(frames["before"], sid)
    known = now if now is not None else before
    name = str(known["name"]) if known is not None else f"segment {sid}"
    query = (("segment", sid), ("snapshot", snap.id))
    value = 0.0 if now is None else float(now[measure])
    unit = SEGMENT_MEASURES[measure]
    if frames["before"] is None or before is None:
        why = "no earlier snapshot" if frames["before"] is None else "it is new in this snapshot"
        message = f"Segment “{name}”: {figure(measure, value)} {unit}; {why} to compare with."
        return Check(None, message, value, None, None, "/segments", query)
    previous = float(before[measure])
    change = (value - previous) / abs(previous) if previous else None
    if change is None:
        message = f"Segment “{name}” had no {unit} in snapshot {snap.previous_id}."
        return Check(None, message, value, previous, None, "/segments", query)
    verb = "grew" if change > 0 else "shrank" if change < 0 else "did not change"
    message = (
        f"Segment “{name}” {verb} {abs(change) * 100:.1f}% from {figure(measure, previous)} to "
        f"{figure(measure, value)} {unit} since snapshot {snap.previous_id}"
    )
    return _compared(params, message, value, previous, change, "/segments", query)


def _segment_describe(params: Mapping[str, Any], names: Mapping[int, str]) -> str:
    sid = params["segment_id"]
    name = f"“{names[sid]}”" if sid in names else str(sid)
    unit = SEGMENT_MEASURES[params["measure"]]
    return f"Segment {name}: {unit} move {_rule_text(params)} against the previous snapshot"


RULE_KINDS: dict[str, RuleKind] = {
    kind.name: kind
    for kind in (
        RuleKind(
            "kpi_change",
            "A KPI moves against the previous period",
            _kpi_parse,
            _kpi_requests,
            _kpi_evaluate,
            _kpi_describe,
        ),
        RuleKind(
            "segment_change",
            "A segment's size or share moves against the previous snapshot",
            _segment_parse,
            _segment_requests,
            _segment_evaluate,
            _segment_describe,
        ),
    )
}


def kind_of(name: object) -> RuleKind:
    if not isinstance(name, str) or name not in RULE_KINDS:
        raise RuleError(f"The rule kind must be one of {', '.join(RULE_KINDS)}.")
    return RULE_KINDS[name]


def parse_rule(kind: object, params: object) -> tuple[str, dict[str, Any]]:
    """A rule's kind and its checked parameters (RuleError says which one is wrong)."""
    spec = kind_of(kind)
    if not isinstance(params, Mapping):
        raise RuleError("The rule's parameters are missing.")
    return spec.name, spec.parse(params)


def transition(state: RuleState, active: bool | None) -> tuple[RuleState, bool]:
    """The rule's next state and whether it fires now.

    It fires when its condition becomes true (armed → fired); while it stays true nothing more is
    sent; once false it is armed again. A check that cannot be told keeps the state.
    """
    if active is None:
        return state, False
    if not active:
        return RuleState.ARMED, False
    return RuleState.FIRED, state == RuleState.ARMED
