"""Customer-level data (ids, per-customer rows, orders) is for analysts and admins.

Viewers see aggregates only: a viewer who opens every page, with its default filters and with a
segment chosen, and fires every callback the page can fire, receives no customer id in any
response; analysts receive them where the page shows customers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from db.importer import import_file
from tests.conftest import SAMPLE, login
from tests.helpers import VIEWER_PAGES, page_responses, post_callback
from tests.predicted import attach_test_predictions
from tests.refitting import refit
from tests.test_security import build_app

PREFIX = "CID"  # customer ids of this shop: CID12347, ... (found by a plain text search)
# Every page a viewer may open.
PAGES = VIEWER_PAGES


@pytest.fixture(scope="module")
def marked_shop(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from db.migrate import upgrade
    from db.session import make_engine

    tmp = tmp_path_factory.mktemp("marked")
    lines = pd.read_csv(SAMPLE, dtype={"customer_id": str})
    lines["customer_id"] = PREFIX + lines["customer_id"]
    path = tmp / "marked.csv"
    lines.to_csv(path, index=False)
    engine = make_engine(f"sqlite:///{tmp / 'marked.db'}")
    upgrade(engine)
    import_file(engine, path)
    from datetime import date

    refit(engine, k=3, as_of=date(2011, 9, 30))
    outcome = refit(engine, k=3)
    # Predictions too, so the crawl covers what the pages show of them (one unscored customer).
    attach_test_predictions(engine, outcome.snapshot_id, unscored=(PREFIX + "99999",))
    app = build_app(tmp, engine)
    yield app, outcome
    engine.dispose()


def customer_ids(text: str) -> list[str]:
    return re.findall(PREFIX + r"\d+", text)


@pytest.mark.parametrize("segment_filter", [False, True])
def test_a_viewer_receives_no_customer_id_from_any_page(marked_shop: Any, segment_filter) -> None:  # type: ignore[no-untyped-def]
    app, outcome = marked_shop
    client = app.server.test_client()
    login(client, "viewer@example.com")
    search = f"?segment={outcome.segments[0]['segment_id']}" if segment_filter else ""
    fired = 0
    for path in PAGES:
        for output, status, body in page_responses(client, path, search):
            fired += 1
            assert status in (200, 204, 403), (path, output, status)
            assert not customer_ids(body), (path, output, customer_ids(body)[:3])
    assert fired >= 20


def test_a_viewer_cannot_look_up_a_customer(marked_shop: Any) -> None:
    app, _ = marked_shop
    client = app.server.test_client()
    login(client, "viewer@example.com")
    resp = post_callback(client, "lookup-result", {"lookup-id.value": "CID12347"})
    text = resp.get_data(as_text=True)
    assert resp.status_code in (200, 403)
    assert "12347" not in text and "analyst" in text


def test_an_analyst_gets_the_customer_views(marked_shop: Any) -> None:
    app, _ = marked_shop
    client = app.server.test_client()
    login(client, "analyst@example.com")
    pages = ("/segments", "/customers")
    seen = "".join(body for p in pages for _, _, body in page_responses(client, p))
    assert len(set(customer_ids(seen))) > 25  # the scatter's points and the member list
    resp = post_callback(client, "lookup-result", {"lookup-id.value": "CID12347"})
    assert "CID12347" in resp.get_data(as_text=True)


def test_the_page_crawl_finds_what_it_should(marked_shop: Any, tmp_path: Path) -> None:
    """The crawl above would see an id if a callback sent one: the analyst's member list does."""
    app, _ = marked_shop
    client = app.server.test_client()
    login(client, "analyst@example.com")
    outputs = {o for o, _, _ in page_responses(client, "/customers")}
    assert any("members-table" in o for o in outputs)
