"""Suggested actions: the rule table's levels and order, the numbers behind each line, and the
actions stored with every segment of a snapshot."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, select

from analytics import actions
from db import snapshots
from db.importer import import_file
from db.models import SnapshotSegment as S
from tests.conftest import SAMPLE
from tests.refitting import refit


@pytest.fixture
def shop() -> pd.DataFrame:
    """Recency 0..364 days (terciles ~120 / ~245), 1-5 orders, spend terciles ~70 / ~140."""
    rng = np.random.default_rng(0)
    n = 3_000
    return pd.DataFrame(
        {
            "recency_days": rng.integers(0, 365, n),
            "frequency": rng.integers(1, 6, n),
            "monetary": rng.gamma(2.0, 55.0, n),
        }
    )


def _group(recency: float, frequency: float, spend: float, customers: int = 100) -> dict:
    return {
        "recency_days": recency,
        "frequency": frequency,
        "monetary": spend,
        "customers": customers,
        "gross_revenue": spend * customers,
    }


def test_each_profile_gets_the_first_rule_that_fits(shop: pd.DataFrame) -> None:
    profiles = pd.DataFrame.from_dict(
        {
            "champions": _group(5, 6, 900),
            "loyal": _group(10, 6, 90),
            "vip lapsing": _group(320, 3, 900),
            "lost": _group(330, 1, 20),
            "lapsed": _group(330, 1, 300),
            "valuable slipping": _group(180, 3, 900),
            "slipping": _group(180, 3, 40),
            "new": _group(8, 1, 40),
            "second order": _group(180, 1, 40),
            "active repeat": _group(20, 2, 90),
        },
        orient="index",
    )
    suggested = actions.suggest(profiles, shop)
    got = {key: s.rule for key, s in zip(profiles.index, suggested, strict=True)}
    assert got == {
        "champions": "champions",
        "loyal": "loyal",
        "vip lapsing": "vip_lapsing",
        "lost": "lost_low_value",
        "lapsed": "lapsed",
        "valuable slipping": "valuable_slipping",
        "slipping": "slipping",
        "new": "new",
        "second order": "second_order",
        "active repeat": "active_repeat",
    }


def test_the_trend_since_the_previous_snapshot_changes_the_advice(shop: pd.DataFrame) -> None:
    now = pd.DataFrame.from_dict(
        {
            1: _group(5, 6, 900, customers=80),
            2: _group(330, 2, 40, customers=150),
            3: _group(5, 6, 900),
        },
        orient="index",
    )
    before = pd.DataFrame(
        {"customers": [100, 100], "gross_revenue": [90_000.0, 6_000.0]}, index=[1, 2]
    )
    s1, s2, s3 = actions.suggest(now, shop, before)
    assert s1.rule == "best_shrinking" and s1.basis["customers_change"] == pytest.approx(-0.2)
    assert s2.rule == "lapsing_growing" and s2.basis["customers_change"] == pytest.approx(0.5)
    assert s3.rule == "champions" and s3.basis["trend_level"] == "new"
    assert "not in the previous snapshot" in actions.explain(s3.basis)
    without = actions.suggest(now, shop, None)
    assert without[0].rule == "champions" and without[0].basis["trend_level"] == "unknown"


def test_the_basis_holds_the_numbers_that_triggered_the_advice(shop: pd.DataFrame) -> None:
    profiles = pd.DataFrame.from_dict({7: _group(320, 3, 900, customers=50)}, orient="index")
    before = pd.DataFrame({"customers": [40], "gross_revenue": [40_000.0]}, index=[7])
    (s,) = actions.suggest(profiles, shop, before)
    b = s.basis
    r_lo, r_hi = shop["recency_days"].quantile([0.33, 0.67])
    m_lo, m_hi = shop["monetary"].quantile([0.33, 0.67])
    assert b["recency_terciles"] == pytest.approx([r_lo, r_hi], abs=1e-4)
    assert b["spend_terciles"] == pytest.approx([m_lo, m_hi], abs=1e-4)
    assert (b["recency_level"], b["frequency_level"], b["spend_level"]) == (
        "lapsed",
        "repeat",
        "high",
    )
    assert b["spend_vs_median"] == pytest.approx(900 / shop["monetary"].median(), abs=1e-4)
    assert b["customers_change"] == 0.25 and b["revenue_change"] == pytest.approx(0.125)
    text = actions.explain(b)
    assert "last order a median 320 days ago (lapsed" in text
    assert "median spend 900.00 (high" in text
    assert "customers +25% and revenue +12% since the previous snapshot" in text


def test_every_rule_but_the_last_needs_a_condition_and_the_last_catches_all() -> None:
    *rules, last = actions.RULES
    assert all(r.recency or r.frequency or r.spend or r.trend for r in rules)
    assert not (last.recency or last.frequency or last.spend or last.trend)
    assert len({r.id for r in actions.RULES}) == len(actions.RULES)


def test_every_segment_of_a_snapshot_has_an_action(sqlite_engine: Engine) -> None:
    import_file(sqlite_engine, SAMPLE)
    outcome = refit(sqlite_engine)
    with sqlite_engine.connect() as conn:
        rows = conn.execute(
            select(S.segment_id, S.action, S.action_basis).where(
                S.snapshot_id == outcome.snapshot_id
            )
        ).all()
    assert len(rows) == outcome.k
    rule_advice = {r.id: r.advice for r in actions.RULES}
    for _, advice, basis in rows:
        assert advice == rule_advice[basis["rule"]]
        assert basis["trend_level"] == "unknown"  # the first snapshot: nothing to compare with
    segs = snapshots.segments(sqlite_engine, outcome.snapshot_id)
    assert len(segs) == outcome.k
