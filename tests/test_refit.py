"""The analytics engine: planted segments recovered, determinism, identity, snapshots, locks."""

from __future__ import annotations

import threading
from datetime import date

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score, silhouette_score
from sqlalchemy import Engine, func, select

from analytics.demo import generate, write_demo_csv
from analytics.exports import Filters
from analytics.segmentation import ONE_TIME_MAX_REPEAT_RATE, name_segment, silhouette, silhouettes
from db import snapshots
from db.importer import import_file
from db.models import Snapshot, SnapshotCustomer
from db.refit import RefitFailed, RefitRejected, RefitSkipped, refit_lock, snapshots_to_keep
from tests.conftest import SAMPLE, export_frame, fail_at_call
from tests.refitting import refit


def test_fast_silhouette_equals_sklearn() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1500, 3))
    labels = rng.integers(0, 4, 1500)
    labels[0] = 7  # a singleton cluster
    assert silhouette(x, labels) == pytest.approx(silhouette_score(x, labels), abs=1e-5)
    others = [rng.integers(0, k, 1500) for k in (2, 5, 9)]
    for labelling, score in zip(others, silhouettes(x, others), strict=True):
        assert score == pytest.approx(silhouette_score(x, labelling), abs=1e-5)


@pytest.fixture(scope="module")
def demo_shop(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("demo") / "demo.csv"
    write_demo_csv(path, 4_000, seed=11, end=date(2025, 12, 31))
    planted = pd.read_csv(path.with_name("demo.segments.csv"))
    return path, planted


def test_planted_segments_are_recovered(engine: Engine, demo_shop) -> None:  # type: ignore[no-untyped-def]
    path, planted = demo_shop
    import_file(engine, path)
    outcome = refit(engine, k_max=8)
    assert outcome.k == 5
    found = snapshots.customers(engine, outcome.snapshot_id).merge(planted, on="customer_id")
    assert len(found) == len(planted)
    assert adjusted_rand_score(found["planted_segment"], found["segment_id"]) >= 0.9


def test_same_data_and_settings_give_identical_snapshots(sqlite_engine: Engine) -> None:
    import_file(sqlite_engine, SAMPLE)
    a = refit(sqlite_engine, k_max=6)
    b = refit(sqlite_engine, k_max=6, force=True)  # the same data: on purpose
    ca = snapshots.customers(sqlite_engine, a.snapshot_id).sort_values("customer_id")
    cb = snapshots.customers(sqlite_engine, b.snapshot_id).sort_values("customer_id")
    assert a.k == b.k and a.silhouette == b.silhouette
    assert ca["segment_id"].tolist() == cb["segment_id"].tolist()
    sa = snapshots.segments(sqlite_engine, a.snapshot_id)
    sb = snapshots.segments(sqlite_engine, b.snapshot_id)
    assert sa[["segment_id", "name", "customers"]].equals(sb[["segment_id", "name", "customers"]])


def test_five_percent_more_data_keeps_segment_ids(sqlite_engine: Engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    lines, _ = generate(3_000, seed=5)
    customers = sorted(lines["customer_id"].unique())
    extra = set(customers[: int(len(customers) * 0.05)])
    base = lines[~lines["customer_id"].isin(extra)]
    more = lines[lines["customer_id"].isin(extra)]
    base.to_csv(tmp_path / "base.csv", index=False, date_format="%Y-%m-%dT%H:%M:%S")
    more.to_csv(tmp_path / "more.csv", index=False, date_format="%Y-%m-%dT%H:%M:%S")
    import_file(sqlite_engine, tmp_path / "base.csv")
    first = refit(sqlite_engine, k_max=8)
    import_file(sqlite_engine, tmp_path / "more.csv")
    second = refit(sqlite_engine, k_max=8)
    a = snapshots.customers(sqlite_engine, first.snapshot_id)
    b = snapshots.customers(sqlite_engine, second.snapshot_id)
    both = a.merge(b, on="customer_id", suffixes=("_a", "_b"))
    assert (both["segment_id_a"] == both["segment_id_b"]).mean() >= 0.95
    moved = snapshots.migration_table(sqlite_engine, second.snapshot_id)
    assert moved.loc[moved["from_segment"] == -1, "customers"].sum() == len(extra)


def test_sample_snapshot_figures_match_the_known_figures(engine: Engine) -> None:
    import_file(engine, SAMPLE)
    outcome = refit(engine, k_max=5)
    kpis, prov = export_frame(engine, "kpis", Filters())
    row = kpis.iloc[0]
    assert (row["customers"], row["orders"], row["returns"]) == (297, 1286, 275)
    assert row["gross_revenue"] == pytest.approx(762_694.99, abs=0.005)
    assert row["net_revenue"] == pytest.approx(734_776.06, abs=0.005)
    assert row["aov"] == pytest.approx(593.0754, abs=1e-4)
    assert row["repeat_rate"] == pytest.approx(0.646465, abs=1e-6)
    assert prov["snapshot_id"] == outcome.snapshot_id and str(prov["as_of"]) == "2011-12-09"
    ret, _ = export_frame(engine, "retention", Filters())
    dec = ret[ret["cohort"].astype(str) == "2010-12-01"].set_index("months_since_first")
    assert dec.loc[0, "cohort_size"] == 56
    assert dec.loc[1, "retention"] == pytest.approx(0.357143, abs=1e-6)
    segs, _ = export_frame(engine, "segments", Filters())
    assert segs["customers"].sum() == 297
    assert segs["gross_revenue"].sum() == pytest.approx(762_694.99, abs=0.01)
    assert segs["share"].sum() == pytest.approx(1.0)
    sales, _ = export_frame(engine, "sales", Filters(granularity="month"))
    assert sales["orders"].sum() == 1286
    assert sales["net_revenue"].sum() == pytest.approx(734_776.06, abs=0.01)
    members, _ = export_frame(engine, "members", Filters())
    assert len(members) == 297
    # No segment called "one-time" holds many repeat buyers (k=2 here: 44% of the low segment).
    for _, seg in segs.iterrows():
        if "one-time" in seg["name"]:
            assert seg["repeat_rate"] <= ONE_TIME_MAX_REPEAT_RATE, seg["name"]


def test_names_follow_the_profile() -> None:
    rng = np.random.default_rng(3)
    population = pd.DataFrame(
        {"recency_days": rng.integers(0, 365, 300), "monetary": rng.gamma(2.0, 200.0, 300)}
    )
    population["frequency"] = rng.integers(1, 6, 300)

    def name(**profile: float) -> str:
        base = {"recency_days": 180.0, "frequency": 1.0, "monetary": 300.0, "tenure_days": 400.0}
        return name_segment(pd.Series({**base, **profile}), population)

    assert name(repeat_rate=0.05) == "one-time buyers"
    assert name(repeat_rate=0.44) == "occasional buyers"
    assert name(repeat_rate=0.05, recency_days=360.0) == "lapsed one-time buyers"
    assert name(repeat_rate=0.44, recency_days=360.0) == "lapsed occasional buyers"
    assert name(repeat_rate=0.0, recency_days=5.0, tenure_days=5.0) == "new customers"
    assert (
        name(frequency=3.0, recency_days=5.0, monetary=5_000.0) == "active high-value repeat buyers"
    )


def test_hand_built_cases(sqlite_engine: Engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    rows = [
        # customer, order, ordered_at, amount
        ("a", "1", "2024-01-31T23:59:00", 100.0),  # cohort 2024-01
        ("a", "2", "2024-02-01T00:00:00", 50.0),  # month 1
        ("a", "3", "2024-02-10T00:00:00", -20.0),  # a return: net only
        ("b", "4", "2024-02-15T10:00:00", 30.0),  # cohort 2024-02, one order
        ("c", "5", "2024-03-31T12:00:00", 10.0),  # cohort 2024-03, on the end day
        ("c", "6", "2024-03-31T13:00:00", 5.0),
        ("", "7", "2024-03-01T00:00:00", 999.0),  # no customer id: outside every metric
        ("d", "8", "2024-01-05T00:00:00", -15.0),  # only a return: not a customer
    ]
    path = tmp_path / "hand.csv"
    pd.DataFrame(rows, columns=["customer_id", "order_id", "ordered_at", "amount"]).to_csv(
        path, index=False
    )
    import_file(sqlite_engine, path)
    refit(sqlite_engine, k=2)
    kpis, _ = export_frame(sqlite_engine, "kpis", Filters(date(2024, 2, 1), date(2024, 3, 31)))
    r = kpis.iloc[0]
    assert (r["customers"], r["orders"], r["returns"]) == (3, 4, 1)
    assert r["gross_revenue"] == 95.0 and r["net_revenue"] == 75.0
    assert r["repeat_rate"] == pytest.approx(1 / 3)
    ret, _ = export_frame(sqlite_engine, "retention", Filters(date(2024, 2, 1), date(2024, 3, 31)))
    cohorts = sorted(set(ret["cohort"].astype(str)))
    assert cohorts == ["2024-02-01", "2024-03-01"]  # the filter selects cohorts
    ret_all, _ = export_frame(sqlite_engine, "retention", Filters(end=date(2024, 2, 29)))
    jan = ret_all[ret_all["cohort"].astype(str) == "2024-01-01"].set_index("months_since_first")
    assert jan.loc[1, "retention"] == 1.0 and 2 not in jan.index  # counted up to the end month
    dq = snapshots.get_snapshot(sqlite_engine).data_quality
    assert dq["lines_without_customer_id"] == 1 and dq["revenue_without_customer_id"] == 999.0
    assert dq["customers_left_out"]["only_returns_or_zero_orders"] == 1


def test_failure_mid_write_keeps_the_published_snapshot(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import db.refit as refit_mod

    import_file(engine, SAMPLE)
    good = refit(engine, k=3)
    fail_at_call(monkeypatch, refit_mod, "bulk_insert", 3, OSError("disk full"))
    with pytest.raises(RefitFailed, match="disk full"):
        refit(engine, k=4)
    assert snapshots.get_snapshot(engine).id == good.snapshot_id
    with engine.connect() as conn:
        rows = conn.execute(select(Snapshot.id, Snapshot.status).order_by(Snapshot.id)).all()
        n_customers = conn.execute(select(func.count()).select_from(SnapshotCustomer)).scalar_one()
    assert [tuple(r) for r in rows] == [
        (good.snapshot_id, "published"),
        (good.snapshot_id + 1, "failed"),
    ]
    assert n_customers == 297


def test_two_concurrent_refits_one_skips(engine: Engine) -> None:
    import_file(engine, SAMPLE)
    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        with refit_lock(engine):
            entered.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    assert entered.wait(10)
    try:
        with pytest.raises(RefitSkipped):
            refit(engine, k=2)
    finally:
        release.set()
        t.join()
    assert refit(engine, k=2).snapshot_id > 0


def _kept(engine: Engine) -> tuple[list[int], int]:
    """The snapshots left, and the customer rows of snapshots that are gone (none, ever)."""
    with engine.connect() as conn:
        left = list(conn.execute(select(Snapshot.id).order_by(Snapshot.id)).scalars())
        orphans = conn.execute(
            select(func.count())
            .select_from(SnapshotCustomer)
            .where(SnapshotCustomer.snapshot_id.not_in(left))
        ).scalar_one()
    return left, orphans


def test_only_the_latest_snapshots_are_kept(sqlite_engine: Engine) -> None:
    import_file(sqlite_engine, SAMPLE)
    ids = [refit(sqlite_engine, k=2, keep=2, force=True).snapshot_id for _ in range(4)]
    assert _kept(sqlite_engine) == (ids[-2:], 0)


# --- the keep policy: the latest N and the last snapshot of each month -------------------------


def test_the_keep_policy_keeps_the_latest_and_the_last_of_each_month() -> None:
    d = date.fromisoformat
    published = [
        (1, d("2024-11-30")),  # the 15th month counting back from January 2026
        (2, d("2024-12-31")),  # the 14th month
        (3, d("2025-06-10")),
        (4, d("2025-06-20")),  # last of June
        (5, d("2025-06-20")),  # same day, newer: last of June
        (6, None),  # no as-of date: only the latest N keep it
        (7, d("2025-12-01")),
        (8, d("2026-01-15")),  # last of January 2026 (the newest month)
        (9, d("2026-01-10")),  # newest id, earlier day
    ]
    assert snapshots_to_keep(published, keep=2, monthly=12) == {5, 7, 8, 9}
    assert snapshots_to_keep(published, keep=2, monthly=14) == {2, 5, 7, 8, 9}
    assert snapshots_to_keep(published, keep=3, monthly=0) == {7, 8, 9}
    assert snapshots_to_keep(published, keep=1, monthly=1) == {8, 9}
    assert snapshots_to_keep([], keep=5, monthly=12) == set()


def test_publishing_keeps_the_monthly_snapshots(sqlite_engine: Engine) -> None:
    import_file(sqlite_engine, SAMPLE)
    as_of = ["2011-06-15", "2011-06-30", "2011-07-31", "2011-08-15", "2011-08-31", "2011-09-30"]
    ids = [
        refit(sqlite_engine, k=2, keep=2, keep_monthly=3, as_of=date.fromisoformat(day)).snapshot_id
        for day in as_of
    ]
    # The latest two (Aug 31, Sep 30) and the last of July; June is beyond three months, and
    # Aug 15 is not the last of its month. Keeping the latest 2 only would have lost July.
    assert _kept(sqlite_engine) == ([ids[2], ids[4], ids[5]], 0)


def test_refit_without_data_fails_clearly_and_records_nothing(sqlite_engine: Engine) -> None:
    with pytest.raises(RefitRejected, match="import a file first"):
        refit(sqlite_engine)
    with sqlite_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Snapshot)).scalar_one() == 0


def test_renamed_segment_keeps_its_name_in_later_snapshots(sqlite_engine: Engine) -> None:
    from db.models import SegmentLabel
    from db.session import session_scope

    import_file(sqlite_engine, SAMPLE)
    first = refit(sqlite_engine, k=3)
    sid = first.segments[0]["segment_id"]
    with session_scope(sqlite_engine) as db:
        db.add(SegmentLabel(segment_id=sid, name="VIPs"))
    second = refit(sqlite_engine, k=3, force=True)  # a rename is not a change of data
    names = snapshots.segments(sqlite_engine, second.snapshot_id).set_index("segment_id")["name"]
    assert names[sid] == "VIPs"


def test_a_rename_never_lands_on_a_new_segment_with_a_reused_id(sqlite_engine: Engine) -> None:
    from db.models import SegmentLabel
    from db.session import session_scope

    import_file(sqlite_engine, SAMPLE)
    with session_scope(sqlite_engine) as db:  # a rename whose snapshots are all gone
        db.add(SegmentLabel(segment_id=1, name="old VIPs"))
    outcome = refit(sqlite_engine, k=3)
    names = snapshots.segments(sqlite_engine, outcome.snapshot_id)
    assert sorted(names["segment_id"]) == [2, 3, 4]
    assert "old VIPs" not in set(names["name"])
