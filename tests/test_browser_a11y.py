"""In headless Chromium: axe-core finds no serious or critical WCAG 2.1 A/AA violation on any page
of the page registry (pages added later included) nor in the states users see — a segment
chosen, a chart's data table open, a customer looked up, a member list, error messages, the admin
forms, the date picker and a dropdown open; and a keyboard alone changes the dates, picks a
segment, opens a chart's data table and downloads the chart. Exclusions: tests/a11y.py, each
explained in docs/ACCESSIBILITY.md.

`CUSTSEG_A11Y_REPORT=FILE` writes the page-by-page table of docs/ACCESSIBILITY.md to FILE;
`CUSTSEG_A11Y_SCREENSHOTS=docs` saves the README's screenshots of the focus ring and of a
chart's text alternative.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dash
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from analytics.exports import Filters
from tests import a11y
from tests.conftest import PASSWORD, export_frame, serve
from tests.helpers import csp_violations, wait_until

pytestmark = pytest.mark.browser

DOC = Path(__file__).resolve().parent.parent / "docs" / "ACCESSIBILITY.md"


def _campaign(engine: Any, segment: int) -> int:
    """A campaign on `segment`, measured (its results are on its page)."""
    from datetime import date

    from db import campaigns
    from db.exporter import Exporter
    from db.snapshot_cache import SnapshotCache

    src = Exporter(engine, SnapshotCache()).sources()
    made = campaigns.create(
        engine,
        name="Autumn thanks",
        rule={"segment": [segment]},
        snapshot=src.snap,
        customers=src.customers,
        segments=src.segments,
        start=date(2011, 10, 1),
        end=date(2011, 11, 30),
        holdout_share=0.2,
        seed=3,
        created_by="analyst@example.com",
    )
    campaigns.measure(engine, made.id)
    return int(made.id)


def _pages() -> list[dict[str, Any]]:
    """Every page of Dash's registry, in navbar order (an admin may open them all)."""
    return sorted(dash.page_registry.values(), key=lambda p: (p.get("order", 0), p["path"]))


def test_no_serious_or_critical_violation_on_any_page_or_state(  # type: ignore[no-untyped-def]
    dash_duo, app, dashboard, sqlite_engine
) -> None:
    driver = dash_duo.driver
    serve(dash_duo, app)
    base = dash_duo.server.url
    results: dict[str, list[dict[str, Any]]] = {}

    def scan(state: str, settle: bool = False) -> None:
        if settle:  # after an action: its callbacks answered
            a11y.settle(driver)
        results[state] = a11y.run_axe(driver)

    def open_page(path: str, server_page: bool = False) -> None:
        """Go to `path` as the app's links do (Dash's router, no reload; a server page is
        loaded), and wait until it has settled."""
        if server_page or not driver.current_url.startswith(base):
            driver.get(base + path)
        else:
            driver.execute_script(a11y.NAVIGATE, path)
        a11y.settle(driver)

    def click(selector: str) -> None:
        element = dash_duo.find_element(selector)
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
        driver.execute_script("arguments[0].click()", element)

    open_page("/login", server_page=True)
    scan("/login (signed out)")
    dash_duo.find_element("#email").send_keys("admin@example.com")
    dash_duo.find_element("#password").send_keys(PASSWORD)
    dash_duo.find_element("#login-submit").click()
    dash_duo.wait_for_element("#f-snapshot", timeout=20)

    pages = _pages()
    assert {p["path"] for p in pages} >= {"/", "/segments", "/customers", "/admin"}
    for page in pages:
        open_page(page["path"])
        scan(page["path"])
        # The browser's title names the page (WCAG 2.4.2).
        assert driver.title == f"{page['name']} · Customer segmentation", page["path"]

    segments, _ = export_frame(sqlite_engine, "segments", Filters())
    top = int(segments["segment_id"].iloc[0])
    member = str(export_frame(sqlite_engine, "members", Filters())[0]["customer_id"].iloc[0])

    # A campaign measured: the list with it, its results, its chart and the chart's data.
    made = _campaign(sqlite_engine, top)
    open_page(f"/campaigns?campaign={made}")
    dash_duo.wait_for_element("#campaign-cumulative-summary:not(:empty)", timeout=20)
    driver.execute_script("document.querySelector('#card-campaign-cumulative details').open = true")
    scan("/campaigns, a campaign's results and data table", settle=True)
    open_page("/campaigns")
    scan("/campaigns, the list with a campaign")

    # A segment chosen: by the address, as a shared link or the Segments page's bars set it.
    for path in ("/", "/segments", "/sales"):
        open_page(f"{path}?segment={top}")
        scan(f"{path}, a segment chosen")
    # Every chart's data table open (its text alternative).
    driver.execute_script(
        "document.querySelectorAll('details.chart-data').forEach(d => { d.open = true; });"
    )
    scan("/sales, a segment chosen, the charts' data tables open", settle=True)
    # A customer looked up, then a member list of one segment and stage.
    open_page("/customers")
    dash_duo.find_element("#lookup-id").send_keys(member, Keys.ENTER)
    dash_duo.wait_for_element("#lookup-stage", timeout=20)
    scan("/customers, a customer looked up", settle=True)
    open_page(f"/customers?segment={top}&stage=Lost")
    dash_duo.wait_for_contains_text("#members-count", "stage Lost", timeout=20)
    scan("/customers, a member list of a segment and stage", settle=True)
    # Error messages: a refused comparison, a link with a bad date, forms sent empty.
    open_page("/migration?snapshot=1")
    dash_duo.wait_for_contains_text("#migration-message", "oldest kept", timeout=20)
    scan("/migration, an error message")
    open_page("/?start=not-a-date")
    scan("/, a link with a bad date")
    open_page("/segments")
    click("#rename-go")
    dash_duo.wait_for_contains_text("#rename-message", "Choose a segment", timeout=20)
    scan("/segments, the rename form refused", settle=True)
    open_page("/admin")
    click("#admin-add")
    dash_duo.wait_for_contains_text("#admin-users-message", "Type an email", timeout=20)
    scan("/admin, the user form refused", settle=True)
    # Open controls: the date picker's calendar and the segments list.
    open_page("/")
    click("#f-dates")
    wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, ".dash-datepicker-content"))
    scan("/, the date picker open", settle=True)
    driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
    click("#f-segments")
    wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, ".dash-dropdown-content"))
    scan("/, the segments list open", settle=True)
    # The check has teeth, and an exclusion takes out exactly its rule on its elements.
    driver.execute_script(
        "const i = document.createElement('input'); i.id = 'zz-unlabelled';"
        "document.getElementById('main').appendChild(i);"
    )
    found = a11y.failures(a11y.run_axe(driver))
    assert [(v["rule"], v["nodes"][0]["target"]) for v in found] == [("label", "#zz-unlabelled")]
    excluded = a11y.run_axe(driver, (a11y.Exclusion("label", "#zz-unlabelled"),))
    assert not a11y.failures(excluded) and [v["excluded"] for v in excluded] == [1]
    assert a11y.failures(a11y.run_axe(driver, (a11y.Exclusion("label", "#other"),)))

    # The server's own pages beside Dash's: the import form, the log-out confirmation.
    open_page("/admin/import", server_page=True)
    scan("/admin/import")
    open_page("/logout", server_page=True)
    scan("/logout (confirm)")

    if os.environ.get("CUSTSEG_A11Y_REPORT"):
        rows = [f"| {state} | {a11y.cell(found)} |" for state, found in results.items()]
        Path(os.environ["CUSTSEG_A11Y_REPORT"]).write_text(
            "| page, state | serious or critical violations |\n|---|---|\n" + "\n".join(rows) + "\n"
        )
    assert not any(a11y.failures(found) for found in results.values()), a11y.report(results)
    assert csp_violations(dash_duo) == []


RING = """const a = document.activeElement, css = getComputedStyle(a);
return [a.id, css.outlineStyle, parseFloat(css.outlineWidth)];"""


def test_keyboard_only_dates_a_segment_a_data_table_and_a_download(  # type: ignore[no-untyped-def]
    dash_duo, app, dashboard, sqlite_engine
) -> None:
    """Tab, Shift+Tab, Enter, Space, the arrows and Escape only, from the login form to a file:
    every control on the way shows its focus ring."""
    from selenium.webdriver.common.action_chains import ActionChains

    driver = dash_duo.driver
    serve(dash_duo, app)
    base = dash_duo.server.url
    rings: dict[str, tuple[str, float]] = {}

    def press(*keys: str, shift: bool = False, ctrl: bool = False) -> None:
        chain = ActionChains(driver)
        for modifier, held in ((Keys.SHIFT, shift), (Keys.CONTROL, ctrl)):
            if held:
                chain = chain.key_down(modifier)
        for key in keys:  # a beat after each: the components redraw between key presses
            chain = chain.send_keys(key).pause(0.15)
        for modifier, held in ((Keys.SHIFT, shift), (Keys.CONTROL, ctrl)):
            if held:
                chain = chain.key_up(modifier)
        chain.perform()

    def focused() -> str:
        return str(driver.execute_script("return document.activeElement.id"))

    def tab_to(ident: str, back: bool = False, most: int = 60) -> None:
        """Tab (or Shift+Tab) until `ident` has the focus; note its focus ring."""
        for _ in range(most):
            press(Keys.TAB, shift=back)
            if focused() == ident:
                got, style, width = driver.execute_script(RING)
                rings[got] = (style, width)
                return
        raise AssertionError(f"{ident} is not reachable with the Tab key")

    def shoot(name: str, selector: str) -> None:
        """CUSTSEG_A11Y_SCREENSHOTS=docs: the README's pictures of what the test sees."""
        folder = os.environ.get("CUSTSEG_A11Y_SCREENSHOTS")
        if folder:
            element = dash_duo.find_element(selector)
            driver.execute_script("arguments[0].scrollIntoView({block: 'nearest'})", element)
            element.screenshot(str(Path(folder) / name))

    def address_has(text: str) -> None:
        wait_until(lambda: text in driver.current_url)
        a11y.settle(driver)

    driver.get(base + "/login")
    dash_duo.wait_for_element("#email", timeout=10)
    press("analyst@example.com", Keys.TAB, PASSWORD, Keys.ENTER)
    dash_duo.wait_for_element("#f-snapshot", timeout=20)
    a11y.settle(driver)

    # The skip link comes first and takes the focus past the navbar.
    press(Keys.TAB)
    assert driver.execute_script("return document.activeElement.textContent") == "Skip to content"
    press(Keys.ENTER)
    assert focused() == "main"
    # Dates: a preset, a range picked in the calendar with the arrows, a start date typed.
    tab_to("f-preset-90")
    press(Keys.ENTER)
    address_has("start=2011-09-11&end=2011-12-09")
    tab_to("f-dates-end-date")
    press(Keys.ARROW_DOWN)  # opens the calendar on the end date, 2011-12-09
    wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, ".dash-datepicker-content"))
    press(Keys.ARROW_LEFT, Keys.ARROW_LEFT, Keys.ENTER)  # 2011-12-07 starts the range
    press(*[Keys.ARROW_UP] * 4, Keys.ENTER)  # four weeks before: 2011-11-09
    address_has("start=2011-11-09&end=2011-12-07")
    tab_to("f-dates", back=True)
    press("a", ctrl=True)
    press("2011-06-01", Keys.TAB)
    address_has("start=2011-06-01&end=2011-12-07")
    # The chart's data table: its disclosure opens with Enter, its table is the next stop.
    tab_to("overview-trend-data")
    press(Keys.ENTER)
    press(Keys.TAB)
    assert focused() == "overview-trend-table"
    rows = driver.find_elements(By.CSS_SELECTOR, "#overview-trend-table tbody tr")
    assert rows and all(r.is_displayed() for r in rows)
    assert dash_duo.find_element("#overview-trend-summary").text.endswith(".")
    shoot("a11y-chart-text.png", "#card-overview-trend")
    # A segment: open the list, arrow to the first option, Space, Escape.
    tab_to("f-segments", back=True)
    shoot("a11y-focus.png", ".filter-bar")
    press(Keys.ENTER)
    wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, ".dash-dropdown-content"))
    press(Keys.ARROW_DOWN, Keys.SPACE, Keys.ESCAPE)
    address_has("segment=")
    segment = int(driver.current_url.split("segment=")[1].split("&")[0])
    assert focused() == "f-segments"
    # The chart's download: on to its CSV button, Enter.
    tab_to('{"chart":"overview-trend","type":"dl-csv"}')
    press(Keys.ENTER)
    target = Path(dash_duo.download_path) / "sales_snapshot2.csv"
    wait_until(
        lambda: target.exists() and target.stat().st_size > 0 and target.read_text()[-1:] == "\n"
    )
    text = target.read_text(encoding="utf-8")
    assert f"# filter_segments: {segment}" in text
    assert "2011-06-01" in text and "2011-12-07" in text

    # Every control reached showed a ring of 2px or more (webapp/assets/a11y.css).
    assert len(rings) >= 6
    assert all(style == "solid" and width >= 2 for style, width in rings.values()), rings
    assert csp_violations(dash_duo) == []


def test_every_exclusion_is_explained_in_the_accessibility_note() -> None:
    note = DOC.read_text(encoding="utf-8")
    for exclusion in a11y.EXCLUSIONS:
        assert f"`{exclusion.rule}`" in note and f"`{exclusion.selector}`" in note, exclusion
