"""In headless Chromium: log in through the form and see the Overview KPIs of the sample."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By

from db.importer import import_file
from tests.conftest import SAMPLE, serve
from tests.helpers import browser_login, csp_violations, submit_login, wait_until
from tests.refitting import refit

pytestmark = pytest.mark.browser


def test_login_through_the_form_and_see_the_sample_kpis(dash_duo, app, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    import_file(sqlite_engine, SAMPLE)
    refit(sqlite_engine, k_max=4)
    serve(dash_duo, app)
    submit_login(dash_duo, "viewer@example.com", path="/")
    dash_duo.wait_for_text_to_equal("#kpi-customers", "297", timeout=20)
    assert dash_duo.find_element("#kpi-orders").text == "1,286"
    assert dash_duo.find_element("#kpi-returns").text == "275"
    assert dash_duo.find_element("#kpi-aov").text == "593.08"
    assert dash_duo.find_element("#kpi-gross_revenue").text == "762,694.99"
    assert dash_duo.find_element("#kpi-repeat_rate").text == "64.6%"
    assert not dash_duo.driver.find_elements(By.CSS_SELECTOR, "input[type=password]")
    assert csp_violations(dash_duo) == []  # Dash runs under the Content-Security-Policy


FINGERPRINT = """
const gd = document.querySelector('#' + arguments[0] + ' .js-plotly-plot');
if (!gd || !gd.data) return null;  // not drawn yet; [] once drawn empty
const num = v => v == null ? [] : Array.from(v, x => Array.isArray(x) ? x.join(',') : String(x));
return JSON.stringify(gd.data.map(t => [t.name, num(t.x), num(t.y), num(t.z),
  t.link ? num(t.link.value) : []]));
"""
DRAWN_REVENUE = """
const gd = document.querySelector('#sales-time .js-plotly-plot');
return gd._fullData.filter(t => (t.yaxis || 'y') === 'y')
  .reduce((s, t) => s + Array.from(t.y).reduce((a, b) => a + b, 0), 0);
"""


def _fingerprint(dash_duo, graph: str) -> str | None:  # type: ignore[no-untyped-def]
    return dash_duo.driver.execute_script(FINGERPRINT, graph)  # type: ignore[no-any-return]


BUSY = "return document.querySelector('[data-dash-is-loading=true]') !== null"


def _settled(dash_duo, graph: str, differs_from: str | None = None) -> str:  # type: ignore[no-untyped-def]
    """The chart's data once drawn, unchanged for a second and nothing loading."""
    import time

    seen: list[str | None] = []

    def stable() -> str | None:
        now = _fingerprint(dash_duo, graph)
        busy = dash_duo.driver.execute_script(BUSY)
        seen.append(None if busy or now is None or now == differs_from else now)
        last = seen[-5:]
        if len(last) == 5 and last[0] is not None and all(v == last[0] for v in last):
            return last[0]
        time.sleep(0.05)
        return None

    return wait_until(stable, timeout=30)  # type: ignore[no-any-return]


def test_filters_change_every_page_and_links_reproduce_the_view(  # type: ignore[no-untyped-def]
    dash_duo, app, dashboard
) -> None:
    from selenium.webdriver.common.keys import Keys

    serve(dash_duo, app)
    browser_login(dash_duo, "analyst@example.com")
    base = dash_duo.server.url
    for path, graph, has_dates in (
        ("/", "overview-trend", True),
        ("/segments", "segments-shares", False),
        ("/retention", "retention-heatmap", True),
        ("/sales", "sales-time", True),
        ("/migration", "migration-matrix", False),
    ):
        dash_duo.driver.get(base + path)
        before = _settled(dash_duo, graph)
        if has_dates:
            dash_duo.find_element("#f-preset-90").click()
            before = _settled(dash_duo, graph, differs_from=before)
            wait_until(lambda: "start=2011-09-11" in dash_duo.driver.current_url)
        dash_duo.select_dcc_dropdown("#f-segments", index=0)
        dash_duo.find_element("body").send_keys(Keys.ESCAPE)
        after = _settled(dash_duo, graph, differs_from=before)
        wait_until(lambda: "segment=" in dash_duo.driver.current_url)
        # The address now holds the view: opening it again draws the same chart.
        shared = dash_duo.driver.current_url
        dash_duo.driver.get("about:blank")
        dash_duo.driver.get(shared)
        assert _settled(dash_duo, graph) == after, path
    # Another snapshot: the range follows its data window, the address says so.
    dash_duo.driver.get(base + "/")
    _settled(dash_duo, "overview-trend")
    dash_duo.select_dcc_dropdown("#f-snapshot", index=1)
    wait_until(lambda: "snapshot=1" in dash_duo.driver.current_url)
    wait_until(lambda: "end=2011-09-30" in dash_duo.driver.current_url)
    assert "as of 2011-09-30" in dash_duo.find_element("#f-asof").text
    assert csp_violations(dash_duo) == []


def test_a_click_on_a_segment_filters_and_a_download_equals_the_chart(  # type: ignore[no-untyped-def]
    dash_duo, app, dashboard, sqlite_engine
) -> None:
    import io
    import os
    import time
    from datetime import date

    import pandas as pd
    from selenium.webdriver.common.action_chains import ActionChains

    from analytics.exports import Filters
    from tests.conftest import export_frame

    serve(dash_duo, app)
    browser_login(dash_duo, "analyst@example.com")
    base = dash_duo.server.url
    dash_duo.driver.get(base + "/segments")
    wait_until(lambda: _fingerprint(dash_duo, "segments-shares"))
    bars = dash_duo.driver.find_elements(By.CSS_SELECTOR, "#segments-shares .point path")
    # The top bar is the segment with the most revenue; Plotly wants a real pointer click.
    ActionChains(dash_duo.driver).move_to_element(bars[-1]).click().perform()
    wait_until(lambda: "segment=" in dash_duo.driver.current_url)
    segment = int(dash_duo.driver.current_url.split("segment=")[1].split("&")[0])
    top = int(export_frame(sqlite_engine, "segments", Filters())[0]["segment_id"].iloc[0])
    assert segment == top
    # The filter follows to the Sales page through the navbar link.
    dash_duo.find_element("""a[id='{"page":"/sales","type":"nav-link"}']""").click()
    _settled(dash_duo, "sales-time")
    assert f"segment={top}" in dash_duo.driver.current_url
    drawn = dash_duo.driver.execute_script(DRAWN_REVENUE)
    dash_duo.find_element("""button[id='{"chart":"sales-time","type":"dl-csv"}']""").click()
    target = os.path.join(dash_duo.download_path, "sales_snapshot2.csv")
    wait_until(lambda: os.path.exists(target) and os.path.getsize(target) > 0)
    time.sleep(0.3)
    with open(target, encoding="utf-8") as fh:
        text = fh.read()
    got = pd.read_csv(io.StringIO(text), comment="#")
    assert set(got["segment_id"]) == {top}
    assert got["gross_revenue"].sum() == pytest.approx(drawn)
    expected, _ = export_frame(
        sqlite_engine, "sales", Filters(date(2010, 12, 1), date(2011, 12, 9), (top,))
    )
    assert got["gross_revenue"].sum() == pytest.approx(expected["gross_revenue"].sum())
    assert f"# filter_segments: {top}" in text
