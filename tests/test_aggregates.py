"""The snapshot aggregates on small hand-built orders."""

from __future__ import annotations

from datetime import date

import pandas as pd

from analytics.aggregates import migration, sales_daily


def test_sales_daily_counts_orders_customers_new_customers_and_returns() -> None:
    orders = pd.DataFrame(
        [
            ("a", 1, "2024-01-01 09:00", 10.0),  # a's first order: new on 01-01
            ("a", 1, "2024-01-01 18:00", 5.0),
            ("b", 1, "2024-01-01 10:00", -3.0),  # a return only
            ("a", 1, "2024-01-02 10:00", 7.0),
            ("c", 2, "2024-01-02 11:00", 20.0),  # c new on 01-02
        ],
        columns=["customer_id", "segment_id", "ordered_at", "total"],
    )
    orders["ordered_at"] = pd.to_datetime(orders["ordered_at"])
    out = sales_daily(orders).set_index(["day", "segment_id"])
    jan1 = out.loc[(date(2024, 1, 1), 1)]
    assert (jan1["orders"], jan1["customers"], jan1["new_customers"], jan1["returns"]) == (
        2,
        1,
        1,
        1,
    )
    assert (jan1["gross_revenue"], jan1["net_revenue"]) == (15.0, 12.0)
    jan2 = out.loc[(date(2024, 1, 2), 1)]
    assert (jan2["orders"], jan2["new_customers"]) == (1, 0)
    assert out.loc[(date(2024, 1, 2), 2), "new_customers"] == 1


def test_migration_counts_new_gone_and_moved_customers() -> None:
    prev = pd.DataFrame({"customer_id": ["a", "b"], "segment_id": [1, 1], "monetary": [5.0, 9.0]})
    cur = pd.DataFrame({"customer_id": ["a", "c"], "segment_id": [2, 2], "monetary": [6.0, 4.0]})
    out = migration(prev, cur).set_index(["from_segment", "to_segment"])
    assert out.loc[(1, 2), "customers"] == 1 and out.loc[(1, 2), "gross_revenue"] == 6.0
    assert out.loc[(1, -1), "customers"] == 1 and out.loc[(1, -1), "gross_revenue"] == 9.0
    assert out.loc[(-1, 2), "customers"] == 1
