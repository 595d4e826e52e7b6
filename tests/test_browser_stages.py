"""In headless Chromium, as users see them: the Segments page's stage grid and segments × stages,
the Customers page's stage filter (kept in the address), and an admin setting k on the Model page
and previewing another k. The `dashboard` fixture: the Online Retail sample, two snapshots."""

from __future__ import annotations

from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from analytics import rfm
from analytics.exports import Filters
from db.k_settings import get_k_setting
from tests.conftest import export_frame, serve
from tests.helpers import browser_login, csp_violations, wait_until

pytestmark = pytest.mark.browser

STAGE_FILTER = """[id='{"name":"stage","type":"page-filter"}']"""
BUSY = "return document.querySelector('[data-dash-is-loading=true]') !== null"


CELLS = """return Array.from(document.querySelectorAll('.stage-grid [data-stage]'))
  .map(c => [c.dataset.stage, c.innerText]);"""
MAIN = """const c = document.querySelector('.stage-grid [data-stage="' + arguments[0] + '"]');
return c && c.querySelector('.stage-main') && c.querySelector('.stage-main').innerText;"""


def _cells(dash_duo: Any) -> dict[str, str]:
    """The stage grid's cells as shown: stage -> its text (read in one go: React may redraw the
    grid between two reads)."""
    return dict(dash_duo.driver.execute_script(CELLS))


def _idle(dash_duo: Any) -> bool:
    return not dash_duo.driver.execute_script(BUSY)


def test_stage_grid_and_segments_by_stages(dash_duo, app, dashboard, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    serve(dash_duo, app)
    browser_login(dash_duo, "viewer@example.com")
    dash_duo.driver.get(dash_duo.server.url + "/segments")
    cells = wait_until(lambda: len(_cells(dash_duo)) == 11 and _cells(dash_duo))
    assert list(cells) == list(rfm.STAGES)
    stages = export_frame(sqlite_engine, "lifecycle", Filters())[0].set_index("stage")
    lost = stages.loc["Lost"]
    assert f"{int(lost['customers'])} customers ({lost['share']:.0%})" in cells["Lost"]
    assert lost["action"] in cells["Lost"]
    # The numbers behind the action: in the tooltip of its ?.
    badge = dash_duo.driver.find_element(By.CSS_SELECTOR, "[data-stage='Lost'] .action [title]")
    assert badge.get_attribute("title") == f"Why: {lost['action_why']}"
    # Champions sits top right of the R x F map, Lost bottom left.
    box = {
        s: dash_duo.driver.find_element(By.CSS_SELECTOR, f'[data-stage="{s}"]').rect
        for s in ("Champions", "Lost")
    }
    assert box["Champions"]["x"] > box["Lost"]["x"] and box["Champions"]["y"] < box["Lost"]["y"]
    matrix = wait_until(
        lambda: dash_duo.driver.execute_script(
            "const g = document.querySelector('#segments-stage-matrix .js-plotly-plot');"
            "return g && g.data && g.data[0] && g.data[0].y && g.data[0].y.length;"
        )
    )
    assert matrix == len(export_frame(sqlite_engine, "segments", Filters())[0])
    # Shade by revenue: the cells lead with revenue.
    dash_duo.driver.execute_script(
        "document.querySelector(\"#segments-stage-measure input[value='gross_revenue']\").click()"
    )
    revenue = f"{lost['gross_revenue']:,.2f} revenue ({lost['revenue_share']:.0%})"
    wait_until(lambda: dash_duo.driver.execute_script(MAIN, "Lost") == revenue)
    assert csp_violations(dash_duo) == []


def test_member_list_filters_by_stage_from_the_address(
    dash_duo, app, dashboard, sqlite_engine
) -> None:  # type: ignore[no-untyped-def]
    serve(dash_duo, app)
    browser_login(dash_duo, "analyst@example.com")
    dash_duo.driver.get(dash_duo.server.url + "/customers")
    dash_duo.wait_for_contains_text("#members-count", "297 customers in all segments", timeout=20)
    dash_duo.select_dcc_dropdown(STAGE_FILTER, value="Lost")
    dash_duo.find_element("body").send_keys(Keys.ESCAPE)
    lost = export_frame(sqlite_engine, "members", Filters(stages=("Lost",)))[0]
    expected = f"{len(lost)} customers in all segments; stage Lost."
    dash_duo.wait_for_text_to_equal("#members-count", expected, timeout=20)
    wait_until(lambda: "stage=Lost" in dash_duo.driver.current_url)
    column = dash_duo.driver.find_elements(
        By.CSS_SELECTOR, "#members-table td[data-dash-column='lifecycle_stage']"
    )
    assert column and {c.text for c in column} == {"Lost"}
    # The address holds the view: opened again, the list is the same.
    shared = dash_duo.driver.current_url
    dash_duo.driver.get("about:blank")
    dash_duo.driver.get(shared)
    dash_duo.wait_for_text_to_equal("#members-count", expected, timeout=20)
    assert "Lost" in dash_duo.find_element(STAGE_FILTER).text
    assert csp_violations(dash_duo) == []


def test_admin_sets_k_and_previews_another(dash_duo, app, dashboard, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    serve(dash_duo, app)
    browser_login(dash_duo, "admin@example.com")
    dash_duo.driver.get(dash_duo.server.url + "/model")
    dash_duo.wait_for_contains_text("#model-k-reason", "Why this k:", timeout=20)
    for field, value in (("#k-min", "3"), ("#k-max", "6")):
        box = dash_duo.find_element(field)
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(value)
    # The k card sits below the predictions' cards, which may still be drawing (the page moves
    # under the pointer): click Save as a script does.
    dash_duo.driver.execute_script("document.querySelector('#k-save').click()")
    dash_duo.wait_for_text_to_equal(
        "#k-save-message", "Saved: k chosen by silhouette in 3–6.", timeout=20
    )
    assert "in 3–6: an admin's setting in the app, set by admin@example.com" in (
        dash_duo.find_element("#k-next").text
    )
    stored = get_k_setting(sqlite_engine)
    assert stored is not None and (stored["k_min"], stored["k_max"]) == (3, 6)
    # Preview k = 6 (not the published 3): its clusters, nothing published.
    wait_until(lambda: dash_duo.driver.find_elements(By.CSS_SELECTOR, "#preview-table tbody tr"))
    dash_duo.driver.execute_script(
        "document.querySelector(\"#preview-k input[value='6']\").click()"
    )
    previews = export_frame(sqlite_engine, "k_previews", Filters())[0]
    six = list(previews.loc[previews["k"] == 6, "name"])

    def names() -> list[str]:
        cells = dash_duo.driver.find_elements(
            By.CSS_SELECTOR, "#preview-table td[data-dash-column='name']"
        )
        return [c.text for c in cells]

    wait_until(lambda: names() == six and _idle(dash_duo))
    assert len(six) == 6
    assert csp_violations(dash_duo) == []


def test_viewers_see_the_curve_and_the_reason_not_the_form(dash_duo, app, dashboard) -> None:  # type: ignore[no-untyped-def]
    serve(dash_duo, app)
    browser_login(dash_duo, "viewer@example.com")
    dash_duo.driver.get(dash_duo.server.url + "/model")
    dash_duo.wait_for_contains_text("#model-k-reason", "k = 3 was fixed", timeout=20)
    assert not dash_duo.driver.find_elements(By.CSS_SELECTOR, "#k-save, #preview-k")
