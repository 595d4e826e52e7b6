"""The bench's callback requests (bench/dashpost.py) are ones the app accepts.

The `callbacks` stage posts them to every page; if a page gains an input of a shape the bench
does not build (a dict id, say), the app refuses them with 400. This finds that in `make test`
rather than in the bench run that follows it."""

from __future__ import annotations

import random
from datetime import date

from bench import dashpost
from tests.conftest import login


def test_every_scenario_of_every_page_is_accepted(client, dashboard) -> None:
    login(client, "analyst@example.com")
    deps = client.get("/_dash-dependencies").get_json()
    first, second = dashboard
    snapshots = [second.snapshot_id, first.snapshot_id]
    rng = random.Random(6)
    for page, output in dashpost.PAGES.items():
        spec = dashpost.spec_for(deps, output)
        for values, changed in dashpost.scenarios(
            page, date(2011, 12, 9), [1, 2, 3], snapshots, rng
        )[::5]:
            resp = client.post("/_dash-update-component", json=dashpost.body(spec, values, changed))
            assert resp.status_code == 200, (page, values, resp.get_data()[:200])
            assert dashpost.message(page, resp.get_json()) is None, (page, values)
