"""Each page's callbacks, called directly as a logged-in user: given filters, the expected data.

The fixture `dashboard` holds the Online Retail sample and two snapshots (k=3). Charts are
checked against the export frames (`db.exporter.Exporter.export`): what a chart draws is what its
download holds. Callbacks take their inputs and give their outputs by name.
"""

from __future__ import annotations

import io
from datetime import date
from typing import Any

import openpyxl
import pandas as pd
import pytest
from werkzeug.exceptions import Forbidden

from db import snapshots
from tests.conftest import as_user, frame, page, view
from webapp.downloads import build_download
from webapp.filters import FilterError, parse_view

FULL = view("2010-12-01", "2011-12-09")


def top_segment(outcome) -> int:  # type: ignore[no-untyped-def]
    return max(outcome.segments, key=lambda s: s["gross_revenue"])["segment_id"]  # type: ignore[no-any-return]


# --- Overview ---------------------------------------------------------------------------------


def test_overview_kpis_and_their_change(app, dashboard, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    CARDS, update_overview = page("overview").CARDS, page("overview").update_overview

    with as_user(app):
        out = update_overview(**FULL)
        values = [out[f"kpi-{key}"] for key, _, _ in CARDS]
        assert values[:4] == ["297", "202", "1,286", "275"]
        assert values[4:] == ["762,694.99", "734,776.06", "593.08", "64.6%"]
        assert out["message"] is None
        # The change against the previous half year, from the kpi_comparison export.
        out = update_overview(**view("2011-06-10", "2011-12-09"))
        cmp = frame(sqlite_engine, "kpi_comparison", start=date(2011, 6, 10), end=date(2011, 12, 9))
        row = cmp.set_index("metric").loc["orders"]
        assert (row["previous_start"], row["previous_end"]) == (date(2010, 12, 9), date(2011, 6, 9))
        sign = "▲" if row["change"] > 0 else "▼"
        assert out["kpi-orders-change"].children == f"{sign} {abs(row['change']) * 100:.1f}%"
        compare = out["overview-compare"]
        assert "2011-06-10 to 2011-12-09" in compare and "2010-12-09 to 2011-06-09" in compare
        # The trend chart draws the sales export, weekly for half a year.
        fig = out["overview-trend"]
        sales = frame(
            sqlite_engine,
            "sales",
            start=date(2011, 6, 10),
            end=date(2011, 12, 9),
            granularity="week",
        )
        drawn = sum(sum(t.y) for t in fig.data)
        assert drawn == pytest.approx(sales["gross_revenue"].sum())
        assert out["overview-trend:params"]["granularity"] == "week"


def test_overview_follows_the_segment_filter(app, dashboard) -> None:  # type: ignore[no-untyped-def]
    update_overview = page("overview").update_overview

    first, second = dashboard
    seg = second.segments[0]
    with as_user(app):
        out = update_overview(**{**FULL, "segments": [seg["segment_id"]], "snapshot": 2})
    assert out["kpi-customers"] == f"{seg['customers']:,}"
    assert {t.name for t in out["overview-trend"].data} == {seg["name"]}


@pytest.mark.parametrize(
    ("start", "end", "segments", "snapshot", "message"),
    [
        ("2011-13-45", None, None, None, "is not a date"),
        ("2011-02-01", "2011-01-01", None, None, "start date is after the end date"),
        (None, None, [999], None, "unknown segment id(s) [999]"),
        (None, None, ["1; DROP TABLE users"], None, "segment filter is not valid"),
        (None, None, list(range(100)), None, "segment filter is not valid"),
        (None, None, [True], None, "segment filter is not valid"),
        (None, None, None, 999, "no published snapshot 999"),
        (None, None, None, "1 OR 1=1", "snapshot is not valid"),
        ("x" * 10_000, None, None, None, "is not a date"),
        ({"$gt": ""}, None, None, None, "is not a date"),
        ("2011-01-01' OR '1'='1", None, None, None, "is not a date"),
        (None, "9999-12-31", None, None, "must lie between 1970-01-01 and 2100-12-31"),
    ],
)
def test_every_page_refuses_bad_filters_with_a_message(  # type: ignore[no-untyped-def]
    app, dashboard, start, end, segments, snapshot, message
) -> None:
    customers, migration, model, overview, retention, sales, segments_page = (
        page(n)
        for n in ("customers", "migration", "model", "overview", "retention", "sales", "segments")
    )

    calls = [
        overview.update_overview,
        segments_page.update_segments,
        retention.update_retention,
        sales.update_sales,
    ]
    with as_user(app, "analyst@example.com"):
        for fn in calls:
            out = fn(**view(start, end, segments, snapshot))  # type: ignore[operator]
            alert = out["message"]
            assert message in str(alert.children), (fn.__name__, alert)
            figures = [v for k, v in out.items() if hasattr(v, "layout")]
            assert figures and all(not f.data for f in figures)  # blank charts
            assert all(v is None for k, v in out.items() if k.endswith(":params"))
        # Pages that ignore the dates still check the segments and the snapshot.
        if "segment" in message or "snapshot" in message:
            moved = migration.update_migration(**view(None, None, segments, snapshot), source=1)
            assert message in str(moved["message"])
            listed = customers.members(segments=segments, snapshot=snapshot, page=0)
            assert message in str(listed["message"].children)
        if "snapshot" in message:
            assert message in str(model.update_model(snapshot=snapshot)["message"].children)


# --- Segments ---------------------------------------------------------------------------------


def test_segments_page_draws_the_exports(app, dashboard, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    update_segments = page("segments").update_segments

    with as_user(app, "analyst@example.com"):
        out = update_segments(**FULL)
    shares, heat = out["segments-shares"], out["segments-profiles"]
    table, scatter = out["segments-table"], out["segments-scatter"]
    assert out["message"] is None
    seg = frame(sqlite_engine, "segments")
    assert sorted(shares.data[0].customdata) == sorted(seg["segment_id"])
    assert list(shares.data[1].x) == list(seg["revenue_share"].iloc[::-1])
    prof = frame(sqlite_engine, "profiles")
    assert len(heat.data[0].y) == len(seg)
    ratio = prof.set_index(["segment_id", "feature"])["ratio_to_average"]
    sid = int(seg["segment_id"].iloc[0])
    assert heat.data[0].text[0][1] == f"{ratio[(sid, 'frequency')]:.2g}×"
    sample = frame(sqlite_engine, "customer_sample")
    assert sum(len(t.x) for t in scatter.data) == 3 * len(sample)  # three panels
    assert out["segments-shares:params"]["export"] == "segments"
    assert out["segments-table:params"]["export"] == "segments"
    assert out["segments-profiles:params"]["export"] == "profiles"
    assert out["segments-scatter:params"]["export"] == "customer_sample"
    assert seg["name"].iloc[0] in str(table)
    with as_user(app, "viewer@example.com"):  # single customers: not for viewers
        out = update_segments(**FULL)
    assert not out["segments-scatter"].data and out["segments-scatter:params"] is None
    assert out["segments-shares"].data and out["message"] is None


def test_a_click_on_a_segment_filters_the_dashboard(app, dashboard) -> None:  # type: ignore[no-untyped-def]
    from dash import no_update

    select_segment = page("segments").select_segment

    click = {"points": [{"customdata": 2}]}
    with as_user(app):
        assert select_segment(click, []) == [2]
        assert select_segment(click, [2]) == []  # a second click clears
        assert select_segment({"points": [{"customdata": "x"}]}, []) is no_update
        assert select_segment({"bad": 1}, []) is no_update


def test_rename_is_for_analysts(app, dashboard, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    rename = page("segments").rename

    _, second = dashboard
    sid = second.segments[0]["segment_id"]
    with as_user(app, "viewer@example.com"), pytest.raises(Forbidden, match="analyst role"):
        rename(1, sid, "Hacked")
    assert "Hacked" not in set(snapshots.segments(sqlite_engine, second.snapshot_id)["name"])
    with as_user(app, "analyst@example.com"):
        msg, count, options = rename(1, sid, "  VIP   customers ", 0)
        assert count == 1 and "VIP customers" in msg.children
        # The filter bar's labels follow the new name.
        assert {o["label"].rsplit(" (", 1)[0] for o in options if o["value"] == sid} == {
            "VIP customers"
        }
        assert "1 to 80" in rename(1, sid, "x" * 81, 1)[0].children
        assert "no segment 999" in rename(1, 999, "Ghost", 1)[0].children
    names = snapshots.segments(sqlite_engine, second.snapshot_id).set_index("segment_id")["name"]
    assert names[sid] == "VIP customers"


# --- Retention, sales, migration ----------------------------------------------------------------


def test_retention_page(app, dashboard, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    update_retention = page("retention").update_retention

    with as_user(app):
        out = update_retention(**FULL, heat_of="all", month=2)
    heat, trend, repeat = out["retention-heatmap"], out["retention-trend"], out["retention-repeat"]
    hp, tp = out["retention-heatmap:params"], out["retention-trend:params"]
    assert out["message"] is None
    ret = frame(sqlite_engine, "retention", start=date(2010, 12, 1), end=date(2011, 12, 9))
    first_row = ret[ret["cohort"] == ret["cohort"].min()].sort_values("months_since_first")
    assert list(heat.data[0].z[0][: len(first_row)]) == pytest.approx(list(first_row["retention"]))
    assert heat.data[0].y[0].startswith("2010-12 (56)")  # tests/data/README.md: cohort size 56
    assert tp["month"] == 2 and hp["export"] == "retention"
    trend_frame = frame(
        sqlite_engine, "retention_trend", start=date(2010, 12, 1), end=date(2011, 12, 9), month=2
    )
    assert sum(len(t.y) for t in trend.data) == len(trend_frame)
    rates = frame(sqlite_engine, "repeat_rate", start=date(2010, 12, 1), end=date(2011, 12, 9))
    assert sorted(repeat.data[0].y) == sorted(rates["repeat_rate"])
    with as_user(app):
        one = dashboard[1].segments[0]["segment_id"]
        heat_one = update_retention(**FULL, heat_of=str(one), month=1)
        assert heat_one["retention-heatmap:params"]["segments"] == [one]
        bad_month = update_retention(**FULL, heat_of="all", month=99)["message"]
        assert "month must be" in str(bad_month.children)
        bad_of = update_retention(**FULL, heat_of="<b>", month=1)["message"]
        assert "not valid" in str(bad_of.children)


def test_sales_page(app, dashboard, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    update_sales = page("sales").update_sales

    with as_user(app):
        out = update_sales(**view("2011-01-01", "2011-12-09"), granularity="week")
        year = update_sales(**FULL, granularity="year")["message"]
        assert "period must be one of" in str(year.children)
    time_fig, aov = out["sales-time"], out["sales-aov"]
    sp, ap = out["sales-time:params"], out["sales-aov:params"]
    assert out["message"] is None and sp["granularity"] == "week"
    assert out["sales-share:params"] == sp
    sales = frame(
        sqlite_engine, "sales", start=date(2011, 1, 1), end=date(2011, 12, 9), granularity="week"
    )
    revenue_traces = [t for t in time_fig.data if t.yaxis == "y"]
    assert sum(sum(t.y) for t in revenue_traces) == pytest.approx(sales["gross_revenue"].sum())
    aov_traces = [t for t in time_fig.data if t.yaxis == "y3"]
    assert sum(len(t.y) for t in aov_traces) == len(sales[sales["segment_id"] != 0])
    dist = frame(sqlite_engine, "aov_distribution", start=date(2011, 1, 1), end=date(2011, 12, 9))
    assert sorted(b.median[0] for b in aov.data) == pytest.approx(sorted(dist["median"]))
    assert ap["export"] == "aov_distribution"


def test_migration_page(app, dashboard, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    update_migration = page("migration").update_migration

    first, second = dashboard
    second_view = view(snapshot=second.snapshot_id)
    with as_user(app):
        out = update_migration(**second_view, source=first.snapshot_id, measure="customers")
        same = update_migration(**second_view, source=second.snapshot_id)
        assert "Choose an earlier snapshot" in str(same["message"].children)
        oldest = update_migration(**view(snapshot=first.snapshot_id), source=None)
        assert "is the oldest kept" in str(oldest["message"].children)
        profit = update_migration(**view(), source=1, measure="profit")
        assert "measure" in str(profit["message"].children)
    sankey, matrix, summary = (
        out["migration-sankey"],
        out["migration-matrix"],
        out["migration-summary"],
    )
    assert out["message"] is None
    assert out["migration-sankey:params"]["compare_to"] == first.snapshot_id
    moves = frame(sqlite_engine, "migration", compare_to=first.snapshot_id)
    assert sum(sankey.data[0].link.value) == moves["customers"].sum()
    assert moves["customers"].sum() == 297 + int(
        moves.loc[moves["to_segment"] == -1, "customers"].sum()
    )
    assert sum(map(sum, matrix.data[0].z)) == moves["customers"].sum()
    assert "moved into" in str(summary.children)


def test_migration_with_one_snapshot_explains_what_to_do(app, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    from db.importer import import_file
    from tests.conftest import SAMPLE
    from tests.refitting import refit

    update_migration = page("migration").update_migration

    import_file(sqlite_engine, SAMPLE)
    refit(sqlite_engine, k=3)
    with as_user(app):
        out = update_migration(**view(), source=None)
    assert "Only one snapshot so far" in str(out["message"].children)


# --- Customers ----------------------------------------------------------------------------------


def test_customer_lookup(app, dashboard, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    lookup = page("customers").lookup

    customer = str(snapshots.customers(sqlite_engine, dashboard[1].snapshot_id)["customer_id"][0])
    with as_user(app, "analyst@example.com"):
        out = lookup(clicks=1, customer=customer, snapshot=None)
        orders = frame(sqlite_engine, "customer_orders", customer=customer)
        text = str(out["message"])
        assert f"{(orders['total'] > 0).sum():,} orders" in text
        params = out["customers-lookup:params"]
        assert params == {**params, "export": "customer_orders", "customer": customer}
        nobody = lookup(clicks=1, customer="nobody", snapshot=None)
        assert "No customer" in str(nobody["message"].children)
        assert nobody["customers-lookup:params"] is None
        for bad in ("x" * 500, ["a"], "a\x00b"):
            refused = lookup(clicks=1, customer=bad, snapshot=None)["message"]
            assert "not valid" in str(refused.children)
    with as_user(app), pytest.raises(Forbidden):  # single customers: not for viewers
        lookup(clicks=1, customer=customer, snapshot=None)


def test_member_list_is_for_analysts_and_paged(app, dashboard, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    PAGE_SIZE, members = page("customers").PAGE_SIZE, page("customers").members

    seg = dashboard[1].segments[0]
    with as_user(app, "viewer@example.com"), pytest.raises(Forbidden, match="analyst role"):
        members(segments=[seg["segment_id"]], snapshot=None, page=0)
    with as_user(app, "analyst@example.com"):
        out = members(segments=[seg["segment_id"]], snapshot=None, page=1)
        rows, pages, count = out["members-table"], out["members-pages"], out["message"]
        assert count.startswith(f"{seg['customers']:,} customers")
        assert out["customers-members:params"]["export"] == "members"
        assert pages == -(-seg["customers"] // PAGE_SIZE)
        every = frame(sqlite_engine, "members", segments=(seg["segment_id"],))
        expected = list(every["customer_id"].iloc[PAGE_SIZE : 2 * PAGE_SIZE])
        assert [r["customer_id"] for r in rows] == expected
        refused = members(segments=None, snapshot=None, page=-1)
        assert "page must be" in str(refused["message"].children)
        table = page("customers").layout()
        columns = {c["id"]: c for c in _component(table, "members-table").columns}
        spend = columns["monetary"]["format"].to_plotly_json()["specifier"]
        assert spend == columns["aov"]["format"].to_plotly_json()["specifier"] == ",.2f"
        assert "format" not in columns["frequency"]


def _component(root: Any, cid: str) -> Any:
    """The component with id `cid` in a layout tree."""
    if getattr(root, "id", None) == cid:
        return root
    children = getattr(root, "children", None)
    for child in children if isinstance(children, list) else [children]:
        if child is not None and not isinstance(child, str | int | float):
            found = _component(child, cid)
            if found is not None:
                return found
    return None


# --- Model, admin -------------------------------------------------------------------------------


def test_model_page(app, dashboard) -> None:  # type: ignore[no-untyped-def]
    update_model = page("model").update_model

    with as_user(app):
        out = update_model(snapshot=None)
    fig, history = out["model-scores"], out["model-history"]
    features, quality = out["model-features"], out["model-quality"]
    assert out["message"] is None
    assert [r["snapshot_id"] for r in history] == [2, 1]
    assert all(r["status"] == "published" for r in history)
    assert "log1p" in str(features) and "32,421" in str(quality)
    # Fitted with k=3 (fixed): every k of 2..10 is still scored (the curve), k=3 marked.
    curves = [t for t in fig.data if t.name in ("silhouette", "inertia")]
    assert [list(t.x) for t in curves] == [list(range(2, 11))] * 2
    chosen = [t for t in fig.data if t.name == "chosen k"]
    assert [list(t.x) for t in chosen] == [[3], [3]]
    assert list(chosen[0].text) == ["chosen k = 3"]


def test_admin_manages_users_and_nobody_else(app, dashboard, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    from db.users import list_users

    change_users, show_users = page("admin").change_users, page("admin").show_users

    with as_user(app, "analyst@example.com"):
        with pytest.raises(Forbidden, match="admin role"):
            change_users(
                1, None, None, None, "x@example.com", "long enough pw", "admin", None, None, 0
            )
        with pytest.raises(Forbidden):
            show_users(0)
    assert "x@example.com" not in set(list_users(sqlite_engine)["email"])
    users = list_users(sqlite_engine).set_index("email")["id"]
    with as_user(app, "admin@example.com"):

        def act(trigger: str, *args):  # type: ignore[no-untyped-def]
            with _Triggered(trigger):
                return change_users(1, 1, 1, 1, *args)

        msg, n = act("admin-add", "New@Example.com", "long enough pw", "analyst", None, None, 0)
        assert "new@example.com (analyst) added" in msg.children and n == 1
        msg, _ = act("admin-add", "new@example.com", "long enough pw", "analyst", None, None, 1)
        assert "already exists" in msg.children
        msg, _ = act("admin-add", "short@example.com", "short", "viewer", None, None, 1)
        assert "at least 10 characters" in msg.children
        msg, _ = act(
            "admin-set-role", None, None, None, int(users["admin@example.com"]), "viewer", 1
        )
        assert "cannot remove your own admin role" in msg.children
        msg, _ = act("admin-set-role", None, None, None, 2**70, "viewer", 1)
        assert "Choose a user" in msg.children
        msg, _ = act(
            "admin-deactivate", None, None, None, int(users["viewer@example.com"]), None, 1
        )
        assert "deactivated" in msg.children
        rows, options = show_users(2)
    status = {r["email"]: r["status"] for r in rows}
    assert status["viewer@example.com"] == "deactivated" and status["new@example.com"] == "active"


class _Triggered:
    """Pretend Dash's callback context was triggered by `component_id` (for direct calls)."""

    def __init__(self, component_id: str) -> None:
        self.component_id = component_id

    def __enter__(self) -> None:
        from unittest import mock

        import dash

        self._patch = mock.patch.object(
            type(dash.ctx), "triggered_id", new_callable=mock.PropertyMock
        )
        self._patch.start().return_value = self.component_id

    def __exit__(self, *exc: object) -> None:
        self._patch.stop()


# --- Downloads ----------------------------------------------------------------------------------


def test_a_download_holds_exactly_the_chart_data(app, dashboard, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    update_sales = page("sales").update_sales

    with as_user(app, "analyst@example.com"):
        out = update_sales(**view("2011-03-01", "2011-08-31"), granularity="month")
        params = out["sales-time:params"]
        data, name = build_download(params, "csv")
        xlsx, xname = build_download(params, "xlsx")
    assert name == "sales_snapshot2.csv" and xname.endswith(".xlsx")
    text = data.decode()
    head = [line for line in text.splitlines() if line.startswith("#")]
    assert "# filter_start: 2011-03-01" in head and "# snapshot_id: 2" in head
    assert "# exported_by: analyst@example.com" in head
    got = pd.read_csv(io.StringIO(text), comment="#")
    # Customers with only returns (segment 0) have no gross revenue to draw; the file keeps
    # their net revenue.
    assert (got.loc[got["segment_id"] == 0, "orders"] == 0).all()
    got = got[got["segment_id"] != 0]
    drawn = [t for t in out["sales-time"].data if t.yaxis == "y"]
    assert got["gross_revenue"].sum() == pytest.approx(sum(sum(t.y) for t in drawn))
    assert len(got) == sum(len(t.x) for t in drawn)
    book = openpyxl.load_workbook(io.BytesIO(xlsx))
    assert book.sheetnames == ["data", "provenance"]
    assert book["data"].max_row == len(got) + 1


def test_downloads_check_role_params_and_cap(app, dashboard, settings) -> None:  # type: ignore[no-untyped-def]
    params = parse_view(**FULL).params("members")
    with as_user(app, "viewer@example.com"):
        with pytest.raises(PermissionError, match="analyst role"):
            build_download(params, "csv")
    with as_user(app, "analyst@example.com"):
        for tampered in (
            None,
            {**params, "export": "users"},
            {**params, "segments": ["1 OR 1=1"]},
            {**params, "start": "2011-99-01"},
            {**params, "month": 10**9},
            {**params, "customer": "x" * 1000},
        ):
            with pytest.raises((FilterError, ValueError)):
                build_download(tampered, "csv")
        with pytest.raises(ValueError, match="format"):
            build_download(params, "exe")
        st = app.server.extensions["custseg"]
        st.settings = st.settings.model_copy(update={"export_row_cap": 10})
        with pytest.raises(ValueError, match="297 rows is over the export cap of 10"):
            build_download(params, "csv")


def test_page_choices_follow_the_snapshot_selector(app, dashboard) -> None:  # type: ignore[no-untyped-def]
    heatmap_choices = page("retention").heatmap_choices
    earlier_choices = page("migration").earlier_choices
    first, second = dashboard
    with as_user(app):
        options, value = heatmap_choices(first.snapshot_id, "999")
        assert value == "all"
        assert {o["value"] for o in options[1:]} == {str(s["segment_id"]) for s in first.segments}
        assert len(options) == 1 + len(first.segments)
        assert earlier_choices(second.snapshot_id)[1] == first.snapshot_id
        assert earlier_choices(first.snapshot_id) == ([], None)  # nothing before the first
        assert earlier_choices("x") == ([], None)


def test_switching_snapshot_follows_its_window_and_keeps_known_segments(app, dashboard) -> None:  # type: ignore[no-untyped-def]
    from webapp.filters import follow_window, switch_snapshot

    first, second = dashboard
    old, new = ("2010-12-01", "2011-12-09"), (date(2010, 12, 1), date(2011, 9, 30))
    assert follow_window(date(2010, 12, 1), date(2011, 12, 9), old, new) == new  # whole window
    assert follow_window(date(2011, 9, 1), date(2011, 12, 9), old, new) == (
        date(2011, 9, 1),
        date(2011, 9, 30),
    )
    assert follow_window(date(2011, 11, 1), date(2011, 12, 9), old, new) == new  # nothing left
    keep = first.segments[0]["segment_id"]
    with as_user(app):
        out = switch_snapshot(first.snapshot_id, [keep, 999], *old, *old)
        assert out[1] == [keep] and out[4:6] == ("2010-12-01", "2011-09-30")
        assert "as of 2011-09-30" in out[6]
        bad = switch_snapshot(first.snapshot_id, [{"a": 1}], None, None)
        assert bad[-1] == "The segment filter is not valid."


def test_figures_show_names_as_text() -> None:
    from webapp import charts

    pal = charts.Palette(
        pd.DataFrame(
            {"segment_id": [1], "name": ['<a href="//evil.example">VIP</a>'], "color": ["#000"]}
        )
    )
    assert pal.text(1) == '&lt;a href="//evil.example"&gt;VIP&lt;/a&gt;'
    fig = charts.repeat_rate_bars(
        pd.DataFrame(
            {"segment_id": [1], "customers": [2], "repeat_customers": [1], "repeat_rate": [0.5]}
        ),
        pal,
    )
    assert "<a" not in str(list(fig.data[0].x))
