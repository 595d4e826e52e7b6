"""In headless Chromium: log in through the form and see the Overview KPIs of the sample."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By

from db.importer import import_file
from db.refit import refit
from tests.conftest import PASSWORD, SAMPLE
from tests.helpers import csp_violations

pytestmark = pytest.mark.browser


def test_login_through_the_form_and_see_the_sample_kpis(dash_duo, app, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    import_file(sqlite_engine, SAMPLE)
    refit(sqlite_engine, k_max=4)
    dash_duo.start_server(app, navigate=False)
    dash_duo.driver.get(dash_duo.server.url + "/")
    dash_duo.wait_for_element("#email", timeout=10).send_keys("viewer@example.com")
    dash_duo.find_element("#password").send_keys(PASSWORD)
    dash_duo.find_element("#login-submit").click()
    dash_duo.wait_for_text_to_equal("#kpi-customers", "297", timeout=20)
    assert dash_duo.find_element("#kpi-orders").text == "1,286"
    assert dash_duo.find_element("#kpi-returns").text == "275"
    assert dash_duo.find_element("#kpi-aov").text == "593.08"
    assert dash_duo.find_element("#kpi-gross_revenue").text == "762,694.99"
    assert dash_duo.find_element("#kpi-repeat_rate").text == "64.6%"
    assert not dash_duo.driver.find_elements(By.CSS_SELECTOR, "input[type=password]")
    assert csp_violations(dash_duo) == []  # Dash runs under the Content-Security-Policy
