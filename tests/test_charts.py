"""Figure builders and the chart exports, on hand-made frames: given inputs, the expected data."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from analytics import exports
from analytics.exports import Filters
from analytics.exports.orders import previous_period
from tests.reference import FrameSources, window
from webapp import charts


def export(name: str, f: Filters | None = None, **frames: object) -> pd.DataFrame:
    """Export `name` computed from frames in memory (the registry's function, no database)."""
    return exports.compute(name, FrameSources(**frames), f or Filters())[0]  # type: ignore[arg-type]


SEGMENTS = pd.DataFrame(
    {
        "segment_id": [2, 1],
        "name": ["loyal", "lapsed"],
        "color": ["#111111", "#222222"],
        "customers": [10, 30],
        "share": [0.25, 0.75],
        "revenue_share": [0.8, 0.2],
    }
)
PAL = charts.Palette(SEGMENTS)


def orders() -> pd.DataFrame:
    rows = [
        # customer, segment, day, total
        ("a", 2, "2024-01-01", 100.0),
        ("a", 2, "2024-01-20", 50.0),
        ("a", 2, "2024-02-03", -20.0),
        ("b", 2, "2024-02-10", 300.0),
        ("c", 1, "2024-01-05", 10.0),
        ("d", 1, "2024-03-01", 20.0),
        ("d", 1, "2024-03-02", 30.0),
    ]
    frame = pd.DataFrame(rows, columns=["customer_id", "segment_id", "day", "total"])
    frame["day"] = pd.to_datetime(frame["day"])
    return frame


def test_palette_keeps_names_colours_and_revenue_order() -> None:
    assert PAL.ordered([1, 2, 7]) == [2, 1, 7]
    assert (PAL.name(2), PAL.color(2)) == ("loyal", "#111111")
    assert PAL.name(0) == "No segment (returns only)" and PAL.color(0) == charts.OTHER_COLOR


def test_revenue_trend_stacks_each_segment_in_its_colour() -> None:
    sales = export("sales", Filters(granularity="month"), orders_frame=orders())
    fig = charts.revenue_trend(sales, PAL, "month")
    assert [t.name for t in fig.data] == ["loyal", "lapsed"]
    assert [t.line.color for t in fig.data] == ["#111111", "#222222"]
    assert list(fig.data[0].y) == [150.0, 300.0]  # Jan: 100+50, Feb: 300 (the return is net only)
    assert charts.revenue_trend(sales.iloc[0:0], PAL, "month").layout.annotations[0].text == (
        "No orders match the filters."
    )


def test_segment_shares_carry_the_segment_id_for_clicks() -> None:
    fig = charts.segment_shares(SEGMENTS, PAL)
    assert list(fig.data[0].customdata) == [1, 2]  # reversed: largest revenue on top
    assert list(fig.data[1].x) == [0.2, 0.8]
    assert list(fig.data[0].text) == ["75%", "25%"]


def test_profiles_and_their_heatmap() -> None:
    customers = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d"],
            "segment_id": [2, 2, 1, 1],
            "recency_days": [10, 30, 100, 100],
            "frequency": [4, 2, 1, 1],
            "monetary": [400.0, 200.0, 50.0, 50.0],
        }
    )
    segs = SEGMENTS.assign(centroid=[{"frequency": 3.0}, {}])
    prof = export("profiles", customers_frame=customers, segments_frame=segs)
    row = prof.set_index(["segment_id", "feature"]).loc[(2, "frequency")]
    assert row["segment_mean"] == 3.0 and row["average"] == 2.0 and row["ratio_to_average"] == 1.5
    assert row["centroid"] == 3.0
    fig = charts.profile_heatmap(prof, PAL)
    assert list(fig.data[0].y) == ["loyal", "lapsed"]
    assert fig.data[0].text[0][1] == "1.5×" and fig.data[0].z[0][1] == pytest.approx(0.585, 1e-3)
    only = export(
        "profiles", Filters(segments=(1,)), customers_frame=customers, segments_frame=segs
    )
    assert set(only["segment_id"]) == {1}


def test_customer_sample_is_fixed_and_capped() -> None:
    customers = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(50)],
            "segment_id": [1] * 40 + [2] * 10,
            "recency_days": range(50),
            "frequency": [1] * 50,
            "monetary": [1.0] * 50,
        }
    )
    from analytics.exports.customers import sample_customers

    a = sample_customers(customers, per_segment=5)
    b = sample_customers(customers.sample(frac=1, random_state=3), per_segment=5)
    assert export("customer_sample", Filters(segments=(2,)), customers_frame=customers).equals(
        sample_customers(customers)[lambda c: c["segment_id"] == 2].reset_index(drop=True)
    )
    assert a.equals(b) and a["segment_id"].value_counts().to_dict() == {1: 5, 2: 5}
    fig = charts.customer_scatter(a, PAL)
    assert len(fig.data) == 6 and fig.layout.yaxis.type == "log"


def test_aov_distribution_and_boxes() -> None:
    dist = export("aov_distribution", orders_frame=orders())
    loyal = dist.set_index("segment_id").loc[2]
    assert loyal["orders"] == 3 and loyal["median"] == 100.0 and loyal["max"] == 300.0
    assert loyal["q1"] == pytest.approx(75.0)
    fig = charts.aov_boxes(dist, PAL)
    assert [b.name for b in fig.data] == ["loyal", "lapsed"]
    assert fig.data[0].median[0] == 100.0 and fig.data[0].upperfence[0] == pytest.approx(280.0)


def test_sales_share_and_the_three_panels() -> None:
    sales = export("sales", Filters(granularity="month"), orders_frame=orders())
    jan = sales[sales["period"] == date(2024, 1, 1)].set_index("segment_id")
    assert jan.loc[2, "revenue_share"] == pytest.approx(150 / 160)
    assert jan.loc[2, "aov"] == 75.0
    fig = charts.sales_over_time(sales, PAL, "month")
    assert len(fig.data) == 6 and {t.yaxis for t in fig.data} == {"y", "y2", "y3"}
    share = charts.revenue_share(sales, PAL)
    assert list(share.data[0].y) == pytest.approx([150 / 160, 1.0])


def test_returns_only_customers_are_not_drawn_but_kept_in_the_data() -> None:
    o = pd.concat(
        [
            orders(),
            pd.DataFrame(
                {
                    "customer_id": ["z"],
                    "segment_id": [0],
                    "total": [-5.0],
                    "day": [pd.Timestamp("2024-01-09")],
                }
            ),
        ]
    )
    sales = export("sales", Filters(granularity="month"), orders_frame=o)
    assert 0 in set(sales["segment_id"])  # its net revenue is in the download
    for fig in (charts.revenue_trend(sales, PAL, "month"), charts.revenue_share(sales, PAL)):
        assert "No segment (returns only)" not in {t.name for t in fig.data}


def retention_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "cohort": [date(2024, 1, 1)] * 3 + [date(2024, 2, 1)] * 2,
            "months_since_first": [0, 1, 2, 0, 2],
            "segment_id": [2] * 5,
            "cohort_size": [4, 4, 4, 2, 2],
            "customers": [4, 2, 1, 2, 1],
            "revenue": [10.0] * 5,
        }
    )


def test_retention_trend_fills_zeros_and_waits_for_complete_months() -> None:
    trend = export(
        "retention_trend",
        Filters(end=date(2024, 3, 31), month=1),
        retention_frame=retention_table(),
    )
    assert list(trend["cohort"]) == [date(2024, 1, 1), date(2024, 2, 1)]
    assert list(trend["retention"]) == [0.5, 0.0]  # nobody of February came back in March
    two = export(
        "retention_trend",
        Filters(end=date(2024, 3, 31), month=2),
        retention_frame=retention_table(),
    )
    assert list(two["cohort"]) == [date(2024, 1, 1)]  # February's month 2 is April: not yet
    with pytest.raises(ValueError, match="month must be"):
        Filters(month=0).validate()
    fig = charts.retention_trend(trend, PAL, 1)
    assert list(fig.data[0].y) == [0.5, 0.0] and fig.data[0].name == "loyal"


def test_retention_heatmap_rows_are_cohorts() -> None:
    ret = export("retention", Filters(end=date(2024, 3, 31)), retention_frame=retention_table())
    fig = charts.retention_heatmap(ret)
    assert list(fig.data[0].y) == ["2024-01 (4)", "2024-02 (2)"]
    assert list(fig.data[0].z[0]) == [1.0, 0.5, 0.25]
    assert fig.data[0].text[1][1] == ""  # no row: nobody back


def test_repeat_rate() -> None:
    rates = export("repeat_rate", orders_frame=orders())
    by = rates.set_index("segment_id")
    assert by.loc[2, "customers"] == 2 and by.loc[2, "repeat_customers"] == 1
    assert by.loc[1, "repeat_rate"] == 0.5
    fig = charts.repeat_rate_bars(rates, PAL)
    assert list(fig.data[0].x) == ["loyal", "lapsed"] and list(fig.data[0].y) == [0.5, 0.5]
    march = export("repeat_rate", Filters(start=date(2024, 3, 1)), orders_frame=orders())
    assert march.to_dict("records") == [
        {"segment_id": 1, "customers": 1, "repeat_customers": 1, "repeat_rate": 1.0}
    ]


def test_migration_figures_add_up() -> None:
    moves = pd.DataFrame(
        {
            "from_segment": [-1, 1, 1, 2],
            "to_segment": [2, 1, 2, -1],
            "customers": [5, 7, 3, 1],
            "gross_revenue": [50.0, 70.0, 30.0, 10.0],
        }
    )
    sankey = charts.migration_sankey(moves, PAL, PAL)
    labels = list(sankey.data[0].node.label)
    assert labels[0] == "loyal" and "New customers" in labels and labels[-1].startswith("Gone")
    assert sum(sankey.data[0].link.value) == 16
    by_revenue = charts.migration_sankey(moves, PAL, PAL, "gross_revenue")
    assert sum(by_revenue.data[0].link.value) == 160.0
    matrix = charts.migration_matrix(moves, PAL, PAL)
    assert list(matrix.data[0].y) == ["loyal", "lapsed", "New customers"]
    assert matrix.data[0].z.tolist() == [[0, 0, 1], [3, 7, 0], [5, 0, 0]]


def test_kpi_comparison_uses_the_period_before() -> None:
    assert previous_period(date(2024, 3, 1), date(2024, 3, 31)) == (
        date(2024, 1, 30),
        date(2024, 2, 29),
    )
    cmp = export(
        "kpi_comparison",
        Filters(start=date(2024, 2, 1), end=date(2024, 3, 31)),
        orders_frame=orders(),
        info=window(date(2024, 1, 1), date(2024, 3, 31)),
    ).set_index("metric")
    assert cmp.loc["orders", "current"] == 3 and cmp.loc["orders", "previous"] == 3
    assert cmp.loc["customers", "change"] == pytest.approx(0.0)
    assert cmp.loc["gross_revenue", "previous"] == 160.0
    assert cmp.loc["gross_revenue", "difference"] == pytest.approx(190.0)


def test_scores_and_snapshot_history() -> None:
    table = pd.DataFrame(
        {"k": [3, 2], "silhouette": [0.5, 0.4], "inertia": [9.0, 12.0], "davies_bouldin": [1, 1]}
    )
    scores = export(
        "scores", scores_frame=table, info=window(date(2024, 1, 1), date(2024, 3, 31), k=3)
    )
    assert list(scores["k"]) == [2, 3] and list(scores["chosen"]) == [False, True]
    fig = charts.model_scores(scores)
    assert list(fig.data[1].x) == [3] and list(fig.data[1].text) == ["chosen k=3"]


def test_empty_frames_draw_an_explanation_not_an_error() -> None:
    empty = pd.DataFrame(
        columns=[
            "segment_id",
            "period",
            "orders",
            "gross_revenue",
            "revenue_share",
            "from_segment",
            "to_segment",
            "customers",
        ]
    )
    for fig in (
        charts.segment_shares(empty, PAL),
        charts.aov_boxes(empty, PAL),
        charts.migration_matrix(empty, PAL, PAL),
        charts.migration_sankey(empty, PAL, PAL),
        charts.revenue_share(empty, PAL),
    ):
        assert fig.layout.annotations and fig.data == ()
