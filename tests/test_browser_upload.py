"""In headless Chromium: an admin imports a file through the Admin page's form (no script of
ours, under the CSP, with the browser's own Origin header) and reads the report there."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from db.models import Transaction
from tests.conftest import serve
from tests.helpers import csp_violations, submit_login

pytestmark = pytest.mark.browser

HEADER = "customer_id,order_id,ordered_at,amount,category,country\n"


def test_an_admin_imports_a_file_from_the_admin_page(  # type: ignore[no-untyped-def]
    dash_duo, app, sqlite_engine: Engine, tmp_path: Path
) -> None:
    good, bad = tmp_path / "orders.csv", tmp_path / "broken.csv"
    good.write_text(HEADER + "c1,o1,2024-01-02,10.50,toys,France\nc2,o2,2024-01-03,7,,Spain\n")
    bad.write_text(HEADER + "c1,o1,2024-01-02,ten,toys,France\n")
    serve(dash_duo, app)
    submit_login(dash_duo, "admin@example.com", path="/login?next=/admin")
    dash_duo.wait_for_element("#admin-import", timeout=20).click()
    dash_duo.wait_for_element("#file", timeout=10).send_keys(str(bad))
    dash_duo.find_element("#import-submit").click()
    dash_duo.wait_for_contains_text("#import-message", "Not imported", timeout=20)
    assert "ten" in dash_duo.find_element("#import-report").text
    dash_duo.find_element("#file").send_keys(str(good))
    dash_duo.find_element("#import-submit").click()
    dash_duo.wait_for_contains_text("#admin-import-report", "Imported orders.csv", timeout=20)
    assert dash_duo.driver.current_url.endswith("/admin?imported=1")
    assert "lines imported: 2" in dash_duo.find_element("#admin-import-report").text
    with sqlite_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Transaction)).scalar_one() == 2
    assert csp_violations(dash_duo) == []
