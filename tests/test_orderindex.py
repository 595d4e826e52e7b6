"""The fast path (analytics/orderindex.py) gives the reference figures, on random shops.

The reference: the pandas definitions in tests/reference.py (`analytics.metrics.kpis`,
`analytics.aggregates.rollup`); the fast path: the registered exports over an `OrderIndex`.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from analytics import exports, orderindex
from analytics.exports import Filters, SnapshotInfo
from analytics.orderindex import OrderIndex, period_end, period_start
from tests import reference as ref
from tests.reference import FrameSources


def fast(name: str, src: FrameSources, f: Filters) -> pd.DataFrame:
    return exports.compute(name, src, f)[0]


def shop(seed: int, n: int = 3_000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    customers = rng.integers(0, 400, n)
    segment_of = rng.integers(1, 5, 400)
    days = pd.Timestamp("2023-11-20") + pd.to_timedelta(rng.integers(0, 500, n), unit="D")
    totals = np.round(rng.lognormal(3, 1, n), 2)
    totals[rng.random(n) < 0.08] *= -1  # returns
    totals[rng.random(n) < 0.01] = 0.0
    frame = pd.DataFrame(
        {
            "customer_id": [f"c{c:04d}" for c in customers],
            "segment_id": segment_of[customers],
            "day": days,
            "total": totals,
        }
    )
    only_returns = pd.DataFrame(  # a segment whose one customer only returned goods
        {
            "customer_id": "r0001",
            "segment_id": 9,
            "day": pd.to_datetime(["2024-01-03", "2024-06-30"]),
            "total": [-12.5, 0.0],
        }
    )
    return pd.concat([frame, only_returns], ignore_index=True)


def ranges(rng: np.random.Generator) -> list[tuple[date | None, date | None]]:
    out: list[tuple[date | None, date | None]] = [(None, None)]
    for _ in range(6):  # random ranges, beside the edge cases below
        a = date(2023, 11, 1) + timedelta(days=int(rng.integers(0, 540)))
        b = a + timedelta(days=int(rng.integers(0, 200)))
        out.append((a, b))
    out += [
        (date(2024, 3, 1), None),
        (None, date(2024, 2, 29)),
        (date(2024, 5, 5), date(2024, 5, 5)),
        # The presets: ranges that reach the last order day (2025-04-03) or start at the first.
        (date(2025, 3, 5), date(2025, 4, 3)),
        (date(2024, 4, 4), date(2030, 1, 1)),
        (date(2023, 11, 20), date(2024, 6, 1)),
        (date(2023, 1, 1), date(2023, 11, 20)),
    ]
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kpis_sales_and_rates_equal_the_reference(seed: int) -> None:
    orders = shop(seed)
    src = FrameSources(orders, info=SnapshotInfo(1, None, None, None, None, None, 30))
    rng = np.random.default_rng(seed)
    for start, end in ranges(rng):
        for segs in ((), (2,), (1, 3), (4, 99), (9,)):
            for granularity in ("day", "week", "month"):
                f = Filters(start, end, segs, granularity)
                got, want = fast("sales", src, f), ref.sales(orders, f)
                pd.testing.assert_frame_equal(got, want, check_dtype=False, obj=str(f))
            f = Filters(start, end, segs)
            pd.testing.assert_frame_equal(
                fast("kpis", src, f), ref.kpis(orders, f, 30), check_dtype=False
            )
            pd.testing.assert_frame_equal(
                fast("repeat_rate", src, f), ref.repeat_rate(orders, f), check_dtype=False
            )
            pd.testing.assert_frame_equal(
                fast("aov_distribution", src, f),
                ref.aov_distribution(orders, f),
                check_dtype=False,
            )


@pytest.mark.parametrize("ties", [False, True])
def test_order_value_distribution_by_rank_search(
    monkeypatch: pytest.MonkeyPatch, ties: bool
) -> None:
    """The order statistics found by the binary search over month runs (what a range of
    `orderindex.DIRECT` orders or more takes) equal np.quantile over the range's totals."""
    monkeypatch.setattr(orderindex, "DIRECT", 0)
    orders = shop(7, 6_000)
    if ties:  # many equal totals: a few distinct values only
        orders["total"] = np.sign(orders["total"]) * np.ceil(orders["total"].abs() / 20) * 20
    src = FrameSources(orders)
    for start, end in ranges(np.random.default_rng(7)):
        for segs in ((), (3,), (1, 2)):
            f = Filters(start, end, segs)
            pd.testing.assert_frame_equal(
                fast("aov_distribution", src, f),
                ref.aov_distribution(orders, f),
                check_dtype=False,
                obj=str(f),
            )


def test_customer_orders_and_empty_ranges() -> None:
    orders = shop(4)
    src = FrameSources(orders)
    f = Filters(customer="c0007")
    got, want = fast("customer_orders", src, f), ref.customer_orders(orders, f)
    assert len(got) > 1
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    nobody = fast("customer_orders", src, Filters(customer="nobody"))
    pd.testing.assert_frame_equal(
        nobody, ref.customer_orders(orders, Filters(customer="nobody")), check_dtype=False
    )
    assert nobody.empty
    none = Filters(date(2030, 1, 1), date(2030, 2, 1))
    assert fast("kpis", src, none).iloc[0]["customers"] == 0
    assert fast("sales", src, none).empty and fast("aov_distribution", src, none).empty


def test_a_customer_in_two_segments_is_refused() -> None:
    orders = shop(5)
    orders.loc[orders.index[1:], "customer_id"] = orders["customer_id"].iloc[0]
    orders.loc[orders.index[1], "segment_id"] = orders["segment_id"].iloc[0] % 4 + 1
    with pytest.raises(ValueError, match="two segments"):
        OrderIndex.build(orders)


def test_periods() -> None:
    days = np.array([(date(2024, 2, d) - date(1970, 1, 1)).days for d in (1, 4, 5, 29)])
    monday = period_start(days, "week")
    assert [str(np.datetime64(int(d), "D")) for d in monday] == [
        "2024-01-29",
        "2024-01-29",
        "2024-02-05",
        "2024-02-26",
    ]
    month = period_start(days, "month")
    assert {str(np.datetime64(int(d), "D")) for d in month} == {"2024-02-01"}
    assert str(np.datetime64(int(period_end(month[:1], "month")[0]), "D")) == "2024-02-29"
