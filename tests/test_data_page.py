"""Removing a batch queues a refit and marks the snapshots built from it; the Data page (admins):
a database source added, tested, synced through the scheduler, its history, batch reports and
removals; and the page in Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import dash
import pytest
from selenium.webdriver.common.by import By
from sqlalchemy import Engine, select
from werkzeug.exceptions import Forbidden

from analytics.exports import Filters
from db import jobs
from db.batches import list_batches, remove_batch
from db.importer import import_file
from db.models import JobStatus, Snapshot
from db.scheduler import Scheduler
from db.snapshots import get_snapshot
from db.sources import add_source, sync
from tests.conftest import (
    CDNOW,
    PASSWORD,
    SAMPLE,
    as_user,
    bare_settings,
    export_frame,
    page,
    serve,
)
from tests.refitting import refit
from tests.shops import PASSWORD_ENV, READER_PASSWORD, Shop, shop_lines, shop_spec
from webapp.filters import as_of_text


@contextmanager
def triggered(component_id: str) -> Iterator[None]:
    """Call a callback as if `component_id` had fired it."""
    with mock.patch.object(type(dash.ctx), "triggered_id", new_callable=mock.PropertyMock) as fired:
        fired.return_value = component_id
        yield


def test_removing_a_batch_queues_a_refit_and_the_snapshots_built_from_it_say_so(
    engine: Engine,
) -> None:
    sample = import_file(engine, SAMPLE)
    old = refit(engine, k=3)
    shop = import_file(engine, CDNOW)
    both = refit(engine, k=3)
    assert sample.batch_id is not None and shop.batch_id is not None
    removed = remove_batch(engine, sample.batch_id)
    assert (removed.lines, removed.snapshots_marked) == (32_421, 2)
    job = jobs.get(engine, removed.refit_job_id or 0)
    assert job is not None and (job.kind, job.status) == ("refit", JobStatus.QUEUED)

    history, _ = export_frame(engine, "snapshots", Filters())
    marks = dict(zip(history["snapshot_id"], history["removed_batches"], strict=True))
    gone = f"batch {sample.batch_id} (online_retail_sample.csv)"
    assert marks == {both.snapshot_id: gone, old.snapshot_id: gone}
    assert as_of_text(get_snapshot(engine, both.snapshot_id)).endswith(
        " · built from batches since removed"
    )

    ran = Scheduler(engine, bare_settings()).drain()
    ran = [j for j in ran if j.kind not in ("files", "notify")]  # what a refit queues after it
    assert [(j.kind, j.status) for j in ran] == [("refit", JobStatus.DONE)]
    new = get_snapshot(engine)
    assert new.id == ran[0].snapshot_id and new.removed_batches is None
    assert "since removed" not in as_of_text(new)
    kpis, _ = export_frame(engine, "kpis", Filters(), new.id)
    assert kpis.iloc[0]["customers"] == 2_349  # CDNOW alone

    # A batch imported after a snapshot was built is not in it: that snapshot stays unmarked.
    removed = remove_batch(engine, shop.batch_id, refit=False)
    assert removed.refit_job_id is None
    with engine.connect() as conn:
        marked = dict(conn.execute(select(Snapshot.id, Snapshot.removed_batches)).all())
    assert marked[old.snapshot_id] == marked[both.snapshot_id][:1]
    assert [b["file_name"] for b in marked[both.snapshot_id]] == [
        "online_retail_sample.csv",
        "cdnow_sample.csv",
    ]


@pytest.mark.postgres
def test_an_admin_adds_tests_syncs_and_removes_a_source_on_the_data_page(  # type: ignore[no-untyped-def]
    app, sqlite_engine: Engine, pg_shop: Shop
) -> None:
    pg_shop.insert(shop_lines(1, 240))
    data = page("data")
    form = {
        "name": "shop",
        "url": pg_shop.url,
        "password_env": PASSWORD_ENV,
        "password_file": None,
        "table": "order_lines",
        "query": "",
        "key": "line_id",
        "watermark": "updated_at",
    }
    columns = ["customer", "order_no", "", "", "category", None]  # empty: its own name

    def submit(trigger: str, **changes: Any) -> tuple[Any, Any]:
        values = {**form, **changes}
        with triggered(trigger):
            return data.new_source(1, 1, *values.values(), *columns, 0)  # type: ignore[no-any-return]

    for role in ("viewer", "analyst"):
        with as_user(app, f"{role}@example.com"):
            with pytest.raises(Forbidden, match="admin role"):
                submit("data-new-add")
            with pytest.raises(Forbidden):
                data.show(changed=0)
            with pytest.raises(Forbidden):
                data.batch_action(None, 1, 1, 0)
    assert list_batches(sqlite_engine) == []

    with as_user(app, "admin@example.com"):
        tested, changed = submit("data-new-test")
        assert tested.startswith("source shop: connected to PostgreSQL ")
        assert "the columns customer, order_no, ordered_at, amount, category" in tested
        assert changed is dash.no_update
        refused, _ = submit("data-new-add", url=pg_shop.url.replace("@", ":pw@"))
        assert refused.startswith("Not added: the URL holds a password")
        added, changed = submit("data-new-add")
        assert "Source shop added" in added and changed == 1

        shown = data.show(changed=1)
        (row,) = shown["sources"]
        assert (row["name"], row["password_from"], row["last_sync"], row["lines"]) == (
            "shop",
            f"environment variable {PASSWORD_ENV}",
            "never",
            "0",
        )
        assert READER_PASSWORD not in str(shown)

        with triggered("data-sync"):
            text, poll_off, started = data.sync_now(1, None, "shop")
        assert text.startswith("A sync of shop is queued (job ") and poll_off is False
        text, poll_off, _ = data.sync_progress(1, started, 1)
        assert text.startswith("Sync queued (job ") and poll_off is False

    ran = Scheduler(sqlite_engine, bare_settings()).drain()
    ran = [j for j in ran if j.kind not in ("files", "notify")]  # what a refit queues after it
    assert [(j.kind, j.params, j.requested_by) for j in ran] == [
        ("sync", {"source": "shop", "full": False}, "admin@example.com"),
        ("refit", {}, "admin@example.com"),
    ]

    with as_user(app, "admin@example.com"):
        outcome, poll_off, changed = data.sync_progress(2, started, 1)
        assert "sync 1 (full sync): 240 lines read, 240 new" in outcome.children
        assert poll_off is True and changed == 2
        shown = data.show(changed=2)
        (history,) = shown["syncs"]
        assert (history["by"], history["lines_new"], history["outcome"]) == (
            "admin@example.com",
            "240",
            "done",
        )
        (batch,) = shown["batches"]
        assert (batch["file_name"], batch["lines"]) == ("source shop, sync 1", "240")
        with triggered("data-batch-report-button"):
            report, _ = data.batch_action(1, None, batch["id"], 2)
        assert report.startswith("Imported source shop, sync 1 (normalized layout)")
        assert "lines imported: 240" in report

        with triggered("data-test"):
            probe, _ = data.source_action(1, None, "shop", 2)
        assert "connected to PostgreSQL" in probe.children

        with triggered("data-batch-remove"):
            text, changed = data.batch_action(None, 1, batch["id"], 2)
        assert text.startswith(f"Removed batch {batch['id']} (source shop, sync 1): 240 lines.")
        assert "Refit queued (job 5)" in text and changed == 3  # jobs 3, 4: files, notify
        assert data.show(changed=3)["batches"] == []

        with triggered("data-source-remove"):
            text, changed = data.source_action(None, 1, "shop", 3)
        assert text.children == "Source shop removed with 0 lines." and changed == 4
        assert data.show(changed=4)["sources"] == []


@pytest.mark.browser
@pytest.mark.postgres
def test_the_data_page_lists_a_synced_source_and_shows_a_batch_report(  # type: ignore[no-untyped-def]
    dash_duo, app, sqlite_engine: Engine, pg_shop: Shop
) -> None:
    pg_shop.insert(shop_lines(1, 50))
    add_source(sqlite_engine, shop_spec(pg_shop))
    sync(sqlite_engine, "shop")
    serve(dash_duo, app)
    dash_duo.driver.get(dash_duo.server.url + "/login")
    dash_duo.wait_for_element("#email", timeout=10).send_keys("admin@example.com")
    dash_duo.find_element("#password").send_keys(PASSWORD)
    dash_duo.find_element("#login-submit").click()
    dash_duo.wait_for_element("#f-snapshot, #page-content, .navbar", timeout=20)
    dash_duo.driver.get(dash_duo.server.url + "/data")
    dash_duo.wait_for_contains_text("#data-batches", "source shop, sync 1", timeout=20)
    assert "environment variable" in dash_duo.find_element("#data-sources").text
    dash_duo.select_dcc_dropdown("#data-batch", index=0)
    dash_duo.find_element("#data-batch-report-button").click()
    dash_duo.wait_for_contains_text("#data-batch-report", "lines imported: 50", timeout=20)
    links = [a.text for a in dash_duo.driver.find_elements(By.CSS_SELECTOR, ".navbar .nav-link")]
    assert links.index("Data") == links.index("Admin") - 1
    assert dash_duo.get_logs() == []
