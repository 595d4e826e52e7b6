"""The snapshot aggregates on small hand-built orders."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest
from sqlalchemy import Engine

from analytics.aggregates import migration, retention, rollup
from analytics.exports import Filters
from db.importer import import_file
from tests.conftest import SAMPLE, export_frame
from tests.refitting import refit


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


def test_retention_has_a_row_for_every_month_up_to_the_data_end_zeros_included() -> None:
    orders = pd.DataFrame(
        [
            ("a", 1, "2024-01-05", 10.0),  # cohort 2024-01, back in March only
            ("a", 1, "2024-03-02", 4.0),
            ("b", 1, "2024-01-20", 6.0),  # cohort 2024-01, never back
            ("c", 2, "2024-02-11", 8.0),  # cohort 2024-02, never back
            ("c", 2, "2024-04-30", -8.0),  # a return: the data ends in April
        ],
        columns=["customer_id", "segment_id", "ordered_at", "total"],
    ).assign(ordered_at=lambda f: pd.to_datetime(f["ordered_at"]))
    out = retention(orders).set_index(["cohort", "segment_id", "months_since_first"])
    jan = out.loc[(date(2024, 1, 1), 1)]
    assert list(jan.index) == [0, 1, 2, 3]
    assert list(jan["customers"]) == [2, 0, 1, 0] and list(jan["revenue"]) == [16.0, 0, 4.0, 0]
    assert set(jan["cohort_size"]) == {2}
    feb = out.loc[(date(2024, 2, 1), 2)]
    assert list(feb.index) == [0, 1, 2] and list(feb["customers"]) == [1, 0, 0]
    assert (date(2024, 1, 1), 2) not in out.droplevel(2).index  # no cohort of nobody


def _months(cohort: pd.Series, end: date) -> pd.Series:
    """Months from each cohort to the end month, both included."""
    c = pd.to_datetime(cohort)
    return (end.year - c.dt.year) * 12 + (end.month - c.dt.month) + 1


def test_the_retention_export_of_a_snapshot_has_every_cell(sqlite_engine: Engine) -> None:
    import_file(sqlite_engine, SAMPLE)
    refit(sqlite_engine, k=3)
    zeros = 0
    for f, end in (
        (Filters(), date(2011, 12, 9)),  # the data end
        (Filters(end=date(2011, 6, 15)), date(2011, 6, 15)),  # a range ending inside the data
        (Filters(start=date(2011, 3, 1), end=date(2011, 9, 30), split_by_segment=True), None),
    ):
        ret, _ = export_frame(sqlite_engine, "retention", f, None)
        groups = ["cohort", "segment_id"] if f.split_by_segment else ["cohort"]
        g = ret.groupby(groups)["months_since_first"]
        expected = _months(g.size().index.get_level_values("cohort").to_series(), end or f.end)
        assert list(g.size()) == list(expected), f  # months 0 .. end, each once
        assert (g.max() + 1 == g.size()).all() and (g.min() == 0).all()
        zeros += int((ret["customers"] == 0).sum())
        assert set(ret.loc[ret["customers"] == 0, "retention"]) <= {0.0}
        assert (ret["cohort_size"] > 0).all() and ret["retention"].notna().all()
    assert zeros > 0  # real zero cells, shown as 0%
    # The figures of tests/data/README.md still hold.
    ret, _ = export_frame(sqlite_engine, "retention", Filters(), None)
    dec = ret[ret["cohort"].astype(str) == "2010-12-01"].set_index("months_since_first")
    assert dec.loc[0, "cohort_size"] == 56 and dec.loc[0, "retention"] == 1.0
    assert dec.loc[1, "retention"] == pytest.approx(0.357143, abs=1e-6)
