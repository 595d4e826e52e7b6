"""The metric definitions of docs/METRICS.md on small hand-built cases."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from analytics.metrics import kpis


def orders(*rows: tuple[str, str, str, float]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["customer_id", "order_id", "ordered_at", "total"])
    frame["ordered_at"] = pd.to_datetime(frame["ordered_at"])
    return frame


def test_returns_count_in_net_revenue_only() -> None:
    figures = kpis(
        orders(
            ("a", "1", "2024-01-01", 100.0),
            ("a", "2", "2024-01-03", -30.0),
            ("b", "3", "2024-01-02", 0.0),
        )
    )
    assert (figures.customers, figures.orders, figures.returns) == (1, 1, 2)
    assert (figures.gross_revenue, figures.net_revenue, figures.aov) == (100.0, 70.0, 100.0)
    assert figures.repeat_rate == 0.0


def test_end_day_is_inclusive_and_start_day_too() -> None:
    data = orders(
        ("a", "1", "2024-01-01T00:00:00", 10.0),
        ("a", "2", "2024-01-31T23:59:59", 20.0),
        ("b", "3", "2024-02-01T00:00:00", 40.0),
    )
    figures = kpis(data, date(2024, 1, 1), date(2024, 1, 31))
    assert (figures.orders, figures.gross_revenue, figures.repeat_rate) == (2, 30.0, 1.0)


def test_active_customers_are_those_with_an_order_in_the_last_days_of_the_period() -> None:
    data = orders(
        ("a", "1", "2024-01-01", 10.0),
        ("b", "2", "2024-03-31", 10.0),
        ("c", "3", "2024-01-02", 10.0),
    )
    assert kpis(data, date(2024, 1, 1), date(2024, 3, 31), active_days=90).active_customers == 2
    assert kpis(data, date(2024, 1, 1), date(2024, 3, 31), active_days=89).active_customers == 1


def test_empty_period_has_no_aov() -> None:
    figures = kpis(orders(("a", "1", "2024-01-01", 10.0)), date(2025, 1, 1), date(2025, 1, 2))
    assert figures.orders == 0 and figures.aov is None and figures.repeat_rate is None


@pytest.mark.parametrize("total", [0.0, -5.0])
def test_a_customer_with_only_returns_is_not_a_customer(total: float) -> None:
    assert kpis(orders(("a", "1", "2024-01-01", total))).customers == 0
