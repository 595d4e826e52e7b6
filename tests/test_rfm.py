"""RFM scores and lifecycle stages: equal to an independent computation on the Online Retail
sample, ties scored alike, every score triple staged, and the frames pages will read."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, select

from analytics import rfm
from db import snapshots
from db.importer import import_file
from db.models import SnapshotStage, SnapshotStageMigration
from tests.conftest import SAMPLE
from tests.refitting import refit


def _score_by_hand(values: list[float], higher_is_better: bool) -> list[int]:
    """Quintile of the position where each value's tie group starts, counted one by one."""
    n = len(values)
    out = []
    for v in values:
        worse = sum(1 for w in values if (w < v if higher_is_better else w > v))
        share = worse / n
        out.append(1 + sum(share >= edge for edge in (0.2, 0.4, 0.6, 0.8)))
    return out


def _stage_by_hand(r: int, f: int, m: int) -> str:
    """The stage map of docs/FEATURES.md, written out as conditions."""
    if r <= 2:
        if f <= 2:
            return "Lost" if m <= 2 else "Hibernating"
        return "At risk" if f <= 4 else "Can't lose them"
    if r == 3:
        if f <= 2:
            return "About to sleep"
        return "Need attention" if f == 3 else "Loyal"
    if f >= 4:
        return "Champions" if r == 5 else "Loyal"
    if f >= 2:
        return "Potential loyalists"
    return "New customers" if r == 5 else "Promising"


def test_scores_and_stages_of_the_sample_equal_an_independent_computation(
    sqlite_engine: Engine,
) -> None:
    import_file(sqlite_engine, SAMPLE)
    outcome = refit(sqlite_engine)
    got = snapshots.customers(sqlite_engine, outcome.snapshot_id)
    assert len(got) == 297
    r = _score_by_hand(got["recency_days"].tolist(), higher_is_better=False)
    f = _score_by_hand(got["frequency"].tolist(), higher_is_better=True)
    m = _score_by_hand(got["monetary"].tolist(), higher_is_better=True)
    assert got["r_score"].tolist() == r
    assert got["f_score"].tolist() == f
    assert got["m_score"].tolist() == m
    stages = [_stage_by_hand(*t) for t in zip(r, f, m, strict=True)]
    assert got["lifecycle_stage"].tolist() == stages
    # The sample's ties: every order count has one F score: 105 customers with one order are
    # F=1, 62 with two F=2 (they start at 35%), 25 with three F=3, four or five orders F=4.
    f_groups = got.groupby("f_score")["frequency"].agg(["min", "max", "size"])
    assert f_groups.values.tolist() == [
        [1, 1, 105],
        [2, 2, 62],
        [3, 3, 25],
        [4, 5, 52],
        [6, 124, 53],
    ]
    # Monetary has no ties here: 297 customers in quintiles of 59 or 60.
    assert sorted(got["m_score"].value_counts().tolist()) == [59, 59, 59, 60, 60]


def test_equal_values_score_alike_and_distinct_values_fill_quintiles() -> None:
    assert rfm.quintile_scores(np.arange(10)).tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert rfm.quintile_scores(np.arange(10), higher_is_better=False).tolist() == [
        5, 5, 4, 4, 3, 3, 2, 2, 1, 1
    ]  # fmt: skip
    # Six of ten share the lowest value: all score 1; the next value starts at 60% (score 4).
    assert rfm.quintile_scores([1, 1, 1, 1, 1, 1, 2, 2, 3, 9]).tolist() == [1] * 6 + [4, 4, 5, 5]
    # Order does not matter: the same value, the same score wherever it is.
    shuffled = rfm.quintile_scores([9, 1, 2, 1, 1, 3, 1, 2, 1, 1]).tolist()
    assert shuffled == [5, 1, 4, 1, 1, 5, 1, 4, 1, 1]


def test_every_score_triple_has_exactly_the_mapped_stage() -> None:
    for r in range(1, 6):
        for f in range(1, 6):
            for m in range(1, 6):
                got = rfm.stage_names(np.array([r]), np.array([f]), np.array([m]))[0]
                assert got == _stage_by_hand(r, f, m), (r, f, m)
    assert set(rfm.STAGE_TABLE.ravel()) == set(range(len(rfm.STAGES)))  # every stage reachable


def _customers() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d", "e"],
            "segment_id": [1, 1, 2, 2, 2],
            "lifecycle_stage": ["Champions", "Champions", "Lost", "Lost", "At risk"],
            "recency_days": [3, 5, 400, 380, 200],
            "frequency": [6, 2, 1, 1, 3],
            "monetary": [600.0, 200.0, 10.0, 30.0, 90.0],
        }
    )


def test_lifecycle_gives_one_row_per_stage() -> None:
    frame = rfm.lifecycle(_customers())
    assert frame["stage"].tolist() == list(rfm.STAGES)
    assert list(frame.columns) == [
        "stage",
        "customers",
        "share",
        "gross_revenue",
        "aov",
        "repeat_rate",
    ]
    champ = frame.set_index("stage").loc["Champions"]
    assert (champ["customers"], champ["share"], champ["gross_revenue"]) == (2, 0.4, 800.0)
    assert champ["aov"] == pytest.approx(100.0) and champ["repeat_rate"] == 1.0
    lost = frame.set_index("stage").loc["Lost"]
    assert (lost["customers"], lost["aov"], lost["repeat_rate"]) == (2, 20.0, 0.0)
    empty = frame.set_index("stage").loc["Promising"]
    assert empty["customers"] == 0 and np.isnan(empty["aov"]) and np.isnan(empty["repeat_rate"])
    assert frame["customers"].sum() == 5 and frame["share"].sum() == pytest.approx(1.0)


def test_cross_table_counts_clusters_by_stage() -> None:
    table = rfm.cross_table(_customers())
    assert table[["segment_id", "stage", "customers"]].values.tolist() == [
        [1, "Champions", 2],
        [2, "At risk", 1],
        [2, "Lost", 2],
    ]
    assert table["share_of_segment"].tolist() == pytest.approx([1.0, 1 / 3, 2 / 3])
    assert table["gross_revenue"].tolist() == [800.0, 90.0, 40.0]


def test_stage_migration_counts_moves_new_and_gone() -> None:
    before = _customers()[["customer_id", "lifecycle_stage", "monetary"]]
    after = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "f"],
            "lifecycle_stage": ["Champions", "Loyal", "Lost", "New customers"],
            "monetary": [650.0, 220.0, 10.0, 15.0],
        }
    )
    moves = rfm.stage_migration(before, after).set_index(["from_stage", "to_stage"])
    assert moves.loc[("Champions", "Champions"), "customers"] == 1
    assert moves.loc[("Champions", "Loyal"), "gross_revenue"] == 220.0
    assert moves.loc[(rfm.NEW, "New customers"), "customers"] == 1
    assert moves.loc[("Lost", rfm.GONE), "customers"] == 1  # d
    assert moves.loc[("At risk", rfm.GONE), "gross_revenue"] == 90.0  # e: its last spend
    assert moves["customers"].sum() == 6
    unstaged = before.assign(lifecycle_stage=None)
    assert rfm.stage_migration(unstaged, after).empty  # a snapshot from before stages


def test_refit_stores_stages_with_actions_and_their_migration(sqlite_engine: Engine) -> None:
    from datetime import date

    import_file(sqlite_engine, SAMPLE)
    first = refit(sqlite_engine, as_of=date(2011, 9, 30))
    second = refit(sqlite_engine)
    s = SnapshotStage
    with sqlite_engine.connect() as conn:
        stages = pd.DataFrame(
            conn.execute(
                select(s.stage, s.customers, s.share, s.action, s.action_basis).where(
                    s.snapshot_id == second.snapshot_id
                )
            ).all(),
            columns=["stage", "customers", "share", "action", "basis"],
        )
        m = SnapshotStageMigration
        moved = pd.DataFrame(
            conn.execute(
                select(m.from_snapshot_id, m.from_stage, m.to_stage, m.customers).where(
                    m.snapshot_id == second.snapshot_id
                )
            ).all(),
            columns=["from_snapshot_id", "from_stage", "to_stage", "customers"],
        )
    assert sorted(stages["stage"]) == sorted(rfm.STAGES)
    assert stages["customers"].sum() == 297 and stages["share"].sum() == pytest.approx(1.0)
    present = stages[stages["customers"] > 0]
    assert present["action"].notna().all()
    assert all(b["rule"] and "recency_days" in b for b in present["basis"])
    assert stages.loc[stages["customers"] == 0, "action"].isna().all()
    a = snapshots.customers(sqlite_engine, first.snapshot_id)
    b = snapshots.customers(sqlite_engine, second.snapshot_id)
    assert set(moved["from_snapshot_id"]) == {first.snapshot_id}
    assert moved["customers"].sum() == len(set(a["customer_id"]) | set(b["customer_id"]))
    assert moved.loc[moved["from_stage"] == rfm.NEW, "customers"].sum() == len(b) - len(a)
