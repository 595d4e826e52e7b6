"""The lifecycle exports (lifecycle, stage_matrix, k_previews, stage_migration), the members
export's scores and stages, the segments export's actions and the stage filter, on the Online
Retail sample (the `dashboard` fixture: two snapshots, k = 3), each against a computation of its
own from the snapshot tables read with plain SQL."""

from __future__ import annotations

import io
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, delete, text

from analytics import rfm
from analytics.actions import explain
from analytics.exports import FilterError, Filters
from analytics.exports.spec import parse_stages, parse_view, view_from_params
from db.models import SnapshotStageMigration
from tests.conftest import command_line_env, export_frame


def sql(engine: Engine, query: str, **params: Any) -> pd.DataFrame:
    with engine.connect() as conn:
        result = conn.execute(text(query), params)
        return pd.DataFrame(result.all(), columns=list(result.keys()))


def customers_of(engine: Engine, snapshot_id: int) -> pd.DataFrame:
    return sql(
        engine,
        "SELECT customer_id, segment_id, recency_days, frequency, monetary, r_score, f_score, "
        "m_score, lifecycle_stage FROM snapshot_customers WHERE snapshot_id = :s",
        s=snapshot_id,
    )


def by_hand(customers: pd.DataFrame) -> pd.DataFrame:
    """Per stage: customers, share, revenue, AOV, repeat rate and medians, with plain pandas."""
    rows = []
    for stage, part in customers.groupby("lifecycle_stage"):
        rows.append(
            {
                "stage": stage,
                "customers": len(part),
                "share": len(part) / len(customers),
                "gross_revenue": part["monetary"].sum(),
                "aov": part["monetary"].sum() / part["frequency"].sum(),
                "repeat_rate": (part["frequency"] >= 2).mean(),
                "revenue_share": part["monetary"].sum() / customers["monetary"].sum(),
                "recency_days": part["recency_days"].median(),
                "frequency": part["frequency"].median(),
                "monetary": part["monetary"].median(),
            }
        )
    return pd.DataFrame(rows).set_index("stage")


def test_lifecycle_has_every_stage_with_the_figures_of_its_customers(
    dashboard: Any, sqlite_engine: Engine
) -> None:
    frame, provenance = export_frame(sqlite_engine, "lifecycle")
    assert list(frame["stage"]) == list(rfm.STAGES) and provenance["rows"] == 11
    expected = by_hand(customers_of(sqlite_engine, 2))
    got = frame.set_index("stage")
    assert got["customers"].sum() == 297
    present = got[got["customers"] > 0]
    assert set(present.index) == set(expected.index)
    for column in expected.columns:
        assert present[column].to_numpy() == pytest.approx(
            expected.loc[present.index, column].to_numpy(), abs=0.01
        ), column
    stored = sql(
        sqlite_engine,
        "SELECT stage, action, action_basis FROM snapshot_stages WHERE snapshot_id = 2",
    ).set_index("stage")
    for stage in present.index:
        basis = pd.read_json(io.StringIO(stored.loc[stage, "action_basis"]), typ="series")
        assert got.loc[stage, "action"] == stored.loc[stage, "action"]
        assert got.loc[stage, "action_rule"] == basis["rule"]
        assert got.loc[stage, "action_why"] == explain(basis.to_dict())
    empty = got[got["customers"] == 0]
    assert empty["aov"].isna().all() and empty["action"].isna().all()


def test_lifecycle_of_chosen_segments_and_stages(dashboard: Any, sqlite_engine: Engine) -> None:
    customers = customers_of(sqlite_engine, 2)
    top = int(customers["segment_id"].value_counts().index[0])
    frame, _ = export_frame(sqlite_engine, "lifecycle", Filters(segments=(top,)))
    mine = customers[customers["segment_id"] == top]
    expected = by_hand(mine)
    got = frame.set_index("stage")
    assert got["customers"].sum() == len(mine)
    assert got.loc[expected.index, "customers"].tolist() == expected["customers"].tolist()
    assert got.loc[expected.index, "share"].to_numpy() == pytest.approx(
        expected["share"].to_numpy(), abs=1e-6
    )
    assert got.loc[expected.index, "monetary"].to_numpy() == pytest.approx(
        expected["monetary"].to_numpy(), abs=0.01
    )
    # The advice stays the stage's (from all its customers).
    whole, _ = export_frame(sqlite_engine, "lifecycle")
    assert list(frame["action"].fillna("")) == list(whole["action"].fillna(""))
    two, provenance = export_frame(sqlite_engine, "lifecycle", Filters(stages=("Lost", "Loyal")))
    assert list(two["stage"]) == ["Loyal", "Lost"]
    assert provenance["filter_stages"] == "Loyal,Lost"


def test_stage_matrix_crosses_segments_and_stages(dashboard: Any, sqlite_engine: Engine) -> None:
    customers = customers_of(sqlite_engine, 2)
    frame, _ = export_frame(sqlite_engine, "stage_matrix")
    counts = pd.crosstab(customers["segment_id"], customers["lifecycle_stage"])
    revenue = customers.pivot_table(
        index="segment_id", columns="lifecycle_stage", values="monetary", aggfunc="sum"
    )
    assert frame["customers"].sum() == 297 and (frame["customers"] > 0).all()
    assert len(frame) == int((counts > 0).to_numpy().sum())
    for row in frame.itertuples():
        assert row.customers == counts.loc[row.segment_id, row.stage]
        assert row.gross_revenue == pytest.approx(revenue.loc[row.segment_id, row.stage], abs=0.01)
        assert row.share_of_segment == pytest.approx(
            counts.loc[row.segment_id, row.stage] / counts.loc[row.segment_id].sum(), abs=1e-6
        )
        assert row.revenue_share_of_segment == pytest.approx(
            revenue.loc[row.segment_id, row.stage] / revenue.loc[row.segment_id].sum(), abs=1e-6
        )
    one = int(frame["segment_id"].iloc[0])
    part, _ = export_frame(
        sqlite_engine, "stage_matrix", Filters(segments=(one,), stages=("Lost",))
    )
    assert set(part["segment_id"]) <= {one} and set(part["stage"]) <= {"Lost"}


def test_k_previews_hold_every_k_and_the_published_segments(
    dashboard: Any, sqlite_engine: Engine
) -> None:
    frame, _ = export_frame(sqlite_engine, "k_previews")
    stored = sql(
        sqlite_engine,
        "SELECT k, cluster, name, customers FROM snapshot_k_previews WHERE snapshot_id = 2 "
        "ORDER BY k, cluster",
    )
    assert frame[["k", "cluster", "name", "customers"]].values.tolist() == stored.values.tolist()
    assert sorted(frame["k"].unique()) == list(range(2, 11))
    # Every k splits all 297 customers; the cluster count is k.
    per_k = frame.groupby("k").agg(customers=("customers", "sum"), clusters=("cluster", "max"))
    assert (per_k["customers"] == 297).all() and (per_k["clusters"] == per_k.index).all()
    chosen = frame[frame["chosen"]]
    assert set(chosen["k"]) == {3}
    segments = sql(
        sqlite_engine, "SELECT name, customers FROM snapshot_segments WHERE snapshot_id = 2"
    )
    assert sorted(zip(chosen["name"], chosen["customers"], strict=True)) == sorted(
        zip(segments["name"], segments["customers"], strict=True)
    )


def stage_moves_by_hand(engine: Engine, first: int, second: int) -> pd.DataFrame:
    a, b = customers_of(engine, first), customers_of(engine, second)
    merged = a.merge(b, on="customer_id", how="outer", suffixes=("_a", "_b"))
    merged["from_stage"] = merged["lifecycle_stage_a"].fillna("(new)")
    merged["to_stage"] = merged["lifecycle_stage_b"].fillna("(gone)")
    merged["revenue"] = merged["monetary_b"].fillna(merged["monetary_a"])
    return merged.groupby(["from_stage", "to_stage"]).agg(
        customers=("customer_id", "size"), revenue=("revenue", "sum")
    )


def test_stage_migration_equals_the_moves_of_each_customer(
    dashboard: Any, sqlite_engine: Engine
) -> None:
    expected = stage_moves_by_hand(sqlite_engine, 1, 2)
    frame, provenance = export_frame(sqlite_engine, "stage_migration")
    assert provenance["from_snapshot_id"] == 1
    got = frame.set_index(["from_stage", "to_stage"])
    assert sorted(got.index) == sorted(expected.index)
    assert got.loc[expected.index, "customers"].tolist() == expected["customers"].tolist()
    assert got.loc[expected.index, "gross_revenue"].to_numpy() == pytest.approx(
        expected["revenue"].to_numpy(), abs=0.01
    )
    assert frame["from_stage"].iloc[0] == "(new)"  # (new) first, then the map's order
    # Without the stored rows the export computes the same from the two snapshots' customers.
    with sqlite_engine.begin() as conn:
        conn.execute(delete(SnapshotStageMigration))
    again, _ = export_frame(sqlite_engine, "stage_migration", Filters(compare_to=1))
    pd.testing.assert_frame_equal(again, frame)
    lost, _ = export_frame(sqlite_engine, "stage_migration", Filters(stages=("Lost",)))
    assert len(lost) and ((lost["from_stage"] == "Lost") | (lost["to_stage"] == "Lost")).all()
    with pytest.raises(FilterError, match="all customers"):
        export_frame(sqlite_engine, "stage_migration", Filters(segments=(1,)))
    first, _ = export_frame(sqlite_engine, "stage_migration", snapshot_id=1)
    assert first.empty  # nothing to compare the first snapshot with


def test_members_carry_scores_and_stage_and_filter_by_stage(
    dashboard: Any, sqlite_engine: Engine
) -> None:
    customers = customers_of(sqlite_engine, 2).sort_values("customer_id")
    frame, _ = export_frame(sqlite_engine, "members", role="analyst")
    at = list(frame.columns).index("r_score")
    assert list(frame.columns[at : at + 4]) == ["r_score", "f_score", "m_score", "lifecycle_stage"]
    cols = ["customer_id", "r_score", "f_score", "m_score", "lifecycle_stage"]
    assert frame[cols].astype(object).values.tolist() == customers[cols].values.tolist()
    wanted = ("At risk", "Lost")
    chosen, provenance = export_frame(
        sqlite_engine, "members", Filters(stages=wanted), role="analyst"
    )
    expected = customers[customers["lifecycle_stage"].isin(wanted)]
    assert list(chosen["customer_id"]) == list(expected["customer_id"])
    assert provenance["filter_stages"] == "At risk,Lost"


def test_segments_carry_their_action_and_why(dashboard: Any, sqlite_engine: Engine) -> None:
    frame, _ = export_frame(sqlite_engine, "segments")
    stored = sql(
        sqlite_engine,
        "SELECT segment_id, action, action_basis FROM snapshot_segments WHERE snapshot_id = 2",
    ).set_index("segment_id")
    for row in frame.itertuples():
        basis = pd.read_json(io.StringIO(stored.loc[row.segment_id, "action_basis"]), typ="series")
        assert row.action == stored.loc[row.segment_id, "action"]
        assert row.action_why == explain(basis.to_dict())
        assert "median" in row.action_why


def test_the_stage_filter_is_checked_everywhere() -> None:
    assert parse_stages(None) == () and parse_stages("Lost") == ("Lost",)
    assert parse_stages(["Lost", "Champions", "Lost"]) == ("Champions", "Lost")
    for bad in (["Champs"], [1], "Lost'; --", {"$ne": 1}, ["Lost"] * 12):
        with pytest.raises(FilterError, match="stage filter is not valid"):
            parse_stages(bad)
    with pytest.raises(FilterError, match="'Champs' is not a lifecycle stage"):
        Filters(stages=("Champs",)).validate()
    params = parse_view(None, None, None, None).with_(stages=("At risk",)).params("members")
    assert params["stages"] == ["At risk"]
    _, view = view_from_params(params, ("members",))
    assert view.filters.stages == ("At risk",)
    with pytest.raises(FilterError):
        view_from_params({**params, "stages": ["<script>"]}, ("members",))


def test_custseg_export_takes_stages(
    dashboard: Any, sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from config import get_settings
    from webapp.cli import main

    command_line_env(monkeypatch, str(sqlite_engine.url), tmp_path / "instance")
    try:
        runner = CliRunner()
        out = runner.invoke(
            main, ["export", "members", "--stage", "Lost", "--stage", "At risk", "--out", "-"]
        )
        assert out.exit_code == 0, out.output
        got = pd.read_csv(io.StringIO(out.output), comment="#")
        assert set(got["lifecycle_stage"]) == {"Lost", "At risk"}
        assert "# filter_stages: At risk,Lost" in out.output
        bad = runner.invoke(main, ["export", "lifecycle", "--stage", "Champs", "--out", "-"])
        assert bad.exit_code == 1 and "'Champs' is not a lifecycle stage" in bad.output
        listed = runner.invoke(main, ["export", "--list"])
        assert "options: --compare-to, --stage" in listed.output
    finally:
        get_settings.cache_clear()


def test_scores_and_stages_read_alike_on_both_databases(engine: Engine) -> None:
    """PostgreSQL reads customers through COPY as CSV: scores and stages come back the same."""
    from db.importer import import_file
    from tests.conftest import SAMPLE
    from tests.refitting import refit

    import_file(engine, SAMPLE)
    outcome = refit(engine, k=3)
    customers = customers_of(engine, outcome.snapshot_id).sort_values("customer_id")
    members, _ = export_frame(engine, "members", Filters(stages=("Champions",)))
    expected = customers[customers["lifecycle_stage"] == "Champions"]
    assert list(members["customer_id"]) == list(expected["customer_id"])
    assert members["r_score"].tolist() == expected["r_score"].tolist()
    lifecycle, _ = export_frame(engine, "lifecycle", Filters(segments=(1,)))
    assert lifecycle["customers"].sum() == (customers["segment_id"] == 1).sum()


def test_a_snapshot_from_before_stages_exports_no_stage_rows(
    dashboard: Any, sqlite_engine: Engine
) -> None:
    with sqlite_engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE snapshot_customers SET r_score = NULL, f_score = NULL, m_score = NULL, "
                "lifecycle_stage = NULL WHERE snapshot_id = 1"
            )
        )
        conn.execute(text("DELETE FROM snapshot_stages WHERE snapshot_id = 1"))
        conn.execute(text("DELETE FROM snapshot_stage_migration"))
    assert export_frame(sqlite_engine, "lifecycle", snapshot_id=1)[0].empty
    assert export_frame(sqlite_engine, "stage_matrix", snapshot_id=1)[0].empty
    members, _ = export_frame(sqlite_engine, "members", snapshot_id=1)
    assert len(members) == 241 and members["lifecycle_stage"].isna().all()
    assert members["r_score"].isna().all()
    # Snapshot 2 has stages, snapshot 1 none: nothing to compare them by.
    assert export_frame(sqlite_engine, "stage_migration", Filters(compare_to=1))[0].empty
