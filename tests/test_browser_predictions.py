"""In headless Chromium, as an analyst sees it: the Customers page's member list sorted by churn
risk over the whole list (a click on the column's arrows), then narrowed by the "high value,
high risk" switch (kept in the address); the Overview's revenue at risk. The `dashboard`
fixture (the Online Retail sample, two snapshots) with predictions written into the latest
snapshot (tests/predicted.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from selenium.webdriver.common.by import By

from analytics.exports import Filters
from tests.conftest import export_frame, serve
from tests.helpers import browser_login, csp_violations, wait_until
from tests.predicted import attach_test_predictions

pytestmark = pytest.mark.browser

RISK_SWITCH = """[id='{"name":"risk","type":"page-filter"}'] input"""
SORT_RISK = "#members-table th[data-dash-column='churn_risk'] .column-header--sort"
COLUMN = """return Array.from(document.querySelectorAll(
  "#members-table td[data-dash-column='" + arguments[0] + "']")).map(c => c.innerText);"""
BUSY = "return document.querySelector('[data-dash-is-loading=true]') !== null"


def _column(dash_duo: Any, column: str) -> list[str]:
    return list(dash_duo.driver.execute_script(COLUMN, column))


def _shows(dash_duo: Any, ids: list[str]) -> bool:
    """The table shows these customers, in this order, and nothing is loading."""
    return _column(dash_duo, "customer_id") == ids and not dash_duo.driver.execute_script(BUSY)


def test_member_list_sorts_by_churn_risk_and_filters_high_value_high_risk(
    dash_duo, app, dashboard, sqlite_engine
) -> None:  # type: ignore[no-untyped-def]
    preds = attach_test_predictions(sqlite_engine, dashboard[1].snapshot_id)
    members = export_frame(sqlite_engine, "members", Filters())[0]
    serve(dash_duo, app)
    browser_login(dash_duo, "analyst@example.com")
    dash_duo.driver.get(dash_duo.server.url + "/customers")
    dash_duo.wait_for_contains_text("#members-count", "297 customers in all segments", timeout=20)
    assert _column(dash_duo, "customer_id") == list(members["customer_id"].iloc[:25])

    def ranked(frame: pd.DataFrame, descending: bool) -> list[str]:
        order = frame.sort_values("churn_risk", ascending=not descending, kind="stable")
        return list(order["customer_id"].iloc[:25])

    # One click: lowest risk first; two: highest first, over all 297 customers, not one page.
    dash_duo.find_element(SORT_RISK).click()
    wait_until(lambda: _shows(dash_duo, ranked(members, descending=False)))
    dash_duo.find_element(SORT_RISK).click()
    wait_until(lambda: _shows(dash_duo, ranked(members, descending=True)))
    risks = [float(v.rstrip("%")) for v in _column(dash_duo, "churn_risk")]
    assert risks == sorted(risks, reverse=True) and risks[0] == round(
        members["churn_risk"].max() * 100
    )

    # High value, high risk: churn risk >= 70% and 12-month CLV in the top 20%.
    scored = preds[preds["unscored_reason"].isna()]
    threshold = np.quantile(scored["clv_12m"], 0.8)
    chosen = members[(members["churn_risk"] >= 0.7) & (members["clv_12m"] >= threshold)]
    assert 0 < len(chosen) < 25
    dash_duo.driver.execute_script("document.querySelector(arguments[0]).click()", RISK_SWITCH)
    wait_until(lambda: _shows(dash_duo, ranked(chosen, descending=True)))
    count = dash_duo.find_element("#members-count").text
    assert count.startswith(f"{len(chosen)} customers in all segments; high value")
    values = [float(v.replace(",", "")) for v in _column(dash_duo, "clv_12m")]
    assert min(values) >= round(threshold, 2) - 0.01
    wait_until(lambda: "risk=high-value-high-risk" in dash_duo.driver.current_url)

    # The Overview's revenue at risk, as the export says.
    risk = export_frame(sqlite_engine, "revenue_at_risk", Filters())[0].iloc[0]
    dash_duo.driver.get(dash_duo.server.url + "/")
    dash_duo.wait_for_text_to_equal(
        "#risk-revenue_at_risk", f"{risk['revenue_at_risk']:,.2f}", timeout=20
    )
    definition = dash_duo.find_element("#risk-definition").text
    assert "at least 70%" in definition and "no order in the next 90 days" in definition
    assert not dash_duo.driver.find_elements(By.CSS_SELECTOR, ".alert-danger")
    assert csp_violations(dash_duo) == []
