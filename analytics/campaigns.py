"""Campaigns (pure): audience rules, the treatment / holdout split, and what a campaign did.

An audience is the customers of one snapshot that match a rule, frozen when the campaign is
saved and split at random into a treatment group (who get the campaign) and a holdout (who do
not). Over the campaign window, per group: conversion = share of the group's customers with a
positive order; revenue per customer = gross revenue of positive orders / customers in the group
(non-buyers count as 0, and so do customers whose orders were deleted since). Lift = treatment -
holdout, with a 95% confidence interval: Newcomb's interval for a difference of proportions
(statsmodels) and Welch's t interval for revenue per customer (scipy). The smallest effect the
group sizes could detect at 80% power comes from statsmodels' power tools. Reasons and figures:
docs/FEATURES.md, "Campaigns".

A rule is a dict of conditions over the fields of `FIELDS`, the one table of what a rule may
use: a new customer attribute is one entry there (its column in the customers frame, its kind
and type), and the rule parser, the Campaigns page's form, `custseg campaign create --where`
and the exported list's columns follow.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Literal

import numpy as np
import pandas as pd

from analytics.rfm import STAGES

TREATMENT, HOLDOUT = "treatment", "holdout"
GROUPS = (TREATMENT, HOLDOUT)
WINDOW, BEFORE = "window", "before"
PERIODS = (WINDOW, BEFORE)
DRAFT, RUNNING, ENDED = "draft", "running", "ended"
STATUSES = (DRAFT, RUNNING, ENDED)
CONVERSION, REVENUE = "conversion", "revenue_per_customer"
METRICS = (CONVERSION, REVENUE)
DEFAULT_HOLDOUT = 0.10
MIN_HOLDOUT, MAX_HOLDOUT = 0.01, 0.5
CONFIDENCE = 0.95
POWER = 0.80
MAX_VALUES = 64  # values of one set condition
MAX_NAME = 120
MAX_SEED = 2**63 - 1  # stored as a BIGINT


MAX_TEXT = 64  # a text value of a rule, as the filters' (analytics/exports/spec.py)


class RuleError(ValueError):
    """A rule, a campaign setting or a value of a rule that is refused; says which and why.

    (Not a FilterError: analytics.exports imports this module for its campaign export.)"""


@dataclass(frozen=True)
class Field:
    """A customer attribute a rule may use.

    `kind`: "set" (the customer's value is one of the listed ones) or "range" (between a low
    and a high bound, both included, either open). `column`: the customers frame's column it
    reads. `source`: "snapshot" (the snapshot's customers) or "transactions" (read from the
    order lines when the campaign is created, by the command line: pages never scan them).
    """

    name: str
    label: str
    kind: Literal["set", "range"]
    column: str
    dtype: Literal["int", "float", "text"]
    source: Literal["snapshot", "transactions"] = "snapshot"
    low: float | None = None  # the smallest value a bound may take
    high: float | None = None
    decimals: int | None = None  # of its values in the exported list


FIELDS: dict[str, Field] = {
    f.name: f
    for f in (
        Field("segment", "Segment", "set", "segment_id", "int"),
        Field("stage", "Lifecycle stage", "set", "lifecycle_stage", "text"),
        Field("recency_days", "Recency (days)", "range", "recency_days", "int", low=0),
        Field("frequency", "Orders", "range", "frequency", "int", low=0),
        Field("monetary", "Spend", "range", "monetary", "float", low=0, decimals=2),
        Field("aov", "Average order value", "range", "aov", "float", low=0, decimals=2),
        Field("country", "Country", "set", "country", "text", source="transactions"),
        # Predictions (analytics/predictions.py): usable once a snapshot stores them.
        Field(
            "predicted_value",
            "Predicted 12-month value",
            "range",
            "clv_12m",
            "float",
            low=0,
            decimals=2,
        ),
        Field(
            "churn_risk", "Churn risk", "range", "churn_risk", "float", low=0, high=1, decimals=4
        ),
    )
}
# Always in a campaign's member rows and its exported list; the other fields are exported when
# the rule uses them (`attribute_fields`).
BASE_FIELDS = ("segment", "stage")
ATTRIBUTE_FIELDS = tuple(n for n in FIELDS if n not in BASE_FIELDS)


@dataclass(frozen=True)
class Condition:
    """One field's condition: `values` for a set, `low` / `high` (None: open) for a range."""

    field: str
    values: tuple[int | str, ...] = ()
    low: float | None = None
    high: float | None = None

    def as_json(self) -> list[Any]:
        if FIELDS[self.field].kind == "set":
            return list(self.values)
        return [self.low, self.high]


@dataclass(frozen=True)
class Rule:
    """Conditions over `FIELDS`, all of which a customer must meet (no condition: everybody)."""

    conditions: tuple[Condition, ...] = ()

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(c.field for c in self.conditions)

    def get(self, name: str) -> Condition | None:
        return next((c for c in self.conditions if c.field == name), None)

    def as_json(self) -> dict[str, list[Any]]:
        return {c.field: c.as_json() for c in self.conditions}

    @property
    def sources(self) -> set[str]:
        return {FIELDS[c.field].source for c in self.conditions}

    def describe(self, segment_names: Mapping[int, str] | None = None) -> str:
        """The rule in words, e.g. "Segment: Champions, Regulars; Recency (days) ≤ 90"."""
        names = segment_names or {}
        parts = []
        for c in self.conditions:
            f = FIELDS[c.field]
            if f.kind == "set":
                shown = [
                    names.get(int(v), f"#{v}") if f.name == "segment" else str(v) for v in c.values
                ]
                parts.append(f"{f.label}: {', '.join(shown)}")
            elif c.low is not None and c.high is not None:
                parts.append(f"{f.label} {_num(c.low)} to {_num(c.high)}")
            elif c.low is not None:
                parts.append(f"{f.label} ≥ {_num(c.low)}")
            else:
                parts.append(f"{f.label} ≤ {_num(c.high)}")
        return "; ".join(parts) or "every customer of the snapshot"


def _num(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: object, f: Field, which: str) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RuleError(f"The {which} of {f.label} is not a number.")
    if not math.isfinite(value) or abs(value) > 1e15:
        raise RuleError(f"The {which} of {f.label} is not a finite number.")
    if f.dtype == "int" and not float(value).is_integer():
        raise RuleError(f"The {which} of {f.label} must be a whole number.")
    if (f.low is not None and value < f.low) or (f.high is not None and value > f.high):
        bounds = f"from {_num(f.low)}" + (f" to {_num(f.high)}" if f.high is not None else " up")
        raise RuleError(f"The {which} of {f.label} must be {bounds} (got {_num(value)}).")
    return int(value) if f.dtype == "int" else float(value)


def _condition(f: Field, given: object) -> Condition:
    if f.kind == "set":
        values: list[Any] = list(given) if isinstance(given, list | tuple) else [given]
        if not values or len(values) > MAX_VALUES:
            raise RuleError(f"{f.label}: choose from 1 to {MAX_VALUES} values.")
        if f.dtype == "int":
            if not all(_whole(v) and 0 <= v < 2**31 for v in values):
                raise RuleError(f"{f.label}: the values must be ids (whole numbers).")
            return Condition(f.name, tuple(sorted({int(v) for v in values})))
        if not all(
            isinstance(v, str) and 0 < len(v.strip()) <= MAX_TEXT and v.isprintable()
            for v in values
        ):
            raise RuleError(f"{f.label}: the values must be short lines of text.")
        return Condition(f.name, tuple(sorted({str(v).strip() for v in values})))
    if not isinstance(given, list | tuple) or len(given) != 2:
        raise RuleError(f"{f.label}: give a range as [low, high] (either may be empty).")
    low, high = _number(given[0], f, "low end"), _number(given[1], f, "high end")
    if low is None and high is None:
        raise RuleError(f"{f.label}: give a low end, a high end, or both.")
    if low is not None and high is not None and low > high:
        raise RuleError(f"{f.label}: the low end {_num(low)} is above the high end {_num(high)}.")
    return Condition(f.name, low=low, high=high)


def parse_rule(value: object) -> Rule:
    """A rule as a browser, the command line or the database give it: {field: values or
    [low, high]}. Every value is checked here, whoever built it; conditions come in FIELDS'
    order, so two equal rules are equal."""
    if value is None:
        return Rule()
    if not isinstance(value, Mapping) or len(value) > len(FIELDS):
        raise RuleError("The rule is not valid.")
    unknown = [k for k in value if k not in FIELDS]
    if unknown:
        shown = ", ".join(repr(str(k)[:40]) for k in unknown[:3])
        raise RuleError(f"Unknown rule field {shown}: use {', '.join(FIELDS)}.")
    return Rule(tuple(_condition(FIELDS[n], value[n]) for n in FIELDS if n in value))


def available(columns: Iterable[str], extra_sources: Iterable[str] = ()) -> list[Field]:
    """The fields a customers frame with `columns` can give (`extra_sources`: "transactions"
    when the caller joins what the order lines hold, as the command line does)."""
    have, sources = set(columns), {"snapshot", *extra_sources}
    return [f for f in FIELDS.values() if f.column in have and f.source in sources]


def check_rule(
    rule: Rule, customers: pd.DataFrame, segment_ids: Iterable[int], snapshot_id: int
) -> None:
    """Refuse a rule the snapshot cannot answer: a field it does not hold, a segment it does
    not have, a stage that does not exist."""
    for c in rule.conditions:
        f = FIELDS[c.field]
        if f.column not in customers.columns:
            if f.source == "transactions":
                raise RuleError(
                    f"{f.label}: snapshots do not hold it; `custseg campaign create` reads it "
                    "from the transactions when it creates the campaign."
                )
            raise RuleError(f"{f.label}: snapshot {snapshot_id} does not hold it.")
    segments = rule.get("segment")
    if segments is not None:
        unknown = sorted(set(segments.values) - {int(s) for s in segment_ids})
        if unknown:
            raise RuleError(f"Segment(s) {unknown} are not in snapshot {snapshot_id}.")
    stages = rule.get("stage")
    if stages is not None:
        unknown_stages = [s for s in stages.values if s not in STAGES]
        if unknown_stages:
            raise RuleError(
                f"Unknown lifecycle stage {unknown_stages[0]!r}: use {', '.join(STAGES)}."
            )


def matches(customers: pd.DataFrame, rule: Rule) -> np.ndarray:
    """Which customers meet every condition (a missing value meets none)."""
    keep = np.ones(len(customers), dtype=bool)
    for c in rule.conditions:
        f = FIELDS[c.field]
        column = customers[f.column]
        if f.kind == "set":
            keep &= column.isin(list(c.values)).to_numpy(dtype=bool)
            continue
        values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
        with np.errstate(invalid="ignore"):
            if c.low is not None:
                keep &= values >= c.low
            if c.high is not None:
                keep &= values <= c.high
        keep &= ~np.isnan(values)
    return keep


def attribute_fields(rule: Rule) -> tuple[str, ...]:
    """The fields a campaign stores per member and exports besides segment and stage."""
    return tuple(n for n in ATTRIBUTE_FIELDS if n in rule.fields)


def audience(customers: pd.DataFrame, rule: Rule) -> pd.DataFrame:
    """The customers the rule selects: customer_id, segment_id, lifecycle_stage and the values
    of the rule's other fields (named as the fields), by customer id."""
    picked = customers.loc[matches(customers, rule)]
    out = pd.DataFrame(
        {
            "customer_id": picked["customer_id"].astype(str).to_numpy(),
            "segment_id": picked["segment_id"].to_numpy(dtype=np.int64),
            "lifecycle_stage": (
                picked["lifecycle_stage"].astype(object).to_numpy()
                if "lifecycle_stage" in picked
                else np.full(len(picked), None, dtype=object)
            ),
        }
    )
    for name in attribute_fields(rule):
        out[name] = picked[FIELDS[name].column].to_numpy()
    if not out["customer_id"].is_monotonic_increasing:
        out = out.sort_values("customer_id", kind="stable").reset_index(drop=True)
    return out


# --- the split ---------------------------------------------------------------------------------


def holdout_sizes(counts: Sequence[int] | np.ndarray, share: float) -> np.ndarray:
    """Customers each segment holds out, given each segment's size: the largest-remainder
    apportionment of round(total x share), so every segment is within one customer of its
    share and the whole holdout is the share of the whole audience, rounded (ties go to the
    larger segment, then the earlier one)."""
    n = np.asarray(counts, dtype=np.int64)
    exact = n * share
    held = np.floor(exact).astype(np.int64)
    left = int(math.floor(n.sum() * share + 0.5)) - int(held.sum())
    if left > 0:
        order = np.lexsort((np.arange(len(n)), -n, -(exact - held)))
        held[order[:left]] += 1
    return held


def check_share(share: object) -> float:
    if isinstance(share, bool) or not isinstance(share, int | float) or not math.isfinite(share):
        raise RuleError("The holdout share is not a number.")
    if not MIN_HOLDOUT <= share <= MAX_HOLDOUT:
        raise RuleError(
            f"The holdout share must lie between {MIN_HOLDOUT:.0%} and {MAX_HOLDOUT:.0%} "
            f"(got {share:.1%})."
        )
    return float(share)


def split(
    customer_ids: Sequence[str] | np.ndarray,
    segment_ids: Sequence[int] | np.ndarray,
    share: float,
    seed: int,
) -> np.ndarray:
    """Which customers are held out (True) and which get the campaign, drawn per segment.

    Each segment holds out its part of the holdout (`holdout_sizes`: within one customer of
    the share), drawn by numpy's Generator seeded with (seed, segment id) from its customers in
    id order: the same seed and audience give the same split, whatever order the rows come in.
    """
    share = check_share(share)
    if not 0 <= seed <= MAX_SEED:
        raise RuleError(f"The seed must be a whole number from 0 to {MAX_SEED}.")
    ids = np.asarray(customer_ids, dtype=object)
    segs = np.asarray(segment_ids, dtype=np.int64)
    in_id_order = pd.Index(ids).is_monotonic_increasing  # an audience comes sorted
    order = np.arange(len(ids)) if in_id_order else np.argsort(ids, kind="stable")
    held = np.zeros(len(ids), dtype=bool)
    in_order = segs[order]
    values, counts = np.unique(in_order, return_counts=True)
    for seg, k in zip(values, holdout_sizes(counts, share), strict=True):
        members = order[in_order == seg]
        rng = np.random.default_rng([seed, int(seg) & 0xFFFFFFFF])
        held[members[rng.choice(len(members), size=int(k), replace=False)]] = True
    return held


def sizes(segment_ids: Sequence[int] | np.ndarray, share: float) -> pd.DataFrame:
    """Per segment: customers, treatment and holdout as `split` will draw them (for the preview
    before saving: the sizes do not depend on the seed)."""
    counts = pd.Series(np.asarray(segment_ids, dtype=np.int64)).value_counts().sort_index()
    held = holdout_sizes(counts.to_numpy(), share)
    return pd.DataFrame(
        {
            "segment_id": counts.index.to_numpy(dtype=np.int64),
            "customers": counts.to_numpy(dtype=np.int64),
            "treatment": counts.to_numpy(dtype=np.int64) - held,
            "holdout": held,
        }
    )


# --- dates -------------------------------------------------------------------------------------


def check_dates(start: date | None, end: date | None) -> tuple[date, date | None]:
    from analytics.exports.spec import FilterError, check_day

    if start is None:
        raise RuleError("Give the campaign's start date.")
    try:
        check_day(start, "start date")
        check_day(end, "end date")
    except FilterError as exc:
        raise RuleError(str(exc)) from None
    if end is not None and end < start:
        raise RuleError(f"The end date {end} is before the start date {start}.")
    return start, end


def check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise RuleError("Give the campaign a name.")
    name = " ".join(name.split())
    if len(name) > MAX_NAME or not name.isprintable():
        raise RuleError(f"The name must be printable text of at most {MAX_NAME} characters.")
    return name


def status(start: date, end: date | None, today: date) -> str:
    """draft before the start date, ended after the end date, running in between."""
    if today < start:
        return DRAFT
    if end is not None and today > end:
        return ENDED
    return RUNNING


@dataclass(frozen=True)
class Window:
    """The days measured: the campaign window so far and the same number of days before it."""

    start: date
    end: date
    before_start: date
    before_end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def period(self, name: str) -> tuple[date, date]:
        return (self.start, self.end) if name == WINDOW else (self.before_start, self.before_end)


def window(start: date, end: date | None, last_day: date | None) -> Window | None:
    """From the start date to the end date or the last day with orders, whichever is first;
    None while no day after the start has data."""
    if last_day is None or last_day < start:
        return None
    stop = min(end, last_day) if end is not None else last_day
    days = (stop - start).days + 1
    return Window(start, stop, start - timedelta(days=days), start - timedelta(days=1))


# --- measurement ------------------------------------------------------------------------------

GROUP_COLUMNS = (
    "group",
    "period",
    "first_day",
    "last_day",
    "customers",
    "buyers",
    "conversion",
    "orders",
    "revenue",
    "revenue_per_customer",
    "aov",
)
DAILY_COLUMNS = ("group", "day", "revenue_per_customer", "conversion")


def per_customer(
    members: pd.DataFrame, orders: pd.DataFrame, first: date, last: date
) -> tuple[np.ndarray, np.ndarray]:
    """Positive orders and their revenue per member (members' row order) in [first, last].

    members: customer_id. orders: customer_id, day, total (one row per order); orders of
    customers who are not members are ignored, members without orders get 0.
    """
    n = len(members)
    days = pd.to_datetime(orders["day"]).to_numpy(dtype="datetime64[D]")
    totals = orders["total"].to_numpy(dtype=float)
    keep = (days >= np.datetime64(first, "D")) & (days <= np.datetime64(last, "D")) & (totals > 0)
    where = pd.Index(members["customer_id"].astype(str)).get_indexer(
        orders["customer_id"].astype(str).to_numpy()[keep]
    )
    known = where >= 0
    counts = np.bincount(where[known], minlength=n).astype(np.int64)
    revenue = np.bincount(where[known], weights=totals[keep][known], minlength=n)
    return counts, revenue


def _group_row(
    group: str, period: str, days: tuple[date, date], counts: np.ndarray, revenue: np.ndarray
) -> dict[str, Any]:
    n, buyers, n_orders = len(counts), int((counts > 0).sum()), int(counts.sum())
    total = float(revenue.sum())
    return {
        "group": group,
        "period": period,
        "first_day": days[0],
        "last_day": days[1],
        "customers": n,
        "buyers": buyers,
        "conversion": buyers / n if n else None,
        "orders": n_orders,
        "revenue": round(total, 2),
        "revenue_per_customer": total / n if n else None,
        "aov": total / n_orders if n_orders else None,
    }


@dataclass(frozen=True)
class Lift:
    """Treatment - holdout for one metric, its 95% interval and what it means in words."""

    metric: str
    treatment: float | None
    holdout: float | None
    lift: float | None
    low: float | None
    high: float | None
    mde: float | None  # the smallest effect the group sizes could detect at 80% power
    verdict: str
    method: str

    @property
    def detected(self) -> bool:
        return self.low is not None and self.high is not None and (self.low > 0 or self.high < 0)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in LIFT_COLUMNS}


LIFT_COLUMNS = ("metric", "treatment", "holdout", "lift", "low", "high", "mde", "verdict", "method")


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _points(value: float | None, sign: bool = True) -> str:
    return "–" if value is None else f"{value * 100:{'+' if sign else ''}.1f} pts"


def _amount(value: float | None, sign: bool = True) -> str:
    return "–" if value is None else f"{value:{'+' if sign else ''},.2f}"


def _verdict(lift: Lift, fmt: Any, what: str) -> str:
    if lift.low is None or lift.high is None or lift.lift is None:
        return "Too few customers in a group to tell."
    interval = f"95% CI {fmt(lift.low)} to {fmt(lift.high)}"
    if lift.low > 0:
        return f"The campaign raised {what} by {fmt(lift.lift)} ({interval})."
    if lift.high < 0:
        return f"The campaign lowered {what} by {fmt(-lift.lift, False)} ({interval})."
    could = (
        f" With these group sizes only an effect of about {fmt(lift.mde, False)} or more could "
        "be detected (at 80% power)."
        if lift.mde is not None
        else ""
    )
    return f"No detectable effect yet: {fmt(lift.lift)} ({interval}) includes zero.{could}"


@functools.lru_cache(maxsize=64)
def detectable_effect(n_t: int, n_h: int, test: Literal["z", "t"]) -> float:
    """The standardized effect two groups of these sizes detect with 80% power at the 5%
    level (two-sided): Cohen's h for proportions ("z", `NormalIndPower`), Cohen's d for means
    ("t", `TTestIndPower`). Cached: it depends on the sizes only."""
    from statsmodels.stats.power import NormalIndPower, TTestIndPower

    solver = NormalIndPower() if test == "z" else TTestIndPower()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(
            solver.solve_power(
                effect_size=None, nobs1=n_t, alpha=1 - CONFIDENCE, power=POWER, ratio=n_h / n_t
            )
        )


def conversion_lift(buyers_t: int, n_t: int, buyers_h: int, n_h: int) -> Lift:
    """Difference of the groups' conversion rates, Newcomb's 95% interval (statsmodels'
    `confint_proportions_2indep`), and the smallest difference detectable at 80% power given
    the holdout's rate (Cohen's h from `NormalIndPower`, turned back into a rate)."""
    from statsmodels.stats.proportion import confint_proportions_2indep

    method = "difference of proportions, Newcomb's 95% interval"
    if n_t < 2 or n_h < 2:
        lift = Lift(CONVERSION, None, None, None, None, None, None, "", method)
        return _with_verdict(lift, _points, "conversion")
    p_t, p_h = buyers_t / n_t, buyers_h / n_h
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = confint_proportions_2indep(
            buyers_t, n_t, buyers_h, n_h, compare="diff", alpha=1 - CONFIDENCE
        )
    h = detectable_effect(n_t, n_h, "z")
    angle = math.asin(math.sqrt(p_h)) + float(h) / 2
    mde = (math.sin(min(angle, math.pi / 2)) ** 2 - p_h) if math.isfinite(float(h)) else None
    lift = Lift(
        CONVERSION, p_t, p_h, p_t - p_h, _finite(low), _finite(high), _finite(mde), "", method
    )
    return _with_verdict(lift, _points, "conversion")


def revenue_lift(revenue_t: np.ndarray, revenue_h: np.ndarray) -> Lift:
    """Difference of the groups' mean revenue per customer (non-buyers 0), Welch's 95% t
    interval (scipy), and the smallest difference detectable at 80% power (Cohen's d from
    statsmodels' `TTestIndPower`, times the pooled standard deviation)."""
    from scipy import stats

    method = "difference of means, Welch's 95% t interval"
    a, b = np.asarray(revenue_t, dtype=float), np.asarray(revenue_h, dtype=float)
    if len(a) < 2 or len(b) < 2:
        lift = Lift(REVENUE, None, None, None, None, None, None, "", method)
        return _with_verdict(lift, _amount, "revenue per customer")
    mean_t, mean_h = float(a.mean()), float(b.mean())
    sd = math.sqrt(
        ((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if sd > 0:
            interval = stats.ttest_ind(a, b, equal_var=False).confidence_interval(CONFIDENCE)
            low, high = _finite(interval.low), _finite(interval.high)
            d = detectable_effect(len(a), len(b), "t")
            mde = _finite(float(d) * sd)
        else:  # nobody spent anything in either group yet: no spread to test against
            low = high = mean_t - mean_h
            mde = None
    lift = Lift(REVENUE, mean_t, mean_h, mean_t - mean_h, low, high, mde, "", method)
    return _with_verdict(lift, _amount, "revenue per customer")


def _with_verdict(lift: Lift, fmt: Any, what: str) -> Lift:
    from dataclasses import replace

    return replace(lift, verdict=_verdict(lift, fmt, what))


@dataclass(frozen=True)
class Measurement:
    """A campaign's figures: per group and period, the lifts, and the cumulative curves."""

    window: Window
    groups: pd.DataFrame  # GROUP_COLUMNS
    lifts: tuple[Lift, ...]
    daily: pd.DataFrame  # DAILY_COLUMNS, day = days since the start (0 = the start date)
    notes: dict[str, Any] = field(default_factory=dict)


def daily_curves(
    members: pd.DataFrame, holdout: np.ndarray, orders: pd.DataFrame, win: Window
) -> pd.DataFrame:
    """Per group and day since the start: cumulative revenue per customer and conversion."""
    days = pd.to_datetime(orders["day"]).to_numpy(dtype="datetime64[D]")
    totals = orders["total"].to_numpy(dtype=float)
    offset = (days - np.datetime64(win.start, "D")).astype(np.int64)
    keep = (offset >= 0) & (offset < win.days) & (totals > 0)
    where = pd.Index(members["customer_id"].astype(str)).get_indexer(
        orders["customer_id"].astype(str).to_numpy()[keep]
    )
    known = where >= 0
    who, off, amount = where[known], offset[keep][known], totals[keep][known]
    rows = []
    for group, in_group in ((TREATMENT, ~holdout), (HOLDOUT, holdout)):
        n = int(in_group.sum())
        mine = in_group[who]
        revenue = np.cumsum(np.bincount(off[mine], weights=amount[mine], minlength=win.days))
        first = np.full(len(members), win.days, dtype=np.int64)  # each member's first order day
        np.minimum.at(first, who[mine], off[mine])
        converted = np.cumsum(np.bincount(first[in_group], minlength=win.days + 1)[: win.days])
        rows.append(
            pd.DataFrame(
                {
                    "group": group,
                    "day": np.arange(win.days, dtype=np.int64),
                    "revenue_per_customer": revenue / n if n else np.nan,
                    "conversion": converted / n if n else np.nan,
                }
            )
        )
    return pd.concat(rows, ignore_index=True)[list(DAILY_COLUMNS)]


def measure(members: pd.DataFrame, orders: pd.DataFrame, win: Window) -> Measurement:
    """What a campaign did in `win`.

    members: customer_id and holdout (bool), one row per member of the frozen audience.
    orders: customer_id, day, total, one row per order of the members (any days; only the
    window and the period before it are read). A member with no order, or whose orders were
    deleted, counts as a non-buyer.
    """
    holdout = members["holdout"].to_numpy(dtype=bool)
    rows = []
    figures: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for period in PERIODS:
        counts, revenue = per_customer(members, orders, *win.period(period))
        if period == WINDOW:
            figures = {TREATMENT: (counts[~holdout], revenue[~holdout])}
            figures[HOLDOUT] = (counts[holdout], revenue[holdout])
        for group, mask in ((TREATMENT, ~holdout), (HOLDOUT, holdout)):
            rows.append(_group_row(group, period, win.period(period), counts[mask], revenue[mask]))
    groups = pd.DataFrame(rows, columns=list(GROUP_COLUMNS))
    (c_t, r_t), (c_h, r_h) = figures[TREATMENT], figures[HOLDOUT]
    lifts = (
        conversion_lift(int((c_t > 0).sum()), len(c_t), int((c_h > 0).sum()), len(c_h)),
        revenue_lift(r_t, r_h),
    )
    return Measurement(win, groups, lifts, daily_curves(members, holdout, orders, win))


# --- the exported list -------------------------------------------------------------------------

LIST_COLUMNS = ("customer_id", "segment_id", "segment", "lifecycle_stage", *ATTRIBUTE_FIELDS)


@dataclass(frozen=True)
class AudienceList:
    """A campaign's frozen members as an export reads them, and what its provenance says.

    members: customer_id, holdout, segment_id, segment (its name), lifecycle_stage and the
    values of the rule's other fields (named as the fields), by customer id.
    """

    campaign_id: int
    members: pd.DataFrame
    provenance: dict[str, Any]


def treatment_rows(got: AudienceList) -> pd.DataFrame:
    """The treatment group's rows for the sending tool: never a holdout customer."""
    members = got.members
    out = members.loc[~members["holdout"].to_numpy(dtype=bool)]
    out = out[[c for c in LIST_COLUMNS if c in out.columns]].reset_index(drop=True)
    for name in ATTRIBUTE_FIELDS:
        decimals = FIELDS[name].decimals
        if name in out.columns and decimals is not None:
            out[name] = pd.to_numeric(out[name], errors="coerce").round(decimals)
    return out
