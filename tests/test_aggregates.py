"""The snapshot aggregates on small hand-built orders."""

from __future__ import annotations

from datetime import date

import pandas as pd

from analytics.aggregates import migration, rollup


def test_rollup_counts_orders_customers_returns_and_revenue() -> None:
    orders = pd.DataFrame(
        [
            ("a", 1, date(2024, 1, 1), 10.0),
            ("a", 1, date(2024, 1, 1), 5.0),  # a's second order that day: one customer
            ("b", 1, date(2024, 1, 1), -3.0),  # a return only: no customer, no gross
            ("a", 1, date(2024, 1, 2), 7.0),
            ("c", 2, date(2024, 1, 2), 20.0),
        ],
        columns=["customer_id", "segment_id", "day", "total"],
    )
    out = rollup(orders, ["day", "segment_id"])
    jan1 = out.loc[(date(2024, 1, 1), 1)]
    assert (jan1["orders"], jan1["customers"], jan1["returns"]) == (2, 1, 1)
    assert (jan1["gross_revenue"], jan1["net_revenue"]) == (15.0, 12.0)
    jan2 = out.loc[(date(2024, 1, 2), 1)]
    assert (jan2["orders"], jan2["customers"], jan2["returns"]) == (1, 1, 0)
    assert out.loc[(date(2024, 1, 2), 2), "gross_revenue"] == 20.0
    by_segment = rollup(orders, ["segment_id"])
    assert by_segment.loc[1, "customers"] == 1 and by_segment.loc[1, "orders"] == 3


def test_migration_counts_new_gone_and_moved_customers() -> None:
    prev = pd.DataFrame({"customer_id": ["a", "b"], "segment_id": [1, 1], "monetary": [5.0, 9.0]})
    cur = pd.DataFrame({"customer_id": ["a", "c"], "segment_id": [2, 2], "monetary": [6.0, 4.0]})
    out = migration(prev, cur).set_index(["from_segment", "to_segment"])
    assert out.loc[(1, 2), "customers"] == 1 and out.loc[(1, 2), "gross_revenue"] == 6.0
    assert out.loc[(1, -1), "customers"] == 1 and out.loc[(1, -1), "gross_revenue"] == 9.0
    assert out.loc[(-1, 2), "customers"] == 1
