"""Campaigns, the pure part (analytics/campaigns.py): rules, the split, the window figures and
the statistics of the lift."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from analytics import campaigns as c
from analytics.campaigns import RuleError


def _audience(sizes: dict[int, int], seed: int = 0) -> pd.DataFrame:
    """Customers C0000001.. in segments of the given sizes, in a shuffled order."""
    segs = np.repeat(list(sizes), list(sizes.values()))
    ids = np.array([f"C{i:07d}" for i in range(len(segs))], dtype=object)
    order = np.random.default_rng(seed).permutation(len(segs))
    return pd.DataFrame({"customer_id": ids[order], "segment_id": segs[order]})


# --- the split ---------------------------------------------------------------------------------


@pytest.mark.parametrize("share", [0.01, 0.1, 0.25, 0.5])
def test_the_split_is_reproducible_from_its_seed_and_stratified_by_segment(share: float) -> None:
    sizes = {3: 4_817, 5: 1_203, 8: 333, 11: 41, 12: 7, 20: 1}
    aud = _audience(sizes)
    held = c.split(aud["customer_id"], aud["segment_id"], share, seed=20260101)
    again = c.split(aud["customer_id"], aud["segment_id"], share, seed=20260101)
    assert (held == again).all()
    # The rows in another order: the same customers are held out.
    shuffled = aud.sample(frac=1.0, random_state=7)
    held_shuffled = c.split(shuffled["customer_id"], shuffled["segment_id"], share, 20260101)
    assert set(shuffled["customer_id"][held_shuffled]) == set(aud["customer_id"][held])
    other = c.split(aud["customer_id"], aud["segment_id"], share, seed=20260102)
    assert set(aud["customer_id"][other]) != set(aud["customer_id"][held])
    per_segment = pd.Series(held).groupby(aud["segment_id"].to_numpy()).sum()
    for seg, n in sizes.items():
        assert abs(per_segment[seg] - n * share) < 1, (seg, per_segment[seg], n * share)
    total = sum(sizes.values())
    assert held.sum() == int(np.floor(total * share + 0.5))
    # The preview's sizes are what the split draws.
    preview = c.sizes(aud["segment_id"], share).set_index("segment_id")
    assert (preview["holdout"] == per_segment).all()
    assert (preview["treatment"] + preview["holdout"] == pd.Series(sizes)).all()


def test_the_split_draws_each_segment_at_random() -> None:
    """Across seeds every customer is held out about as often as the share says."""
    aud = _audience({1: 200, 2: 50})
    counts = np.zeros(len(aud))
    for seed in range(400):
        counts += c.split(aud["customer_id"], aud["segment_id"], 0.1, seed)
    rate = counts / 400
    assert 0.09 < rate.mean() < 0.11
    assert rate.min() > 0.02 and rate.max() < 0.22  # nobody always or never held out


def test_the_split_refuses_a_bad_share_or_seed() -> None:
    aud = _audience({1: 10})
    with pytest.raises(RuleError, match="between 1% and 50%"):
        c.split(aud["customer_id"], aud["segment_id"], 0.9, 1)
    with pytest.raises(RuleError, match="not a number"):
        c.split(aud["customer_id"], aud["segment_id"], True, 1)  # type: ignore[arg-type]
    with pytest.raises(RuleError, match="seed"):
        c.split(aud["customer_id"], aud["segment_id"], 0.1, -1)


# --- rules -------------------------------------------------------------------------------------


CUSTOMERS = pd.DataFrame(
    {
        "customer_id": ["a", "b", "c", "d", "e"],
        "segment_id": [1, 1, 2, 2, 3],
        "lifecycle_stage": ["Champions", "Lost", "Champions", "At risk", "Lost"],
        "recency_days": [5, 400, 20, 100, 700],
        "frequency": [12, 1, 3, 2, 1],
        "monetary": [900.0, 40.0, 150.5, 80.0, 20.0],
        "aov": [75.0, 40.0, 50.2, 40.0, 20.0],
    }
)


def test_a_rule_selects_the_customers_meeting_every_condition() -> None:
    rule = c.parse_rule({"segment": [2, 1], "recency_days": [None, 100], "monetary": [100, None]})
    assert rule.fields == ("segment", "recency_days", "monetary")  # FIELDS' order
    assert rule.as_json() == {
        "segment": [1, 2],
        "recency_days": [None, 100],
        "monetary": [100.0, None],
    }
    got = c.audience(CUSTOMERS, rule)
    assert got["customer_id"].tolist() == ["a", "c"]
    assert list(got.columns) == [
        "customer_id",
        "segment_id",
        "lifecycle_stage",
        "recency_days",
        "monetary",
    ]
    assert got["monetary"].tolist() == [900.0, 150.5]
    stage = c.audience(CUSTOMERS, c.parse_rule({"stage": ["Lost"], "frequency": [1, 1]}))
    assert stage["customer_id"].tolist() == ["b", "e"]
    assert c.audience(CUSTOMERS, c.parse_rule({}))["customer_id"].tolist() == list("abcde")
    names = {1: "Loyal", 2: "Regulars"}
    assert rule.describe(names) == "Segment: Loyal, Regulars; Recency (days) ≤ 100; Spend ≥ 100"
    assert c.parse_rule(None).describe() == "every customer of the snapshot"


def test_a_range_leaves_out_customers_without_a_value() -> None:
    frame = CUSTOMERS.assign(churn_risk=[0.9, np.nan, 0.2, 0.7, np.nan])
    got = c.audience(frame, c.parse_rule({"churn_risk": [0.5, None]}))
    assert got["customer_id"].tolist() == ["a", "d"]
    assert got["churn_risk"].tolist() == [0.9, 0.7]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"email": ["x"]}, "Unknown rule field 'email'"),
        ("segment=1", "not valid"),
        ({"segment": []}, "choose from 1 to"),
        ({"segment": ["1"]}, "must be ids"),
        ({"segment": [True]}, "must be ids"),
        ({"segment": list(range(65))}, "choose from 1 to 64"),
        ({"stage": ["x" * 65]}, "short lines of text"),
        ({"stage": ["Lost\n"]}, "short lines of text"),
        ({"recency_days": 90}, r"\[low, high\]"),
        ({"recency_days": [None, None]}, "a low end, a high end, or both"),
        ({"recency_days": [1.5, None]}, "whole number"),
        ({"recency_days": [-1, None]}, "from 0 up"),
        ({"monetary": [10, 5]}, "low end 10 is above the high end 5"),
        ({"monetary": [float("nan"), None]}, "finite"),
        ({"monetary": ["10", None]}, "not a number"),
        ({"churn_risk": [0.5, 2]}, "from 0 to 1"),
    ],
)
def test_the_rule_parser_says_what_is_wrong(rule: object, message: str) -> None:
    with pytest.raises(RuleError, match=message):
        c.parse_rule(rule)


def test_a_rule_the_snapshot_cannot_answer_is_refused() -> None:
    check = lambda rule: c.check_rule(c.parse_rule(rule), CUSTOMERS, [1, 2, 3], 7)  # noqa: E731
    check({"segment": [1, 3], "stage": ["Lost"], "aov": [10, None]})  # fine
    with pytest.raises(RuleError, match=r"Segment\(s\) \[9\] are not in snapshot 7"):
        check({"segment": [1, 9]})
    with pytest.raises(RuleError, match="Unknown lifecycle stage 'Sleepy'"):
        check({"stage": ["Sleepy"]})
    with pytest.raises(RuleError, match="custseg campaign create"):
        check({"country": ["Germany"]})
    with pytest.raises(RuleError, match="snapshot 7 does not hold it"):
        check({"predicted_value": [100, None]})
    assert [f.name for f in c.available(CUSTOMERS.columns)] == [
        "segment",
        "stage",
        "recency_days",
        "frequency",
        "monetary",
        "aov",
    ]
    with_country = c.available([*CUSTOMERS.columns, "country"], extra_sources=("transactions",))
    assert "country" in [f.name for f in with_country]


def test_campaign_dates_names_and_status() -> None:
    assert c.check_dates(date(2026, 1, 1), None) == (date(2026, 1, 1), None)
    with pytest.raises(RuleError, match="before the start date"):
        c.check_dates(date(2026, 1, 2), date(2026, 1, 1))
    with pytest.raises(RuleError, match="start date"):
        c.check_dates(None, None)
    with pytest.raises(RuleError, match="must lie between"):
        c.check_dates(date(1900, 1, 1), None)
    assert c.check_name("  Spring   win-back ") == "Spring win-back"
    for bad in ("", "  ", None, "x" * 121, "nul\x00here"):
        with pytest.raises(RuleError):
            c.check_name(bad)
    start, end = date(2026, 1, 1), date(2026, 1, 31)
    assert c.status(start, end, date(2025, 12, 31)) == "draft"
    assert c.status(start, end, start) == "running"
    assert c.status(start, end, end) == "running"
    assert c.status(start, end, date(2026, 2, 1)) == "ended"
    assert c.status(start, None, date(2030, 1, 1)) == "running"


# --- window figures ----------------------------------------------------------------------------


def test_the_window_figures_count_every_member_and_positive_orders_only() -> None:
    members = pd.DataFrame(
        {"customer_id": ["t1", "t2", "t3", "t4", "h1", "h2"], "holdout": [False] * 4 + [True] * 2}
    )
    day = pd.Timestamp
    orders = pd.DataFrame(
        [
            ("t1", day("2026-01-02"), 30.0),
            ("t1", day("2026-01-09"), 10.0),
            ("t1", day("2026-01-10"), -10.0),  # a return: not an order, not revenue
            ("t2", day("2026-01-31"), 60.0),
            ("t2", day("2026-02-01"), 99.0),  # after the window
            ("t3", day("2025-12-20"), 25.0),  # in the period before
            ("h1", day("2026-01-05"), 8.0),
            ("x9", day("2026-01-05"), 500.0),  # not a member
            # t4 and h2: no order (e.g. their lines were deleted): non-buyers, still counted
        ],
        columns=["customer_id", "day", "total"],
    )
    win = c.window(date(2026, 1, 1), date(2026, 1, 31), last_day=date(2026, 3, 1))
    assert win == c.Window(
        date(2026, 1, 1), date(2026, 1, 31), date(2025, 12, 1), date(2025, 12, 31)
    )
    got = c.measure(members, orders, win)
    rows = got.groups.set_index(["group", "period"])
    t = rows.loc[("treatment", "window")]
    assert (t.customers, t.buyers, t.orders, t.revenue) == (4, 2, 3, 100.0)
    assert (
        t.conversion == 0.5 and t.revenue_per_customer == 25.0 and t.aov == pytest.approx(100 / 3)
    )
    h = rows.loc[("holdout", "window")]
    assert (h.customers, h.buyers, h.orders, h.revenue, h.revenue_per_customer) == (
        2,
        1,
        1,
        8.0,
        4.0,
    )
    before = rows.loc[("treatment", "before")]
    assert (before.buyers, before.revenue, before.first_day) == (1, 25.0, date(2025, 12, 1))
    assert pd.isna(rows.loc[("holdout", "before")].aov)  # no order: no average
    conversion, revenue = got.lifts
    assert conversion.lift == pytest.approx(0.0) and revenue.lift == pytest.approx(21.0)
    daily = got.daily[got.daily["group"] == "treatment"].set_index("day")
    assert len(daily) == 31
    assert daily.loc[0, "revenue_per_customer"] == 0.0
    assert daily.loc[1, "revenue_per_customer"] == 7.5  # t1's 30 on Jan 2 over 4 customers
    assert daily.loc[30, "revenue_per_customer"] == 25.0 and daily.loc[30, "conversion"] == 0.5
    assert daily.loc[29, "conversion"] == 0.25  # t2 first bought on the last day


def test_the_window_runs_to_the_end_date_or_the_last_day_with_data() -> None:
    start = date(2026, 1, 1)
    assert c.window(start, None, None) is None
    assert c.window(start, None, date(2025, 12, 31)) is None  # nothing after the start yet
    running = c.window(start, date(2026, 3, 31), date(2026, 1, 10))
    assert running is not None and (running.end, running.days) == (date(2026, 1, 10), 10)
    assert running.before_start == date(2025, 12, 22)


# --- the statistics ----------------------------------------------------------------------------


def _shop(rng: np.random.Generator, n: int, share: float, effect: float, value: float):  # type: ignore[no-untyped-def]
    """A synthetic campaign: 15% of everyone buys (lognormal order values); `effect` of the
    treatment's non-buyers buy once more for `value`."""
    ids = np.array([f"C{i}" for i in range(n)], dtype=object)
    held = c.split(ids, np.zeros(n, dtype=int), share, int(rng.integers(0, 2**32)))
    buys = rng.random(n) < 0.15
    totals = np.round(rng.lognormal(3.5, 0.8, n), 2)
    planted = ~held & ~buys & (rng.random(n) < effect / 0.85)
    orders = pd.DataFrame(
        {
            "customer_id": np.concatenate([ids[buys], ids[planted]]),
            "day": pd.Timestamp("2026-01-10"),
            "total": np.concatenate([totals[buys], np.full(planted.sum(), value)]),
        }
    )
    members = pd.DataFrame({"customer_id": ids, "holdout": held})
    return c.measure(
        members, orders, c.window(date(2026, 1, 1), date(2026, 1, 31), date(2026, 2, 9))
    )


def test_with_no_effect_the_intervals_contain_zero_in_at_least_90_of_100_runs() -> None:
    covered = {c.CONVERSION: 0, c.REVENUE: 0}
    for seed in range(100):
        got = _shop(np.random.default_rng(seed), 4_000, 0.1, effect=0.0, value=0.0)
        for lift in got.lifts:
            covered[lift.metric] += lift.low <= 0 <= lift.high
    assert covered[c.CONVERSION] >= 90 and covered[c.REVENUE] >= 90, covered


def test_with_a_planted_effect_the_intervals_contain_it() -> None:
    covered = {c.CONVERSION: 0, c.REVENUE: 0}
    for seed in range(100):
        got = _shop(np.random.default_rng(seed), 4_000, 0.1, effect=0.05, value=40.0)
        conversion, revenue = got.lifts
        covered[c.CONVERSION] += conversion.low <= 0.05 <= conversion.high
        covered[c.REVENUE] += revenue.low <= 0.05 * 40 <= revenue.high
    assert covered[c.CONVERSION] >= 90 and covered[c.REVENUE] >= 90, covered


def test_the_verdict_says_what_the_interval_shows() -> None:
    big = c.conversion_lift(300, 1_000, 200, 1_000)
    assert big.detected and big.low > 0
    assert big.verdict.startswith("The campaign raised conversion by +10.0 pts (95% CI +")
    small = c.conversion_lift(105, 1_000, 100, 1_000)
    assert not small.detected and small.low < 0 < small.high
    assert small.verdict.startswith("No detectable effect yet: +0.5 pts (95% CI ")
    assert "only an effect of about 4." in small.verdict and "(at 80% power)" in small.verdict
    # 80% power at alpha 5% with 1,000 per group and a 10% base rate: about 4.3 points.
    assert small.mde == pytest.approx(0.043, abs=0.003)
    lower = c.revenue_lift(np.zeros(500), np.full(500, 10.0) + np.linspace(-1, 1, 500))
    assert lower.detected and lower.verdict.startswith(
        "The campaign lowered revenue per customer by 10.00"
    )
    nothing = c.revenue_lift(np.zeros(50), np.zeros(50))
    assert (nothing.lift, nothing.low, nothing.high, nothing.mde) == (0.0, 0.0, 0.0, None)
    tiny = c.conversion_lift(1, 1, 0, 5)
    assert tiny.lift is None and tiny.verdict == "Too few customers in a group to tell."
