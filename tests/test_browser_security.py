"""In headless Chromium, under the app's Content-Security-Policy: charts draw, script in data
stays text, and the console reports no blocked script or style."""

from __future__ import annotations

from pathlib import Path

import dash
import pytest
from dash import dcc, html
from selenium.webdriver.common.by import By

from db.importer import import_file
from tests.conftest import serve
from tests.helpers import browser_errors, csp_violations, submit_login
from tests.refitting import refit

pytestmark = pytest.mark.browser

HOOK = "<img src=x onerror=\"window.__xss='name'\">"
DATA_HOOK = "<script>window.__xss='data'</script>"


def chart_page() -> html.Div:
    return html.Div(
        [
            dcc.Graph(
                id="zz-bars",
                figure={
                    "data": [
                        {"type": "bar", "x": ["a", "b", "c"], "y": [3, 1, 2], "name": DATA_HOOK},
                        {"type": "scatter", "x": ["a", "b", "c"], "y": [1, 2, 3]},
                    ],
                    "layout": {"title": {"text": HOOK}},
                },
            ),
            dcc.Graph(
                id="zz-pie",
                figure={"data": [{"type": "pie", "labels": [DATA_HOOK, "x"], "values": [1, 2]}]},
            ),
        ]
    )


def test_charts_and_hostile_text_under_the_csp(  # type: ignore[no-untyped-def]
    dash_duo, tmp_path: Path, sqlite_engine
) -> None:
    from db.models import SegmentLabel
    from db.session import session_scope
    from tests.test_security import build_app

    rows = [
        f'"{DATA_HOOK}{i}",o{i}{j},2024-0{j + 1}-05,{10 + i},"{HOOK}","{DATA_HOOK}"'
        for i in range(6)
        for j in range(1 + i % 3)
    ]
    path = tmp_path / "hostile.csv"
    path.write_text("customer_id,order_id,ordered_at,amount,category,country\n" + "\n".join(rows))
    import_file(sqlite_engine, path)
    outcome = refit(sqlite_engine, k=2)
    with session_scope(sqlite_engine) as db:
        db.add(SegmentLabel(segment_id=outcome.segments[0]["segment_id"], name=HOOK))
    app = build_app(tmp_path, sqlite_engine)
    dash.register_page("tests.chart_page", path="/zz-charts", layout=chart_page)
    try:
        serve(dash_duo, app)
        submit_login(dash_duo, "analyst@example.com")
        dash_duo.wait_for_element("#f-segments", timeout=20).click()
        dash_duo.wait_for_contains_text("body", HOOK, timeout=10)  # the options, as text
        driver = dash_duo.driver
        assert driver.execute_script("return window.__xss === undefined")
        assert not driver.find_elements(By.CSS_SELECTOR, "img[src='x']")
        driver.get(dash_duo.server.url + "/zz-charts")
        dash_duo.wait_for_element("#zz-bars .main-svg", timeout=20)
        dash_duo.wait_for_element("#zz-pie .main-svg", timeout=20)
        assert len(driver.find_elements(By.CSS_SELECTOR, "#zz-bars .point")) == 6  # 3 bars, 3 dots
        assert HOOK in dash_duo.find_element("#zz-bars .gtitle").text
        assert driver.execute_script("return window.__xss === undefined")
        errors = browser_errors(dash_duo)
        assert [e for e in errors if "csp" in e.lower() or "Refused" in e] == []
        assert csp_violations(dash_duo) == []
    finally:
        dash.page_registry.pop("tests.chart_page", None)
