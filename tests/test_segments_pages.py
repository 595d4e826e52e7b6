"""The pages of lifecycle stages and of the choice of k, their callbacks called directly as a
logged-in user (inputs and outputs by name), against the exports they draw: the Segments page's
stage grid and segments × stages, the Model page's k curve, reason, the admins' k setting and
preview, the Customers page's stages, and the Migration page's flows between stages. The
fixture `dashboard` holds the Online Retail sample and two snapshots (k = 3, fixed)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from dash import no_update
from werkzeug.exceptions import Forbidden

from analytics import rfm
from analytics.segmentation import explain_selection
from db import snapshots
from db.k_settings import get_k_setting
from tests.conftest import as_user, frame, login, page, view
from tests.helpers import callback_body, text_of, walk

ADMIN, ANALYST, VIEWER = (f"{r}@example.com" for r in ("admin", "analyst", "viewer"))


def stage_cells(grid: Any) -> dict[str, Any]:
    return {getattr(c, "data-stage"): c for c in walk(grid) if getattr(c, "data-stage", None)}


def titles(node: Any) -> list[str]:
    return [c.title for c in walk(node) if getattr(c, "title", None)]


# --- Segments ---------------------------------------------------------------------------------


def test_stage_grid_shows_each_stage_its_figures_and_action(app, dashboard, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    update_stages = page("segments").update_stages

    with as_user(app, VIEWER):  # aggregates: for viewers too
        out = update_stages(**view(), measure="customers")
    assert out["message"] is None
    stages = frame(sqlite_engine, "lifecycle").set_index("stage")
    cells = stage_cells(out["segments-stages"])
    assert list(cells) == list(rfm.STAGES)
    for stage, cell in cells.items():
        row = stages.loc[stage]
        shown = text_of(cell)
        if row["customers"]:
            assert f"{int(row['customers']):,} customers ({row['share']:.0%})" in shown, stage
            assert row["action"] in shown
            assert titles(cell) == [f"Why: {row['action_why']}"]  # the ? tooltip
        else:
            assert "No customers" in shown and not titles(cell)
    # Its place in the R x F map: Champions top right, Lost bottom left (below Hibernating).
    assert cells["Champions"].style["gridColumn"] == "6 / 7"
    assert cells["Champions"].style["gridRow"] == "1 / 5"
    assert cells["Lost"].style["gridRow"] == "9 / 11"
    assert cells["Hibernating"].style["gridRow"] == "7 / 9"
    assert "M 1–2" in text_of(cells["Lost"]) and "M 3–5" in text_of(cells["Hibernating"])
    # Shaded by the measure: the stage with most customers is the darkest.
    alpha = {s: float(c.style["background"].rsplit(",", 1)[1][:-1]) for s, c in cells.items()}
    assert max(alpha, key=alpha.get) == stages["customers"].idxmax()  # type: ignore[arg-type]
    assert out["segments-stages:params"]["export"] == "lifecycle"
    with as_user(app, VIEWER):
        by_revenue = update_stages(**view(), measure="gross_revenue")
    cells = stage_cells(by_revenue["segments-stages"])
    alpha = {s: float(c.style["background"].rsplit(",", 1)[1][:-1]) for s, c in cells.items()}
    assert max(alpha, key=alpha.get) == stages["gross_revenue"].idxmax()  # type: ignore[arg-type]
    top = stages["gross_revenue"].idxmax()
    assert (
        text_of(cells[top])
        .split(" revenue")[0]
        .endswith(f"{stages.loc[top, 'gross_revenue']:,.2f}")
    )


def test_segments_by_stages_heatmap_draws_the_stage_matrix(app, dashboard, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    update_stages = page("segments").update_stages

    with as_user(app, VIEWER):
        out = update_stages(**view(), measure="customers")
        revenue = update_stages(**view(), measure="gross_revenue")
        bad = update_stages(**view(), measure="profit")
    matrix = frame(sqlite_engine, "stage_matrix")
    heat = out["segments-stage-matrix"].data[0]
    assert list(heat.x) == list(rfm.STAGES)
    segments = frame(sqlite_engine, "segments")
    assert len(heat.y) == len(segments)
    total = sum(int(v.replace(",", "")) for row in heat.text for v in row if v)
    assert total == matrix["customers"].sum() == 297
    # Colour: the share of the segment's customers; each row adds up to one.
    assert [sum(row) for row in heat.z] == pytest.approx([1.0] * len(segments))
    assert out["segments-stage-matrix:params"]["export"] == "stage_matrix"
    rev = revenue["segments-stage-matrix"].data[0]
    assert [sum(row) for row in rev.z] == pytest.approx([1.0] * len(segments))
    assert sum(float(v.replace(",", "")) for row in rev.text for v in row if v) == pytest.approx(
        matrix["gross_revenue"].sum(), abs=len(matrix)
    )
    assert "measure must be one of" in str(bad["message"].children)
    assert bad["segments-stage-matrix:params"] is None


def test_stage_grid_of_chosen_segments_keeps_the_stage_action(
    app, dashboard, sqlite_engine
) -> None:  # type: ignore[no-untyped-def]
    update_stages = page("segments").update_stages

    seg = dashboard[1].segments[0]["segment_id"]
    with as_user(app, VIEWER):
        out = update_stages(**view(segments=[seg]), measure="customers")
    assert out["segments-stages:params"]["segments"] == [seg]
    mine = frame(sqlite_engine, "lifecycle", segments=(seg,)).set_index("stage")
    cells = stage_cells(out["segments-stages"])
    shown = sum(int(mine.loc[s, "customers"]) for s in cells if "customers (" in text_of(cells[s]))
    assert shown == dashboard[1].segments[0]["customers"]
    assert all(
        t.startswith("Why (the stage across all customers): ")
        for t in titles(out["segments-stages"])
    )
    matrix = out["segments-stage-matrix"].data[0]
    assert len(matrix.y) == 1


def test_segments_table_shows_each_action_with_its_numbers(app, dashboard, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    update_segments = page("segments").update_segments

    with as_user(app, VIEWER):
        out = update_segments(**view())
    seg = frame(sqlite_engine, "segments")
    table = out["segments-table"]
    shown = text_of(table)
    tips = titles(table)
    for row in seg.itertuples():
        assert row.action in shown
        assert f"Why: {row.action_why}" in tips


def test_a_snapshot_before_stages_says_so_on_the_segments_page(
    app, dashboard, sqlite_engine
) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import text

    update_stages = page("segments").update_stages
    with sqlite_engine.begin() as conn:
        conn.execute(text("DELETE FROM snapshot_stages WHERE snapshot_id = 1"))
    with as_user(app, VIEWER):
        out = update_stages(**view(snapshot=1), measure="customers")
    assert "made before they existed" in str(out["message"].children)
    assert out["segments-stages:params"] is None


# --- Model --------------------------------------------------------------------------------------


def test_model_curve_shades_the_range_and_says_why(app, dashboard, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    update_model = page("model").update_model

    snap = snapshots.get_snapshot(sqlite_engine)
    with as_user(app, VIEWER):
        out = update_model(snapshot=None)
    fig = out["model-scores"]
    scores = frame(sqlite_engine, "scores")
    [curve] = [t for t in fig.data if t.name == "silhouette"]
    assert list(curve.x) == list(range(2, 11))
    assert list(curve.y) == pytest.approx(list(scores["silhouette"]))
    shaded = [s for s in fig.layout.shapes if s.type == "rect"]
    lo, hi = snap.k_selection["range_used"]
    assert [(s.x0, s.x1) for s in shaded] == [(lo - 0.5, hi + 0.5)] * 2  # both panels
    assert [list(t.x) for t in fig.data if t.name == "chosen k"] == [[3], [3]]
    best = [t for t in fig.data if t.name == "best in range"]
    assert [list(t.x) for t in best] == [[snap.k_selection["best_k"]]]
    reason = text_of(out["model-k-reason"])
    assert explain_selection(snap.k_selection) in reason
    assert "Setting that won for this snapshot: --k on the command line." in reason
    assert "The next refit uses k chosen by silhouette in 4–8: the default." in reason


def test_admin_sets_the_k_range_or_a_fixed_k_for_the_next_refits(
    app, dashboard, sqlite_engine
) -> None:  # type: ignore[no-untyped-def]
    save_k = page("model").save_k

    with as_user(app, ADMIN):
        out = save_k(clicks=1, mode="range", k_min=3, k_max=6, k=None)
        assert "Saved: k chosen by silhouette in 3–6." in str(out["message"].children)
        assert out["next"].startswith("The next refit uses k chosen by silhouette in 3–6: an admin")
        assert "set by admin@example.com" in out["next"]
        stored = get_k_setting(sqlite_engine)
        assert stored is not None
        assert (stored["k_min"], stored["k_max"], stored["k"]) == (3, 6, None)
        assert stored["set_by"] == ADMIN and stored["set_at"] is not None
        out = save_k(clicks=2, mode="fixed", k_min=3, k_max=6, k=5)
        assert out["next"].startswith("The next refit uses a fixed k = 5")
        assert get_k_setting(sqlite_engine)["k"] == 5  # type: ignore[index]
        for mode, k_min, k_max, k, error in (
            ("range", 1, 6, None, "smallest k must be a whole number from 2 to 30"),
            ("range", 6, 3, None, "k_min (6) is above k_max (3)"),
            ("range", 3.5, 6, None, "smallest k must be a whole number"),
            ("fixed", None, None, "5; DROP TABLE k_settings", "fixed k must be a whole number"),
            ("fixed", None, None, 31, "fixed k must be a whole number from 2 to 30"),
            ("all", 3, 6, None, "k setting must be one of range, fixed, clear"),
        ):
            refused = save_k(clicks=3, mode=mode, k_min=k_min, k_max=k_max, k=k)
            assert error in str(refused["message"].children), (mode, error)
        assert get_k_setting(sqlite_engine)["k"] == 5  # type: ignore[index]  # unchanged
        cleared = save_k(clicks=4, mode="clear")
        assert cleared["next"] == "The next refit uses k chosen by silhouette in 4–8: the default."
    assert get_k_setting(sqlite_engine) is None


@pytest.mark.parametrize("email", [VIEWER, ANALYST])
def test_only_admins_may_set_k_or_preview(app, dashboard, sqlite_engine, email) -> None:  # type: ignore[no-untyped-def]
    model = page("model")
    with as_user(app, email):
        with pytest.raises(Forbidden, match="admin role"):
            model.save_k(clicks=1, mode="fixed", k=9)
        with pytest.raises(Forbidden, match="admin role"):
            model.preview_k(snapshot=None, k=5)
        with pytest.raises(Forbidden, match="admin role"):
            model.preview_clicked({"points": [{"x": 5}]})
        with pytest.raises(Forbidden, match="admin role"):
            model.preview_published(1)
        layout = str(model.layout())
    assert get_k_setting(sqlite_engine) is None
    assert "k-save" not in layout and "preview-k" not in layout  # no form
    assert "model-k-reason" in layout  # the curve and the reason


def test_the_server_refuses_a_k_setting_posted_by_a_viewer(
    app, dashboard, client, sqlite_engine
) -> None:  # type: ignore[no-untyped-def]
    def post(values: dict[str, Any]) -> Any:
        # The first: a page's callbacks may be listed again by apps made before in the session.
        deps = client.get("/_dash-dependencies").get_json()
        spec = next(d for d in deps if "k-save-message" in d["output"])
        body = callback_body(spec, {"k-save.n_clicks": 1}, values)
        return client.post("/_dash-update-component", json=body)

    login(client, VIEWER)
    values = {"k-mode.value": "fixed", "k-fixed.value": 9}
    assert post(values).status_code == 403
    assert get_k_setting(sqlite_engine) is None
    client.post("/logout")
    login(client, ADMIN)
    response = post(values)
    assert response.status_code == 200, response.data[:300]
    assert get_k_setting(sqlite_engine)["k"] == 9  # type: ignore[index]


def test_admin_previews_every_k_without_publishing(app, dashboard, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    model = page("model")

    previews = frame(sqlite_engine, "k_previews")
    with as_user(app, ADMIN):
        out = model.preview_k(snapshot=None, k=5)
        stale = model.preview_k(snapshot=None, k=42)  # not fitted: the published k
        assert model.preview_clicked({"points": [{"x": 7}]}) == 7
        assert model.preview_clicked({"points": [{"x": "7; --"}]}) is no_update
        assert model.preview_published(1) == 3 and model.preview_published("x") is no_update
        bad = model.preview_k(snapshot=None, k="5 OR 1=1")
    five = previews[previews["k"] == 5]
    assert [r["name"] for r in out["preview-table"]] == list(five["name"])
    assert [r["customers"] for r in out["preview-table"]] == list(five["customers"])
    assert [o["value"] for o in out["preview-k-options"]] == list(range(2, 11))
    assert out["preview-k-options"][1]["label"] == "k = 3 (published)"
    bars = out["model-preview"]
    assert len(bars.data) == 10  # one trace per cluster rank, up to k = 10
    assert list(bars.data[0].x) == list(range(2, 11))
    assert [a.text for a in bars.layout.annotations] == ["published"]
    assert bars.data[0].marker.opacity[3] == 1.0 and bars.data[0].marker.opacity[1] < 1
    assert out["model-preview:params"]["export"] == "k_previews"
    assert [r["name"] for r in stale["preview-table"]] == list(
        previews.loc[previews["k"] == 3, "name"]
    )
    assert "k must be a whole number" in str(bad["message"].children)
    assert snapshots.get_snapshot(sqlite_engine).id == 2  # nothing published


# --- Customers ----------------------------------------------------------------------------------


def test_member_list_shows_and_filters_stages(app, dashboard, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    members = page("customers").members

    with as_user(app, ANALYST):
        out = members(segments=None, snapshot=None, stages=["Lost", "At risk"], page=0)
        every = members(segments=None, snapshot=None, stages=None, page=0)
        bad = members(segments=None, snapshot=None, stages=["Champs"], page=0)
    expected = frame(sqlite_engine, "members", role="analyst", stages=("At risk", "Lost"))
    rows = out["members-table"]
    assert [r["customer_id"] for r in rows] == list(expected["customer_id"].iloc[:25])
    assert {r["lifecycle_stage"] for r in rows} == {"At risk", "Lost"}
    first = expected.iloc[0]
    assert (rows[0]["r_score"], rows[0]["f_score"], rows[0]["m_score"]) == (
        first["r_score"],
        first["f_score"],
        first["m_score"],
    )
    json.dumps(rows)  # what Dash sends: no pandas missing values left
    assert out["message"] == f"{len(expected)} customers in all segments; stages At risk, Lost."
    assert out["customers-members:params"]["stages"] == ["At risk", "Lost"]
    assert every["message"] == "297 customers in all segments."
    assert "'Champs' is not a lifecycle stage" in str(bad["message"].children)


def test_member_list_stages_come_from_and_go_to_the_url(app, dashboard, client) -> None:  # type: ignore[no-untyped-def]
    from webapp.filters import page_filter_id

    customers = page("customers")
    with as_user(app, ANALYST):
        layout = customers.layout(stage=["Lost", "nonsense", "At risk"])
    [dropdown] = [c for c in walk(layout) if getattr(c, "id", None) == page_filter_id("stage")]
    assert dropdown.value == ["At risk", "Lost"]
    assert len(dropdown.options) == 11
    # The shared callback writes the page's stages into the address, not into the navbar links.
    login(client, ANALYST)
    spec = next(
        d for d in client.get("/_dash-dependencies").get_json() if "url-query.search" in d["output"]
    )
    body = callback_body(spec, {"f-segments.value": [1]})
    body["inputs"][-1] = [
        {"id": page_filter_id("stage"), "property": "value", "value": ["At risk", "Lost"]}
    ]
    got = client.post("/_dash-update-component", json=body).get_json()["response"]
    assert got["url-query"]["search"] == "?segment=1&stage=At+risk&stage=Lost"
    link = json.dumps({"page": "/sales", "type": "nav-link"}, separators=(",", ":"))
    assert got[link]["href"] == "/sales?segment=1"


def test_lookup_shows_the_customer_stage_and_scores(app, dashboard, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    lookup = page("customers").lookup

    members = frame(sqlite_engine, "members", role="analyst")
    row = members[members["lifecycle_stage"] == "Lost"].iloc[0]
    customer = str(row["customer_id"])
    with as_user(app, ANALYST):
        out = lookup(clicks=1, customer=customer, snapshot=None)
        earlier = lookup(clicks=1, customer=customer, snapshot=1)
    scores = f"R {row['r_score']} · F {row['f_score']} · M {row['m_score']}"
    shown = text_of(out["message"])
    assert f"Lifecycle stage Lost ({scores}) in snapshot 2" in shown
    history = snapshots.customer_history(sqlite_engine, customer)
    for r in history.itertuples():
        assert r.lifecycle_stage in shown
    assert "in snapshot 1" in text_of(earlier["message"])


# --- Migration ----------------------------------------------------------------------------------


def test_migration_between_stages(app, dashboard, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    update_migration = page("migration").update_migration

    seg = dashboard[1].segments[0]["segment_id"]
    with as_user(app, VIEWER):
        out = update_migration(**view(), source=1, measure="customers", between="stages")
        filtered = update_migration(
            **view(segments=[seg]), source=1, measure="customers", between="stages"
        )
        revenue = update_migration(**view(), source=1, measure="gross_revenue", between="stages")
        bad = update_migration(**view(), source=1, between="clusters")
    moves = frame(sqlite_engine, "stage_migration", compare_to=1)
    sankey, matrix = out["migration-sankey"].data[0], out["migration-matrix"].data[0]
    assert sum(sankey.link.value) == moves["customers"].sum()
    assert sum(map(sum, matrix.z)) == moves["customers"].sum()
    left = [label for label in sankey.node.label[: len(matrix.y)]]
    assert left[0] == "Joined since (new to the shop)"
    assert left[1:] == [s for s in rfm.STAGES if s in set(moves["from_stage"])]
    assert out["migration-sankey:params"]["export"] == "stage_migration"
    assert out["migration-sankey:params"]["compare_to"] == 1
    summary = text_of(out["migration-summary"])
    lapsing = moves[
        moves["to_stage"].isin(["At risk", "Can't lose them", "Hibernating", "Lost"])
        & ~moves["from_stage"].isin(["At risk", "Can't lose them", "Hibernating", "Lost", "(new)"])
    ]
    assert f"{lapsing['customers'].sum():,} customers slipped into the lapsing stages" in summary
    # Stages are of all customers: the segment filter does not split them, and says so.
    assert filtered["migration-sankey:params"]["segments"] == []
    assert sum(filtered["migration-sankey"].data[0].link.value) == moves["customers"].sum()
    assert "whatever the segment filter" in text_of(filtered["migration-summary"])
    assert sum(revenue["migration-sankey"].data[0].link.value) == pytest.approx(
        moves["gross_revenue"].sum()
    )
    assert "flows must be one of segments, stages" in str(bad["message"].children)
