"""locust: logged-in analysts changing filters and downloading charts (the `load` stage).

Runs in locust's own virtualenv (`bench/.venv-locust`, made by bench/stages/load.py), which has
no project code: only `bench/dashpost.py` (standard library) is imported, by path. The stage
passes the snapshot facts in `BENCH_LOAD_CONFIG` (JSON: users' emails and password, snapshot
ids, last day, segment ids).

Each simulated user takes its own account and logs in once, through the form with its CSRF
token (`/login`). Then, with 1 to 3 s between actions (a person reading a chart), it changes a
filter on a page (a POST of that page's callback, weight 4) or downloads the chart it has just
seen as CSV or XLSX (the download callback with the params the page stored, weight 1). A
response counts as an error unless it is a 200 with the page's outputs and no message, or, for
a download, a file.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import random
import re
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from locust import HttpUser, between, events, task

_spec = importlib.util.spec_from_file_location("dashpost", Path(__file__).with_name("dashpost.py"))
assert _spec is not None and _spec.loader is not None
dashpost = importlib.util.module_from_spec(_spec)
sys.modules["dashpost"] = dashpost
_spec.loader.exec_module(dashpost)

CONFIG = json.loads(os.environ["BENCH_LOAD_CONFIG"])
ACCOUNTS = itertools.count()
# Charts whose downloads stay small whatever the filters (not the member list: 1M rows at L is
# over the export cap, which the app refuses with a message, by design).
DOWNLOADABLE = {
    "overview": ["overview-trend", "overview-kpis"],
    "segments": ["segments-shares", "segments-profiles"],
    "retention": ["retention-heatmap", "retention-trend"],
    "sales": ["sales-time", "sales-aov"],
    "migration": ["migration-sankey"],
    "model": ["model-scores"],
}


class Analyst(HttpUser):
    wait_time = between(1, 3)

    def on_start(self) -> None:
        email = CONFIG["emails"][next(ACCOUNTS) % len(CONFIG["emails"])]
        page = self.client.get("/login", name="/login (form)").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert token, "no CSRF token on /login"
        with self.client.post(
            "/login",
            data={"email": email, "password": CONFIG["password"], "csrf_token": token.group(1)},
            allow_redirects=False,
            catch_response=True,
            name="/login",
        ) as resp:
            if resp.status_code != 302:
                resp.failure(f"login answered {resp.status_code}")
        self.deps = self.client.get("/_dash-dependencies", name="/_dash-dependencies").json()
        self.specs = {p: dashpost.spec_for(self.deps, o) for p, o in dashpost.PAGES.items()}
        self.download_spec = dashpost.spec_for(self.deps, '"download"')
        self.rng = random.Random()
        last_day = date.fromisoformat(CONFIG["last_day"])
        self.work = {
            p: dashpost.scenarios(
                p, last_day, CONFIG["segment_ids"], CONFIG["snapshot_ids"], self.rng
            )
            for p in self.specs
        }
        self.seen: dict[str, dict[str, Any]] = {}

    @task(4)
    def change_filter(self) -> None:
        page = self.rng.choice(list(self.specs))
        values, changed = self.rng.choice(self.work[page])
        payload = dashpost.body(self.specs[page], values, changed)

        def shown(answer: Any, text: str) -> str | None:
            msg = dashpost.message(page, answer)
            return None if msg is None else f"message: {str(msg)[:200]}"

        answer = self._callback(payload, f"callback {page}", shown)
        if answer is None:
            return
        params = dashpost.chart_params(answer)
        for chart in DOWNLOADABLE.get(page, []):
            if chart in params:
                self.seen[chart] = params[chart]

    @task(1)
    def download(self) -> None:
        if not self.seen:
            self.change_filter()
            return
        chart = self.rng.choice(sorted(self.seen))
        fmt = self.rng.choice(["csv", "csv", "xlsx"])
        payload = dashpost.download_body(self.download_spec, chart, self.seen[chart], fmt)
        key = json.dumps({"chart": chart, "type": "download"}, separators=(",", ":"))

        def has_file(answer: Any, text: str) -> str | None:
            file = answer.get("response", {}).get(key, {}).get("data")
            return (
                None if isinstance(file, dict) and file.get("content") else f"no file: {text[:200]}"
            )

        self._callback(payload, f"download {fmt}", has_file)

    def _callback(
        self, payload: dict[str, Any], name: str, check: Callable[[Any, str], str | None]
    ) -> Any:
        """POST a callback request: an answer other than 200, or one `check` (given the answer's
        JSON and text) finds wrong, counts as a failure. The answer's JSON, None on failure."""
        with self.client.post(
            "/_dash-update-component", json=payload, catch_response=True, name=name
        ) as resp:
            if resp.status_code != 200:
                resp.failure(f"{resp.status_code}: {resp.text[:200]}")
                return None
            answer = resp.json()
            problem = check(answer, resp.text)
            if problem is not None:
                resp.failure(problem)
                return None
            return answer


# Every callback and download time (ms), written at the end for an exact p95 over them all.
TIMES: list[tuple[str, float, bool]] = []


@events.request.add_listener
def _record(request_type: str, name: str, response_time: float, exception: Any, **kw: Any) -> None:
    if name.startswith(("callback ", "download ")):
        TIMES.append((name, response_time, exception is None))


@events.quitting.add_listener
def _write(environment: Any, **kw: Any) -> None:
    out = os.environ.get("BENCH_LOAD_TIMES")
    if out:
        Path(out).write_text(json.dumps(TIMES))
