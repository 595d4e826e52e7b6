"""What an export is asked for: the filter object and the only validation of its values.

Every surface builds its request here: the pages from the filter bar's values (strings and
numbers a browser sends, so each is checked and may be hostile), downloads from the params a
chart stored (sent back by the browser, checked again), `custseg export` from its options, and
`Filters.validate` checks whatever was built directly. A refused value raises `FilterError`,
whose message says which value and why.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from analytics.rfm import STAGES

GRANULARITIES = ("day", "week", "month")
# Filter dates outside these days are refused: far enough for any shop, near enough that a
# range and the period of equal length before it stay within what pandas can represent.
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(2100, 12, 31)
MAX_RETENTION_MONTH = 24
MAX_SEGMENTS = 64
MAX_TEXT = 64  # longest customer id a filter accepts
MAX_ID = 2**31 - 1  # ids are database integers
# As the date picker sends them: a day, optionally with a time of day.
DAY = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?")


class FilterError(ValueError):
    """A filter value that is refused; the message says which and why."""


def check_day(day: date | None, label: str = "date") -> date | None:
    """The one check of a day's range, whoever built it."""
    if day is not None and not FIRST_DAY <= day <= LAST_DAY:
        raise FilterError(f"The {label} must lie between {FIRST_DAY} and {LAST_DAY} (got {day}).")
    return day


def parse_day(value: object, label: str = "date") -> date | None:
    """A day as a browser sends it ("YYYY-MM-DD", maybe with a time); None for nothing."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not DAY.fullmatch(value):
        raise FilterError(f"The {label} is not a date (use YYYY-MM-DD).")
    try:
        day = date.fromisoformat(value[:10])
    except ValueError:
        raise FilterError(f"The {label} {value[:20]!r} is not a date (use YYYY-MM-DD).") from None
    return check_day(day, label)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_segments(value: object) -> tuple[int, ...]:
    """Segment ids: one, a list, or nothing (all segments); sorted, without repeats."""
    if value is None:
        return ()
    if _is_int(value):
        value = [value]
    if not isinstance(value, list | tuple) or len(value) > MAX_SEGMENTS:
        raise FilterError("The segment filter is not valid.")
    if not all(_is_int(v) and abs(v) <= MAX_ID for v in value):
        raise FilterError("The segment filter is not valid.")
    return tuple(sorted(set(value)))


def parse_stages(value: object) -> tuple[str, ...]:
    """Lifecycle stages: one name, a list, or nothing (all stages); in STAGES order, without
    repeats. A name that is not a stage is refused with the stages there are."""
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or len(value) > len(STAGES):
        raise FilterError("The stage filter is not valid.")
    for v in value:
        if not isinstance(v, str) or v not in STAGES:
            shown = repr(v)[:40] if isinstance(v, str) else "a value"
            raise FilterError(
                f"The stage filter is not valid: {shown} is not a lifecycle stage "
                f"({', '.join(STAGES)})."
            )
    return tuple(s for s in STAGES if s in value)


def parse_snapshot(value: object, label: str = "snapshot") -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
        raise FilterError(f"The {label} is not valid.")
    return value


def parse_choice(value: object, choices: Sequence[str], label: str) -> str:
    if not isinstance(value, str) or value not in choices:
        raise FilterError(f"The {label} must be one of {', '.join(choices)}.")
    return value


def parse_int(value: object, low: int, high: int, label: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise FilterError(f"The {label} must be a whole number from {low} to {high}.")
    return value


def parse_flag(value: object, label: str) -> bool:
    """A yes/no filter: True or False only (never a string a browser made up)."""
    if not isinstance(value, bool):
        raise FilterError(f"The {label} is not valid.")
    return value


def parse_sort(value: object, columns: Sequence[str]) -> tuple[str, bool] | None:
    """A table's sort as Dash's DataTable sends it (`sort_by`: [{column_id, direction}], one
    column): (column, descending), or None for the table's own order. A column not in
    `columns` or another direction is refused."""
    if value is None or value == []:
        return None
    if not isinstance(value, list) or len(value) != 1 or not isinstance(value[0], dict):
        raise FilterError("The sort order is not valid.")
    column, direction = value[0].get("column_id"), value[0].get("direction")
    if not isinstance(column, str) or column not in columns:
        raise FilterError("The sort column is not valid.")
    if direction not in ("asc", "desc"):
        raise FilterError("The sort direction must be asc or desc.")
    return column, direction == "desc"


def parse_text(value: object, label: str, limit: int = MAX_TEXT) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit or not value.isprintable():
        raise FilterError(f"The {label} is not valid.")
    return value.strip()


@dataclass(frozen=True)
class Filters:
    """What an export is filtered by. Each export reads the fields it needs (see its spec)."""

    start: date | None = None
    end: date | None = None
    segments: tuple[int, ...] = ()
    granularity: str = "month"  # sales
    split_by_segment: bool = False  # retention
    month: int = 1  # retention_trend: the month since first order
    compare_to: int | None = None  # migration: the snapshot customers come from
    customer: str | None = None  # customer_orders: one customer id
    stages: tuple[str, ...] = ()  # members, lifecycle exports: lifecycle stages (none = all)
    # members: only customers at high churn risk (CUSTSEG_HIGH_RISK) among the most valuable
    # (the top CUSTSEG_HIGH_VALUE_SHARE by 12-month CLV); none while predictions are pending.
    high_value_high_risk: bool = False
    # campaign_treatment: the campaign (only `custseg campaign export` and the Campaigns page
    # set it, each recording the export; chart params never carry it).
    campaign: int | None = None

    def validate(self) -> Filters:
        """Check every value (for filters built directly, e.g. by `custseg export`)."""
        check_day(self.start, "start date")
        check_day(self.end, "end date")
        if self.start and self.end and self.start > self.end:
            raise FilterError(f"The start date {self.start} is after the end date {self.end}.")
        parse_segments(list(self.segments))
        parse_choice(self.granularity, GRANULARITIES, "period")
        parse_int(self.month, 1, MAX_RETENTION_MONTH, "month")
        parse_snapshot(self.compare_to, "snapshot to compare with")
        parse_text(self.customer, "customer id")
        parse_stages(list(self.stages))
        parse_flag(self.high_value_high_risk, "high value, high risk filter")
        parse_snapshot(self.campaign, "campaign")
        return self

    def describe(self) -> dict[str, str]:
        """The filters as text, for an export's provenance."""
        out = {
            "start": str(self.start or "all"),
            "end": str(self.end or "all"),
            "segments": ",".join(map(str, self.segments)) or "all",
            "granularity": self.granularity,
            "split_by_segment": str(self.split_by_segment).lower(),
            "month": str(self.month),
        }
        if self.compare_to is not None:
            out["compare_to"] = str(self.compare_to)
        if self.customer is not None:
            out["customer"] = self.customer
        if self.stages:
            out["stages"] = ",".join(parse_stages(list(self.stages)))  # in the map's order
        if self.high_value_high_risk:
            out["high_value_high_risk"] = "true"
        if self.campaign is not None:
            out["campaign"] = str(self.campaign)
        return out


@dataclass(frozen=True)
class View:
    """Checked filters of one request and the snapshot they apply to (None: the latest)."""

    filters: Filters
    snapshot_id: int | None = None

    def with_(self, **changes: Any) -> View:
        return View(replace(self.filters, **changes), self.snapshot_id)

    def params(self, export: str) -> dict[str, Any]:
        """What a chart was drawn from; its download recomputes exactly this."""
        f = self.filters
        return {
            "export": export,
            "start": f.start.isoformat() if f.start else None,
            "end": f.end.isoformat() if f.end else None,
            "segments": list(f.segments),
            "snapshot": self.snapshot_id,
            "granularity": f.granularity,
            "split_by_segment": f.split_by_segment,
            "month": f.month,
            "compare_to": f.compare_to,
            "customer": f.customer,
            "stages": list(f.stages),
            "high_value_high_risk": f.high_value_high_risk,
        }


def parse_view(start: object, end: object, segments: object, snapshot: object) -> View:
    """The filter bar's values as a browser sends them."""
    first, last = parse_day(start, "start date"), parse_day(end, "end date")
    if first and last and first > last:
        raise FilterError("The start date is after the end date.")
    return View(Filters(first, last, parse_segments(segments)), parse_snapshot(snapshot))


def view_from_params(params: object, exports: Sequence[str]) -> tuple[str, View]:
    """A chart's stored params, as the browser sends them back: checked again (and any export
    name not in `exports` refused), since they may have been tampered with."""
    if not isinstance(params, dict):
        raise FilterError("Nothing to download yet: wait for the chart to load.")
    export = parse_choice(params.get("export"), exports, "export")
    view = parse_view(
        params.get("start"), params.get("end"), params.get("segments"), params.get("snapshot")
    )
    split = params.get("split_by_segment", False)
    if not isinstance(split, bool):
        raise FilterError("The retention split is not valid.")
    at_risk = parse_flag(params.get("high_value_high_risk", False), "high value, high risk filter")
    return export, view.with_(
        granularity=parse_choice(params.get("granularity", "month"), GRANULARITIES, "period"),
        split_by_segment=split,
        month=parse_int(params.get("month", 1), 1, MAX_RETENTION_MONTH, "month"),
        compare_to=parse_snapshot(params.get("compare_to"), "snapshot to compare with"),
        customer=parse_text(params.get("customer"), "customer id"),
        stages=parse_stages(params.get("stages")),
        high_value_high_risk=at_risk,
    )
