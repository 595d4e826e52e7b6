"""k for action: chosen by silhouette in 4..8 with hysteresis, segments of a usable size with
distinct names that follow the profile, previews of every k, and the admin's k setting."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select

from analytics.demo import write_demo_csv
from analytics.pipeline import KChoice, resolve_k_setting
from analytics.segmentation import (
    MIN_SEGMENT_SHARE,
    explain_selection,
    fit_kmeans,
    kmeans_seeds,
    name_contradictions,
    name_segment,
    segment_names,
)
from db import snapshots
from db.importer import import_file
from db.k_settings import effective_k_setting, get_k_setting, set_k_setting
from db.models import Snapshot, SnapshotKPreview
from tests.conftest import CDNOW, SAMPLE, command_line_env, make_settings
from tests.refitting import refit

# --- a default refit on real and demo data --------------------------------------------------


@pytest.fixture(scope="module")
def demo_5000(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo5000") / "demo.csv"
    write_demo_csv(path, 5_000, seed=21, end=date(2025, 12, 31))
    return path


def _split(source: Path, folder: Path) -> tuple[Path, Path, int]:
    """The file without every 20th customer (by id), and those customers' lines: 5% more data."""
    lines = pd.read_csv(source, dtype={"customer_id": str, "order_id": str})
    ids = sorted(lines["customer_id"].dropna().unique())
    extra = set(ids[::20])
    base, more = folder / "base.csv", folder / "more.csv"
    lines[~lines["customer_id"].isin(extra)].to_csv(base, index=False)
    lines[lines["customer_id"].isin(extra)].to_csv(more, index=False)
    return base, more, len(extra)


@pytest.mark.parametrize("data", ["online_retail", "cdnow", "demo"])
def test_default_refit_gives_4_to_8_usable_distinct_segments_that_hold_with_5_percent_more(
    data: str, sqlite_engine: Engine, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    source = {"online_retail": SAMPLE, "cdnow": CDNOW}.get(data) or request.getfixturevalue(
        "demo_5000"
    )
    base, more, extra = _split(source, tmp_path)
    import_file(sqlite_engine, base)
    first = refit(sqlite_engine)
    segs = snapshots.segments(sqlite_engine, first.snapshot_id)
    assert 4 <= first.k <= 8
    assert segs["share"].min() >= MIN_SEGMENT_SHARE
    assert segs["name"].is_unique and not segs["name"].str.contains(r"\(\d+\)").any()

    import_file(sqlite_engine, more)
    second = refit(sqlite_engine)
    assert second.k == first.k
    a = snapshots.customers(sqlite_engine, first.snapshot_id)
    b = snapshots.customers(sqlite_engine, second.snapshot_id)
    assert len(b) - len(a) == extra
    both = a.merge(b, on="customer_id", suffixes=("_a", "_b"))
    assert (both["segment_id_a"] == both["segment_id_b"]).mean() >= 0.95
    segs = snapshots.segments(sqlite_engine, second.snapshot_id)
    assert segs["share"].min() >= MIN_SEGMENT_SHARE and segs["name"].is_unique


def test_the_snapshot_records_why_its_k(sqlite_engine: Engine) -> None:
    import_file(sqlite_engine, SAMPLE)
    first = refit(sqlite_engine)
    second = refit(sqlite_engine, force=True)
    snap = snapshots.get_snapshot(sqlite_engine, second.snapshot_id)
    why = snap.k_selection
    assert why["k"] == second.k and why["range"] == [4, 8] and why["margin"] == 0.01
    assert why["previous_k"] == first.k and why["curve"] == [2, 10]
    assert why["rule"] in ("best silhouette in range", "previous k kept")
    scores = snapshots.scores(sqlite_engine, second.snapshot_id)
    assert scores["k"].tolist() == list(range(2, 11))  # the whole curve, not only the range
    assert why["silhouette"] == pytest.approx(
        scores.set_index("k").loc[second.k, "silhouette"], abs=1e-6
    )
    assert f"k = {second.k}" in explain_selection(why, why["source"])


# --- the choice, on points with a known shape ------------------------------------------------


def _blobs(
    sizes: list[int], centers: list[tuple[float, float, float]], seed: int = 0
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    parts = [rng.normal(c, 0.35, size=(n, 3)) for n, c in zip(sizes, centers, strict=True)]
    return np.vstack(parts)


FIVE = [(0, 0, 0), (4, 0, 0), (0, 4, 0), (0, 0, 4), (4, 4, 4)]


def test_best_silhouette_in_the_range_wins_whatever_the_best_outside_it() -> None:
    x = _blobs([300] * 5, FIVE)
    sel = fit_kmeans(x, (2, 4), seed=1, sample=20_000)
    curve = sel.scores.set_index("k")["silhouette"]
    assert curve.idxmax() == 5  # five blobs: k=5 is best overall ...
    assert sel.k == curve.loc[2:4].idxmax() and sel.reason["rule"] == "best silhouette in range"
    assert list(sel.scores["k"]) == list(range(2, 11))


def test_previous_k_is_kept_within_the_margin_and_dropped_beyond_it() -> None:
    x = _blobs([300] * 5, FIVE)
    curve = fit_kmeans(x, (4, 8), seed=1, sample=20_000).scores.set_index("k")["silhouette"]
    assert curve.loc[4:8].idxmax() == 5
    gap = curve[5] - curve[6]
    kept = fit_kmeans(x, (4, 8), seed=1, sample=20_000, margin=gap + 0.01, previous_k=6)
    assert (kept.k, kept.reason["rule"], kept.reason["best_k"]) == (6, "previous k kept", 5)
    dropped = fit_kmeans(x, (4, 8), seed=1, sample=20_000, margin=gap / 2, previous_k=6)
    assert (dropped.k, dropped.reason["rule"]) == (5, "best silhouette in range")
    outside = fit_kmeans(x, (4, 8), seed=1, sample=20_000, margin=1.0, previous_k=3)
    assert outside.k == 5  # a previous k outside the range is not kept


def test_a_k_with_a_segment_under_2_percent_is_not_chosen() -> None:
    # Three blobs and a handful (1%) at some distance: k=3 puts the handful with a blob, k=4
    # isolates it with a (slightly) better silhouette.
    x = _blobs([400, 400, 400, 12], [(0, 0, 0), (4, 0, 0), (0, 4, 0), (0, 0, 5)])
    curve = fit_kmeans(x, (3, 4), seed=1, sample=20_000, k=4).scores.set_index("k")
    assert curve.loc[4, "silhouette"] > curve.loc[3, "silhouette"]
    assert curve.loc[4, "smallest_share"] < MIN_SEGMENT_SHARE <= curve.loc[3, "smallest_share"]
    sel = fit_kmeans(x, (3, 4), seed=1, sample=20_000)
    assert sel.k == 3 and list(sel.reason["too_small"]) == ["4"]
    assert "k = 4 (1.0%)" in explain_selection(sel.reason)


def test_a_fixed_k_is_used_and_compared_with_the_best_in_range() -> None:
    x = _blobs([300] * 5, FIVE)
    sel = fit_kmeans(x, (4, 8), seed=1, sample=20_000, k=7)
    assert sel.k == 7 and sel.reason["rule"] == "fixed k" and sel.reason["best_k"] == 5
    assert len(np.unique(sel.labels)) == 7


def test_the_previous_centroids_start_the_previous_k() -> None:
    x = _blobs([300] * 5, FIVE)
    first = fit_kmeans(x, (4, 8), seed=1, sample=20_000)
    sel = fit_kmeans(x, (4, 8), seed=2, sample=20_000, previous_k=5, previous_centers=first.centers)
    assert sel.reason["start"] == "previous centroids"
    assert (sel.labels == first.labels).all()  # same points, same start: same clusters, same order


# --- names -------------------------------------------------------------------------------------


@pytest.fixture
def old_shop() -> pd.DataFrame:
    """Customers who mostly last ordered long ago (as in CDNOW): terciles around 330-520 days."""
    rng = np.random.default_rng(4)
    return pd.DataFrame(
        {
            "recency_days": rng.integers(200, 600, 600),
            "frequency": rng.integers(1, 7, 600),
            "monetary": rng.gamma(2.0, 100.0, 600),
        }
    )


def _profile(**values: float) -> pd.Series:
    base = {"recency_days": 100.0, "frequency": 1.0, "monetary": 200.0, "tenure_days": 400.0}
    return pd.Series({**base, "repeat_rate": 0.0, **values})


def test_long_gone_segments_are_never_called_active_recent_or_new(old_shop: pd.DataFrame) -> None:
    # Within the most recent third of this shop, but 300+ days since the last order.
    for freq, tenure in ((1.0, 300.0), (3.0, 500.0), (6.0, 500.0)):
        name = name_segment(
            _profile(recency_days=300.0, frequency=freq, tenure_days=tenure), old_shop
        )
        assert not any(w in name for w in ("active", "recent", "new")), name
    assert name_segment(_profile(recency_days=300.0, frequency=3.0), old_shop).startswith("at-risk")
    assert name_segment(_profile(recency_days=380.0, frequency=3.0), old_shop).startswith("lapsed")


def test_loyal_but_not_recent_is_at_risk() -> None:
    rng = np.random.default_rng(3)
    shop = pd.DataFrame(
        {
            "recency_days": rng.integers(0, 365, 300),
            "frequency": rng.integers(1, 6, 300),
            "monetary": rng.gamma(2.0, 200.0, 300),
        }
    )
    loyal = {"frequency": 9.0, "monetary": 5_000.0}
    assert name_segment(_profile(recency_days=10.0, **loyal), shop) == "high-value loyal"
    assert name_segment(_profile(recency_days=150.0, **loyal), shop) == "at-risk high-value loyal"


def test_segments_with_the_same_rules_get_distinct_names_from_what_separates_them(
    old_shop: pd.DataFrame,
) -> None:
    lapsed_one_timers = pd.DataFrame(
        [
            _profile(recency_days=500.0, monetary=20.0),
            _profile(recency_days=505.0, monetary=300.0),
            _profile(recency_days=40.0, frequency=3.0, monetary=400.0),
        ],
        index=[1, 2, 3],
    )
    names = segment_names(lapsed_one_timers, old_shop)
    assert names[0] == "lapsed one-time buyers, lower spend"
    assert names[1] == "lapsed one-time buyers, higher spend"
    three = pd.DataFrame(
        [_profile(recency_days=500.0, monetary=m) for m in (10.0, 100.0, 1_000.0)], index=[1, 2, 3]
    )
    assert segment_names(three, old_shop) == [
        "lapsed one-time buyers, lowest spend",
        "lapsed one-time buyers, mid spend",
        "lapsed one-time buyers, highest spend",
    ]


def test_a_previous_name_stays_while_the_profile_fits_it(old_shop: pd.DataFrame) -> None:
    profiles = pd.DataFrame([_profile(recency_days=30.0, frequency=3.0, monetary=60.0)], index=[7])
    fresh = segment_names(profiles, old_shop)
    assert fresh == ["active low-value repeat buyers"]
    # Still recent repeat buyers, spend just below the lower tercile: the earlier name stays.
    assert segment_names(profiles, old_shop, {7: "active mid-value repeat buyers"}) == [
        "active mid-value repeat buyers"
    ]
    # 300 days on, "active" is contradicted; and "(2)" suffixes of old snapshots go.
    gone = pd.DataFrame([_profile(recency_days=300.0, frequency=3.0, monetary=60.0)], index=[7])
    assert "active" not in segment_names(gone, old_shop, {7: "active mid-value repeat buyers"})[0]
    assert segment_names(profiles, old_shop, {7: "occasional buyers (2)"}) == fresh
    assert name_contradictions("active mid-value repeat buyers", gone.iloc[0], old_shop)


def test_a_kept_name_gives_way_to_a_segment_that_needs_it(old_shop: pd.DataFrame) -> None:
    profiles = pd.DataFrame(
        [_profile(recency_days=500.0, monetary=20.0), _profile(recency_days=500.0, monetary=600.0)],
        index=[1, 2],
    )
    names = segment_names(profiles, old_shop, {1: "lapsed one-time buyers, higher spend"})
    assert names == ["lapsed one-time buyers, lower spend", "lapsed one-time buyers, higher spend"]


# --- previews --------------------------------------------------------------------------------


def test_every_k_fitted_is_stored_as_a_preview(sqlite_engine: Engine) -> None:
    import_file(sqlite_engine, CDNOW)
    outcome = refit(sqlite_engine)
    p = SnapshotKPreview
    with sqlite_engine.connect() as conn:
        rows = conn.execute(
            select(p.k, p.cluster, p.name, p.customers, p.share, p.recency_days, p.monetary).where(
                p.snapshot_id == outcome.snapshot_id
            )
        ).all()
    previews = pd.DataFrame(rows, columns=["k", "cluster", "name", "customers", "share", "r", "m"])
    assert sorted(previews["k"].unique()) == list(range(2, 11))
    by_k = previews.groupby("k")
    assert (by_k.size() == by_k.size().index).all()  # k clusters for each k
    assert (by_k["customers"].sum() == outcome.customers).all()
    assert (by_k["share"].sum().round(9) == 1.0).all()
    assert by_k["name"].nunique().tolist() == list(range(2, 11))  # names distinct within each k
    chosen = previews[previews["k"] == outcome.k].sort_values("customers")
    segs = snapshots.segments(sqlite_engine, outcome.snapshot_id).sort_values("customers")
    assert chosen["customers"].tolist() == segs["customers"].tolist()
    assert chosen["r"].tolist() == segs["recency_days"].tolist()


def test_previews_scale_the_sample_to_every_customer(sqlite_engine: Engine) -> None:
    import_file(sqlite_engine, CDNOW)
    outcome = refit(sqlite_engine, silhouette_sample=500)  # 2,349 customers: k chosen on 500
    p = SnapshotKPreview
    with sqlite_engine.connect() as conn:
        rows = conn.execute(
            select(p.k, p.customers, p.share).where(p.snapshot_id == outcome.snapshot_id)
        ).all()
    previews = pd.DataFrame(rows, columns=["k", "customers", "share"])
    by_k = previews.groupby("k")
    assert (by_k["customers"].sum() == outcome.customers).all()
    assert (by_k["share"].sum().round(9) == 1.0).all()
    other = previews[previews["k"] != outcome.k]
    # Sizes from the sample's shares: within one customer of share x customers.
    assert ((other["customers"] - other["share"] * outcome.customers).abs() < 1).all()


# --- the k setting -----------------------------------------------------------------------------


def test_k_setting_precedence_command_line_admin_environment_default() -> None:
    admin_range = {"k": None, "k_min": 3, "k_max": 6, "set_by": "a@x.org", "set_at": "2026-01-01"}
    admin_k = {"k": 5, "k_min": None, "k_max": None, "set_by": "a@x.org", "set_at": None}
    assert resolve_k_setting(None, None, None) == KChoice(4, 8, None, "default")
    assert resolve_k_setting(None, None, (2, 10)) == KChoice(2, 10, None, "environment")
    assert resolve_k_setting(None, admin_range, (2, 10)) == KChoice(
        3, 6, None, "admin setting", "a@x.org", "2026-01-01"
    )
    assert resolve_k_setting(None, admin_k, (2, 10)).k == 5
    assert resolve_k_setting(None, admin_k, (2, 10)).source == "admin setting"
    assert resolve_k_setting(7, admin_k, (2, 10)) == KChoice(2, 10, 7, "command line")


def test_admin_k_setting_is_stored_with_who_and_checked(sqlite_engine: Engine) -> None:
    assert get_k_setting(sqlite_engine) is None
    stored = set_k_setting(sqlite_engine, k_min=3, k_max=6, by="admin@example.com")
    assert stored is not None
    assert (stored["k_min"], stored["k_max"], stored["k"]) == (3, 6, None)
    assert stored["set_by"] == "admin@example.com" and stored["set_at"] is not None
    for bad, message in (
        ({"k": 5, "k_min": 3, "k_max": 6}, "not both"),
        ({"k_min": 3}, "both k_min and k_max"),
        ({"k_min": 7, "k_max": 5}, "k_min (7) is above k_max (5)"),
        ({"k": 1}, "from 2 to 30 (got 1)"),
        ({"k_min": 2, "k_max": 31}, "k_max must be"),
    ):
        with pytest.raises(ValueError, match=re.escape(message)):
            set_k_setting(sqlite_engine, **bad)  # type: ignore[arg-type]
    assert get_k_setting(sqlite_engine)["k_min"] == 3  # type: ignore[index]
    set_k_setting(sqlite_engine, by="admin@example.com")  # cleared: back to env / default
    assert get_k_setting(sqlite_engine) is None


def test_effective_setting_reads_the_environment_only_when_it_sets_k(
    sqlite_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = str(sqlite_engine.url)
    assert effective_k_setting(sqlite_engine, make_settings(tmp_path, url)).source == "default"
    monkeypatch.setenv("CUSTSEG_K_MAX", "6")
    from_env = effective_k_setting(sqlite_engine, make_settings(tmp_path, url))
    assert (from_env.k_min, from_env.k_max, from_env.source) == (4, 6, "environment")
    set_k_setting(sqlite_engine, k=5, by="admin@example.com")
    chosen = effective_k_setting(sqlite_engine, make_settings(tmp_path, url))
    assert (chosen.k, chosen.source, chosen.set_by) == (5, "admin setting", "admin@example.com")
    assert effective_k_setting(sqlite_engine, make_settings(tmp_path, url), 3).k == 3


def test_custseg_refit_uses_the_admin_setting_unless_k_is_given(
    sqlite_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from config import settings as settings_module
    from webapp.cli import main

    command_line_env(monkeypatch, str(sqlite_engine.url), tmp_path / "instance")
    import_file(sqlite_engine, SAMPLE)
    set_k_setting(sqlite_engine, k=5, by="admin@example.com")
    runner = CliRunner()
    try:
        assert runner.invoke(main, ["refit", "-q"]).exit_code == 0
        assert runner.invoke(main, ["refit", "-q", "--k", "6"]).exit_code == 0
    finally:
        settings_module.get_settings.cache_clear()
    with sqlite_engine.connect() as conn:
        runs = conn.execute(select(Snapshot.k, Snapshot.settings).order_by(Snapshot.id)).all()
    assert [(k, s["k_source"]) for k, s in runs] == [(5, "admin setting"), (6, "command line")]


def test_kmeans_seeds_are_the_starts_of_the_local_engines_fit() -> None:
    """Lloyd's iterations from `kmeans_seeds` (what the Spark engine starts MLlib from) give
    scikit-learn's KMeans(n_init=4, random_state=seed): the same best start and clusters, on
    rugged data where starts matter (three overlapping blobs, k = 2..10)."""
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(5)
    x = np.vstack([rng.normal(c, 0.9, size=(70, 3)) for c in ((0, 0, 0), (2, 1, 0), (0, 2, 2))])
    for k in range(2, 11):
        want = KMeans(n_clusters=k, random_state=42, n_init=4).fit(x)
        fits = [KMeans(n_clusters=k, init=s, n_init=1).fit(x) for s in kmeans_seeds(x, k, 42)]
        best = min(fits, key=lambda m: m.inertia_)
        assert best.inertia_ == pytest.approx(want.inertia_, rel=1e-9), k
        assert (best.labels_ == want.labels_).all(), k
