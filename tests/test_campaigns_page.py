"""The Campaigns page (webapp/pages/campaigns.py): what each role may do and see, through HTTP as
a browser posts its callbacks, and in headless Chromium."""

from __future__ import annotations

import io
import json
import os
import re
from datetime import datetime
from typing import Any

import pandas as pd
import pytest
from selenium.common.exceptions import ElementClickInterceptedException
from selenium.webdriver.common.keys import Keys
from sqlalchemy import Engine, update

from analytics import campaigns as calc
from db import campaigns, jobs
from db.exporter import Exporter
from db.models import Job, JobStatus, Trigger
from db.scheduler import Scheduler
from db.snapshot_cache import SnapshotCache
from tests.conftest import bare_settings, login, serve
from tests.helpers import (
    _ids_and_props,
    browser_login,
    page_responses,
    post_callback,
    wait_until,
)

FORM_IDS = {
    "campaign-name.value": None,
    "campaign-snapshot.value": None,
    "campaign-segments.value": None,
    "campaign-stages.value": None,
    "campaign-holdout.value": 10,
    "campaign-start.date": "2011-10-01",
    "campaign-end.date": "2011-11-30",
}


def _top_segment(engine: Engine) -> tuple[int, int]:
    """The latest snapshot's largest-revenue segment and its number of customers."""
    src = Exporter(engine, SnapshotCache()).sources()
    top = src.segments.iloc[0]
    return int(top["segment_id"]), int(top["customers"])


def _response(resp: Any) -> dict[str, Any]:
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    return resp.get_json()["response"]  # type: ignore[no-any-return]


def _click(client: Any, output: str, button: str, campaign_id: int) -> dict[str, Any]:
    """Click `button` ("id.n_clicks") on the page of campaign `campaign_id`: the answer of the
    callback that writes `output`."""
    return _response(post_callback(client, output, {button: 1}, {"campaign-id.data": campaign_id}))


def _text(node: Any) -> str:
    """The visible text of a component tree as Dash sends it."""
    if isinstance(node, str | int | float):
        return str(node)
    if isinstance(node, list):
        return " ".join(_text(n) for n in node)
    if isinstance(node, dict):
        return _text(node.get("props", {}).get("children"))
    return ""


def _create(engine: Engine, segment: int, **kw: Any) -> campaigns.Campaign:
    src = Exporter(engine, SnapshotCache()).sources()
    args: dict[str, Any] = dict(
        name="Autumn",
        rule={"segment": [segment]},
        snapshot=src.snap,
        customers=src.customers,
        segments=src.segments,
        start=pd.Timestamp("2011-10-01").date(),
        end=pd.Timestamp("2011-11-30").date(),
        holdout_share=0.2,
        seed=3,
        created_by="analyst@example.com",
    )
    args.update(kw)
    return campaigns.create(engine, **args)


def test_an_analyst_sees_the_sizes_before_saving_then_saves(
    app, dashboard, client, sqlite_engine
) -> None:  # type: ignore[no-untyped-def]
    segment, customers = _top_segment(sqlite_engine)
    login(client, "analyst@example.com")
    form = {**FORM_IDS, "campaign-segments.value": [segment], "campaign-name.value": "Thanks"}
    shown = _response(post_callback(client, "campaign-preview.children", form))
    preview = shown["campaign-preview"]["children"]
    ids = _ids_and_props(preview)
    held = calc.holdout_sizes([customers], 0.1)[0]
    assert _text(ids["campaign-preview-holdout"]["children"]) == f"{held:,}"
    assert _text(ids["campaign-preview-treatment"]["children"]) == f"{customers - held:,}"
    assert "Audience:  Segment: " in _text(preview)
    bad = _response(
        post_callback(client, "campaign-preview.children", {**form, "campaign-holdout.value": 90})
    )
    assert "between 1% and 50%" in json.dumps(bad)
    tampered = {**form, "campaign-recency_days-min.value": "1; DROP TABLE users"}
    assert "not a number" in json.dumps(
        _response(post_callback(client, "campaign-preview.children", tampered))
    )
    saved = _response(
        post_callback(client, "campaign-save-message.children", {"campaign-save.n_clicks": 1}, form)
    )
    assert saved["campaigns-go"]["href"] == "/campaigns?campaign=1"
    made = campaigns.get(sqlite_engine, 1)
    assert (made.name, made.created_by, made.treatment_size, made.holdout_size) == (
        "Thanks",
        "analyst@example.com",
        customers - held,
        held,
    )
    (job,) = jobs.recent(sqlite_engine)  # its first measurement is queued
    assert (job.kind, job.trigger, job.params) == (
        "campaign_results",
        Trigger.WEB,
        {"campaign_id": 1},
    )


def test_a_viewer_sees_the_results_but_no_customer_and_cannot_change_anything(
    app, dashboard, client, sqlite_engine
) -> None:  # type: ignore[no-untyped-def]
    segment, _ = _top_segment(sqlite_engine)
    made = _create(sqlite_engine, segment)
    campaigns.measure(sqlite_engine, made.id)
    ids = set(campaigns.members(sqlite_engine, made.id)["customer_id"])
    login(client, "viewer@example.com")
    seen = []
    for search in ("", f"?campaign={made.id}"):
        for output, status, body in page_responses(client, "/campaigns", search):
            seen.append(output)
            assert status in (200, 204, 403), (output, status)
            found = set(re.findall(r"\d{5}", body)) & ids
            assert not found, (output, sorted(found)[:3])
    assert any("campaign-lift-conversion" in o for o in seen)  # the results were sent
    results = _response(
        post_callback(client, "campaign-groups.children", {"campaign-id.data": made.id})
    )
    assert "Campaign window" in json.dumps(results)
    for output, values in (
        ("campaign-preview.children", {**FORM_IDS, "campaign-segments.value": [segment]}),
        ("campaign-save-message.children", {"campaign-save.n_clicks": 1}),
        (
            "campaign-download.data",
            {"campaign-export-csv.n_clicks": 1, "campaign-id.data": made.id},
        ),
        ("campaign-job.data", {"campaign-refresh.n_clicks": 1, "campaign-id.data": made.id}),
        ("campaigns-go.href@", {"campaign-delete.submit_n_clicks": 1, "campaign-id.data": made.id}),
    ):
        resp = post_callback(client, output, values, values)
        assert resp.status_code == 403, output
    assert campaigns.events(sqlite_engine)["action"].tolist() == ["create"]
    # The page shows a viewer no form and no buttons.
    layout = json.dumps(
        _response(
            post_callback(client, "_pages_content", {"_pages_location.pathname": "/campaigns"})
        )
    )
    assert "campaign-save" not in layout and "New campaign" not in layout


def test_an_analyst_exports_the_treatment_list_refreshes_and_deletes(
    app, dashboard, client, sqlite_engine
) -> None:  # type: ignore[no-untyped-def]
    segment, _ = _top_segment(sqlite_engine)
    made = _create(sqlite_engine, segment)
    members = campaigns.members(sqlite_engine, made.id)
    login(client, "analyst@example.com")
    got = _click(client, "campaign-download.data", "campaign-export-csv.n_clicks", made.id)
    sent = got["campaign-download"]["data"]
    assert sent["filename"] == f"campaign{made.id}_treatment.csv"
    import base64

    text = base64.b64decode(sent["content"]).decode() if sent.get("base64") else sent["content"]
    listed = pd.read_csv(io.StringIO(text), comment="#", dtype={"customer_id": str})
    assert set(listed["customer_id"]) == set(members.loc[~members["holdout"], "customer_id"])
    assert "# exported_by: analyst@example.com" in text
    queued = _click(client, "campaign-job.data", "campaign-refresh.n_clicks", made.id)
    assert queued["campaign-poll"]["disabled"] is False
    job_id = queued["campaign-job"]["data"]

    def poll() -> dict[str, Any]:
        return _response(
            post_callback(
                client,
                "campaign-poll.disabled@",
                {"campaign-poll.n_intervals": 1},
                {"campaign-job.data": job_id, "campaign-refreshed.data": 0},
            )
        )

    waiting = poll()
    assert waiting["campaign-poll"]["disabled"] is False and "campaign-refreshed" not in waiting
    said = waiting["campaign-action-message"]["children"]
    assert said == f"Measuring (job {job_id}): waiting for the scheduler process…"
    with sqlite_engine.begin() as conn:  # queued for long: is the scheduler running?
        conn.execute(update(Job).values(created_at=datetime(2020, 1, 1)))
    assert "is `custseg scheduler` running?" in poll()["campaign-action-message"]["children"]
    Scheduler(sqlite_engine, bare_settings()).drain()
    assert jobs.get(sqlite_engine, job_id).status == JobStatus.DONE
    polled = poll()
    assert polled["campaign-poll"]["disabled"] is True
    assert polled["campaign-refreshed"]["data"] == 1
    assert "Results updated" in json.dumps(polled)
    gone = _click(client, "campaigns-go.href@", "campaign-delete.submit_n_clicks", made.id)
    assert gone["campaigns-go"]["href"] == "/campaigns"
    assert campaigns.events(sqlite_engine)["action"].tolist() == ["delete", "export", "create"]


def test_the_list_filters_by_status_and_name_and_the_address_keeps_them(
    app, dashboard, client, sqlite_engine
) -> None:  # type: ignore[no-untyped-def]
    segment, _ = _top_segment(sqlite_engine)
    _create(sqlite_engine, segment, name="Autumn thanks")
    _create(
        sqlite_engine,
        segment,
        name="Spring 2099",
        start=pd.Timestamp("2099-03-01").date(),
        end=None,
    )
    login(client, "viewer@example.com")

    def listed(status: Any, search: Any) -> str:
        values = {"campaigns-status.value": status, "campaigns-search.value": search}
        got = _response(post_callback(client, "campaigns-list.children", values))
        return json.dumps([got["campaigns-list"], got["campaigns-message"]])  # not the log

    assert "Autumn thanks" in listed("all", None) and "Spring 2099" in listed("all", None)
    assert "Spring 2099" in listed("draft", "") and "Autumn thanks" not in listed("draft", "")
    assert "Autumn thanks" in listed("ended", None) and "Spring" not in listed("ended", None)
    assert "Spring 2099" in listed("all", "SPRING") and "Autumn" not in listed("all", "spring")
    assert "not valid" in listed("all", "x" * 200) or "must be one of" in listed("bogus", None)
    assert "must be one of" in listed("bogus", None)
    query = _response(
        post_callback(
            client,
            "campaigns-query.search",
            {"campaigns-status.value": "draft", "campaigns-search.value": "spring "},
        )
    )
    assert query["campaigns-query"]["search"] == "?status=draft&q=spring"
    page = json.dumps(
        _response(
            post_callback(
                client,
                "_pages_content",
                {
                    "_pages_location.pathname": "/campaigns",
                    "_pages_location.search": "?status=ended&q=autumn",
                },
            )
        )
    )
    assert '"value": "ended"' in page and '"value": "autumn"' in page


@pytest.mark.browser
def test_in_a_browser_create_an_audience_from_a_segment_export_it_and_open_its_results(  # type: ignore[no-untyped-def]
    dash_duo, app, dashboard, sqlite_engine
) -> None:
    segment, customers = _top_segment(sqlite_engine)
    held = calc.holdout_sizes([customers], 0.1)[0]
    serve(dash_duo, app)
    base = dash_duo.server.url
    browser_login(dash_duo, "analyst@example.com")
    dash_duo.driver.get(base + "/campaigns")
    dash_duo.wait_for_element("#campaign-name", timeout=20).send_keys("Thank the best customers")
    dash_duo.select_dcc_dropdown("#campaign-segments", index=0)  # the top segment comes first
    dash_duo.find_element("body").send_keys(Keys.ESCAPE)
    for picker, day in (("#campaign-start", "2011-10-01"), ("#campaign-end", "2011-11-30")):
        box = dash_duo.find_element(picker)  # the date picker's text box
        box.click()
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(day, Keys.ENTER)
        dash_duo.find_element("body").send_keys(Keys.ESCAPE)
    dash_duo.wait_for_text_to_equal("#campaign-preview-holdout", f"{held:,}", timeout=20)
    assert dash_duo.find_element("#campaign-preview-treatment").text == f"{customers - held:,}"
    dash_duo.find_element("h1").click()  # closes the date picker's calendar (the page heading)
    save = dash_duo.find_element("#campaign-save")
    wait_until(lambda: save.is_displayed() and save.is_enabled())

    def click_save() -> bool:
        # In view, then clicked; again if a late preview answer moved it out from under the
        # pointer between the scroll and the click.
        dash_duo.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", save)
        try:
            save.click()
        except ElementClickInterceptedException:
            return False
        return True

    wait_until(click_save)
    wait_until(lambda: "campaign=1" in dash_duo.driver.current_url)
    dash_duo.wait_for_text_to_equal("#campaign-treatment", f"{customers - held:,}", timeout=20)
    made = campaigns.get(sqlite_engine, 1)
    assert (made.start_date.isoformat(), str(made.end_date)) == ("2011-10-01", "2011-11-30")
    assert made.rule == {"segment": [segment]}
    # The treatment list: every treatment customer, no holdout customer.
    dash_duo.find_element("#campaign-export-csv").click()
    target = os.path.join(dash_duo.download_path, "campaign1_treatment.csv")
    wait_until(lambda: os.path.exists(target) and os.path.getsize(target) > 0)
    wait_until(lambda: len(pd.read_csv(target, comment="#")) == made.treatment_size)
    listed = pd.read_csv(target, comment="#", dtype={"customer_id": str})
    members = campaigns.members(sqlite_engine, 1)
    holdout = set(members.loc[members["holdout"], "customer_id"])
    assert len(holdout) == held and not set(listed["customer_id"]) & holdout
    assert set(listed["segment_id"]) == {segment}
    # Its results: measured by the scheduler process (here: this test) after "Refresh results".
    dash_duo.find_element("#campaign-refresh").click()
    wait_until(lambda: "Measuring" in dash_duo.find_element("#campaign-action-message").text)
    Scheduler(sqlite_engine, bare_settings()).drain()
    wait_until(
        lambda: "Results updated" in dash_duo.find_element("#campaign-action-message").text,
    )
    wait_until(lambda: "pts" in dash_duo.find_element("#campaign-lift-conversion").text)
    assert (
        "Campaign window 2011-10-01 – 2011-11-30" in dash_duo.find_element("#campaign-groups").text
    )
    assert "95% CI" in dash_duo.find_element("#campaign-verdicts").text
    assert "exported the treatment list" in dash_duo.find_element("#campaign-log").text
    traces = dash_duo.driver.execute_script(
        "return document.querySelector('#campaign-cumulative .js-plotly-plot').data.length"
    )
    assert traces == 2
