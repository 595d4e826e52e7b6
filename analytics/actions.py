"""A suggested action for each segment or lifecycle stage (pure).

A group (segment or stage) is described by four levels computed from its medians against all
customers of the snapshot and from its change since the previous snapshot; the first row of
RULES whose conditions all hold gives the advice. The numbers behind the levels are returned with
the advice (`basis`), so a page can show why in a tooltip (`explain`). docs/FEATURES.md has the
table in prose.

- recency: "recent", "middle" or "lapsed" (analytics.segmentation.recency_level: terciles of all
  customers' recency; "recent" also needs at most 90 days, a year or more is always "lapsed").
- frequency: "one" (median of one order), "frequent" (median at least 4 orders and the top
  decile, as in the segment names), "repeat" otherwise.
- spend: "low", "mid" or "high": the median spend against the terciles of all customers' spend.
- trend: "new" (not in the previous snapshot), "shrinking" (customers or revenue down by
  TREND_CHANGE or more), "growing" (customers up by TREND_CHANGE or more), "steady"; "unknown"
  without a previous snapshot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from analytics.segmentation import Bounds, bounds, recency_level

TREND_CHANGE = 0.10  # relative change in customers or revenue that counts as a trend
ANY: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Rule:
    """Conditions (a set of accepted levels each; empty = any) and the advice they lead to."""

    id: str
    advice: str
    recency: frozenset[str] = ANY
    frequency: frozenset[str] = ANY
    spend: frozenset[str] = ANY
    trend: frozenset[str] = ANY

    def matches(self, levels: dict[str, str]) -> bool:
        wanted = {
            "recency": self.recency,
            "frequency": self.frequency,
            "spend": self.spend,
            "trend": self.trend,
        }
        return all(not accepted or levels[key] in accepted for key, accepted in wanted.items())


def _s(*levels: str) -> frozenset[str]:
    return frozenset(levels)


REPEAT = _s("repeat", "frequent")

# The first rule that matches wins; the last one matches everything.
RULES: tuple[Rule, ...] = (
    Rule(
        "vip_lapsing",
        "High past spend, lapsing: a personal win-back offer this week.",
        recency=_s("lapsed"),
        frequency=REPEAT,
        spend=_s("high"),
    ),
    Rule(
        "lapsing_growing",
        "More customers lapsing than last time: check what changed (prices, delivery, stock) "
        "and start a win-back series.",
        recency=_s("lapsed"),
        trend=_s("growing"),
    ),
    Rule(
        "lost_low_value",
        "Lapsed, one order, low spend: one low-cost reactivation email, then stop mailing.",
        recency=_s("lapsed"),
        frequency=_s("one"),
        spend=_s("low"),
    ),
    Rule(
        "lapsed",
        "Lapsed: a reactivation offer with a deadline; drop non-responders from regular mailings.",
        recency=_s("lapsed"),
    ),
    Rule(
        "best_shrinking",
        "Best customers, but fewer or spending less than last time: find out why (service, "
        "stock, prices) before offering anything.",
        recency=_s("recent"),
        frequency=_s("frequent"),
        spend=_s("high"),
        trend=_s("shrinking"),
    ),
    Rule(
        "champions",
        "Recent, frequent, high spend: reward them and ask for reviews and referrals; no "
        "discounts needed.",
        recency=_s("recent"),
        frequency=_s("frequent"),
        spend=_s("high"),
    ),
    Rule(
        "loyal",
        "Frequent buyers: loyalty perks and early access; bundles to raise the order value.",
        recency=_s("recent"),
        frequency=_s("frequent"),
    ),
    Rule(
        "valuable_slipping",
        "Valuable and slipping: reach out personally now (service check, tailored offer) before "
        "they lapse.",
        recency=_s("middle"),
        frequency=REPEAT,
        spend=_s("high"),
    ),
    Rule(
        "slipping",
        "Repeat buyers going quiet: a reminder with recommendations from their past orders.",
        recency=_s("middle"),
        frequency=REPEAT,
    ),
    Rule(
        "new",
        "New: a welcome series and a reason for a second order within 30 days.",
        recency=_s("recent"),
        frequency=_s("one"),
    ),
    Rule(
        "second_order",
        "One order and quiet since: a time-limited incentive for the second order.",
        recency=_s("middle"),
        frequency=_s("one"),
    ),
    Rule(
        "active_repeat",
        "Active repeat buyers: cross-sell and bundles; ask for a review.",
        recency=_s("recent"),
        frequency=REPEAT,
    ),
    Rule("default", "Keep in regular campaigns and watch the trend."),
)


@dataclass
class Suggestion:
    advice: str
    rule: str
    basis: dict[str, Any] = field(default_factory=dict)


def _change(now: float, before: float) -> float | None:
    return (now - before) / before if before else None


def _trend(size_change: float | None, revenue_change: float | None, known: bool) -> str:
    if not known:
        return "new"
    if any(c is not None and c <= -TREND_CHANGE for c in (size_change, revenue_change)):
        return "shrinking"
    if size_change is not None and size_change >= TREND_CHANGE:
        return "growing"
    return "steady"


def suggest(
    profiles: pd.DataFrame,
    population: pd.DataFrame | Bounds,
    previous: pd.DataFrame | None = None,
) -> list[Suggestion]:
    """One suggestion per row of `profiles`, in its order.

    `profiles`: one row per group (index: segment id or stage) with the medians recency_days,
    frequency, monetary, and customers, gross_revenue. `population`: every customer of the
    snapshot (recency_days, frequency, monetary). `previous`: the previous snapshot's customers
    and gross_revenue per group (same index kind), or None without a previous snapshot.
    """
    b = bounds(population)
    m_lo, m_hi, r_lo, r_hi = b.m_lo, b.m_hi, b.r_lo, b.r_hi
    spend_median, frequent_from = b.spend_median, b.loyal_from
    out = []
    for key, row in profiles.iterrows():
        rec, freq, mon = float(row["recency_days"]), float(row["frequency"]), float(row["monetary"])
        size_change = revenue_change = None
        known = previous is not None and key in previous.index
        if previous is not None and known:
            before = previous.loc[key]
            size_change = _change(float(row["customers"]), float(before["customers"]))
            revenue_change = _change(float(row["gross_revenue"]), float(before["gross_revenue"]))
        frequency = "one" if freq <= 1 else ("frequent" if freq >= frequent_from else "repeat")
        trend = "unknown" if previous is None else _trend(size_change, revenue_change, known)
        levels = {
            "recency": recency_level(rec, b),
            "frequency": frequency,
            "spend": "low" if mon <= m_lo else ("high" if mon >= m_hi else "mid"),
            "trend": trend,
        }
        rule = next(r for r in RULES if r.matches(levels))
        basis = {
            "rule": rule.id,
            **{f"{k}_level": v for k, v in levels.items()},
            "recency_days": rec,
            "recency_terciles": [r_lo, r_hi],
            "frequency": freq,
            "frequent_from": frequent_from,
            "spend": mon,
            "spend_terciles": [m_lo, m_hi],
            "spend_vs_median": mon / spend_median if spend_median else None,
            "customers_change": size_change,
            "revenue_change": revenue_change,
        }
        out.append(Suggestion(rule.advice, rule.id, _rounded(basis)))
    return out


def _rounded(basis: dict[str, Any]) -> dict[str, Any]:
    def r(v: Any) -> Any:
        if isinstance(v, float):
            return None if math.isnan(v) else round(v, 4)
        if isinstance(v, list):
            return [r(x) for x in v]
        return v

    return {k: r(v) for k, v in basis.items()}


def explain(basis: dict[str, Any]) -> str:
    """The numbers behind a suggestion, in one line (for a tooltip)."""
    r_lo, r_hi = basis["recency_terciles"]
    m_lo, m_hi = basis["spend_terciles"]
    orders = {"one": "one order", "repeat": "repeat buyers", "frequent": "frequent buyers"}
    parts = [
        f"last order a median {basis['recency_days']:g} days ago ({basis['recency_level']}; "
        f"all customers' terciles {r_lo:g} and {r_hi:g} days)",
        f"a median {basis['frequency']:g} orders ({orders[basis['frequency_level']]}; frequent "
        f"from {basis['frequent_from']:g})",
        f"median spend {basis['spend']:,.2f} ({basis['spend_level']}; terciles {m_lo:,.2f} and "
        f"{m_hi:,.2f})",
    ]
    size, revenue = basis.get("customers_change"), basis.get("revenue_change")
    if basis["trend_level"] == "new":
        parts.append("not in the previous snapshot")
    elif size is not None or revenue is not None:
        moves = []
        if size is not None:
            moves.append(f"customers {size:+.0%}")
        if revenue is not None:
            moves.append(f"revenue {revenue:+.0%}")
        parts.append(" and ".join(moves) + " since the previous snapshot")
    return "; ".join(parts) + "."
