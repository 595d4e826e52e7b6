"""Two app instances behind one address: stateless web processes (docs/DEPLOY.md).

Two gunicorn servers on two ports, each with its own instance folder and snapshot cache
directory (two machines' worth), against one PostgreSQL database and one Redis. A browser's
cookie jar is shared between them as a load balancer would share a browser: it logs in on one,
then every request alternates between the two. Each answer is the same from either; the session
is valid on both and a logout on one ends it on the other; failed logins are counted once for
both (the rate limits live in Redis); a refit queued on one is seen from the other (the jobs
table).
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import requests

from db.importer import import_file
from db.migrate import upgrade
from db.session import make_engine
from tests.conftest import PASSWORD, SAMPLE, USERS, add_user, free_port, pg_database
from tests.helpers import VIEWER_PAGES, callback_body, callback_spec, form_token, page_responses
from tests.refitting import refit

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
LIMIT = 4  # failed logins per minute and address


@pytest.fixture(scope="module")
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.fail(
            f"no Redis at {REDIS_URL} ({exc}): start one (`make test` runs .ci/ensure-redis) or "
            "point TEST_REDIS_URL at one"
        )
    return REDIS_URL


class Instance(NamedTuple):
    url: str
    cache: Path  # its CUSTSEG_CACHE_DIR


class Response:
    """A `requests` response with the Flask test client's methods that tests/helpers.py uses."""

    def __init__(self, resp: requests.Response) -> None:
        self.resp, self.status_code, self.headers = resp, resp.status_code, resp.headers

    def get_json(self) -> Any:
        return self.resp.json()

    def get_data(self, as_text: bool = False) -> Any:
        return self.resp.text if as_text else self.resp.content


class Browser:
    """One cookie jar; each request goes to the instance `at` points to (a load balancer)."""

    def __init__(self, instances: list[Instance]) -> None:
        self.urls = [i.url for i in instances]
        self.at, self.session = 0, requests.Session()

    def on(self, i: int) -> Browser:
        self.at = i
        return self

    def get(self, path: str, **kw: Any) -> Response:
        url = self.urls[self.at] + path
        return Response(self.session.get(url, allow_redirects=False, timeout=60, **kw))

    def post(self, path: str, **kw: Any) -> Response:
        url = self.urls[self.at] + path
        return Response(self.session.post(url, allow_redirects=False, timeout=60, **kw))

    def login(self, email: str, password: str = PASSWORD) -> Response:
        token = form_token(self.get("/login").get_data(as_text=True))
        data = {"email": email, "password": password, "csrf_token": token}
        return self.post("/login", data=data)


def serve(tmp: Path, env: dict[str, str]) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    log = (tmp / "gunicorn.log").open("wb")
    proc = subprocess.Popen(
        [gunicorn, "--bind", f"127.0.0.1:{port}", "--workers", "2", "--graceful-timeout", "5"]
        + ["wsgi:server"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError((tmp / "gunicorn.log").read_text()[-3000:])
        try:
            if requests.get(url + "/health", timeout=2).status_code == 200:
                return url, proc
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("gunicorn did not answer: " + (tmp / "gunicorn.log").read_text())
        time.sleep(0.2)


@pytest.fixture(scope="module")
def instances(
    pg_admin_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[Instance]]:
    """Two gunicorns (two workers each) on one new database (the sample, two snapshots),
    shared by this module's tests (the rate-limit test comes last: it locks the address out)."""
    tmp_path = tmp_path_factory.mktemp("instances")
    with pg_database(pg_admin_url, "custseg_instances") as url:
        engine = make_engine(url)
        upgrade(engine)
        for email, role in USERS:
            add_user(engine, email, role)
        import_file(engine, SAMPLE)
        refit(engine, k=3, as_of=date(2011, 9, 30))
        refit(engine, k=3)
        engine.dispose()
        yield from _serve_two(url, redis_url, tmp_path)


def _serve_two(url: str, redis_url: str, tmp_path: Path) -> Iterator[list[Instance]]:
    common = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CUSTSEG_", "SECRET_KEY"))},
        "DATABASE_URL": url,
        "CUSTSEG_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(48),  # what every instance must share
        "CUSTSEG_COOKIE_SECURE": "false",  # plain HTTP on 127.0.0.1
        "CUSTSEG_RATELIMIT_STORAGE_URL": redis_url,
        "CUSTSEG_RATELIMIT_KEY_PREFIX": f"custseg-test-{uuid.uuid4().hex[:8]}",
        "CUSTSEG_LOGIN_RATE_LIMIT": f"{LIMIT} per minute",
        "CUSTSEG_PREDICTIONS": "false",
    }
    procs, served = [], []
    try:
        for name in ("a", "b"):
            tmp = tmp_path / name
            tmp.mkdir()
            env = {
                **common,
                "CUSTSEG_INSTANCE_DIR": str(tmp / "instance"),
                "CUSTSEG_CACHE_DIR": str(tmp / "cache"),
            }
            base, proc = serve(tmp, env)
            procs.append(proc)
            served.append(Instance(base, tmp / "cache"))
        yield served
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def comparable(body: str) -> str:
    """A response body without what differs per response by design (CSRF tokens)."""
    return re.sub(r'"csrf_token","value":"[^"]+"', '"csrf_token","value":"-"', body)


def test_two_instances_answer_alike(instances: list[Instance]) -> None:
    browser = Browser(instances)
    assert browser.on(0).login("viewer@example.com").status_code == 302
    # The session made on A is valid on B: no redirect to the login form.
    assert browser.on(1).get("/segments").status_code == 200
    assert browser.on(1).get("/_dash-layout").status_code == 200

    compared = 0
    for n, path in enumerate(VIEWER_PAGES):
        first, second = (0, 1) if n % 2 == 0 else (1, 0)
        a = page_responses(browser.on(first), path)
        b = page_responses(browser.on(second), path)
        assert [(o, s) for o, s, _ in a] == [(o, s) for o, s, _ in b], path
        for (output, status, body_a), (_, _, body_b) in zip(a, b, strict=True):
            # Callbacks of another role are refused alike (403); the rest answer alike.
            assert status in (200, 204, 403), (path, output, body_a[:300])
            assert comparable(body_a) == comparable(body_b), (path, output)
            compared += status == 200
    assert compared > 30

    # Filter changes, request by request on alternate instances.
    spec = callback_spec(browser.on(0), "sales-")
    for i, (start, segments) in enumerate(
        [("2011-01-01", []), ("2011-06-01", [1]), (None, [1, 2]), ("2011-11-01", [])]
    ):
        values = {"f-dates.start_date": start, "f-segments.value": segments}
        values["sales-granularity.value"] = ["day", "week", "month"][i % 3]
        body = callback_body(spec, values)
        answers = [
            browser.on(j).post("/_dash-update-component", json=body).get_data(as_text=True)
            for j in (i % 2, 1 - i % 2)
        ]
        assert answers[0] == answers[1]
        assert '"figure"' in answers[0]
    # Each instance built its own snapshot files (one copy per machine).
    for instance in instances:
        assert list(instance.cache.rglob("orders-*.arrow")), instance

    # A logout on B ends the session everywhere (its version is in the database).
    token = form_token(browser.on(1).get("/logout").get_data(as_text=True))
    assert browser.on(1).post("/logout", data={"csrf_token": token}).status_code == 302
    assert browser.on(0).post("/_dash-update-component", json=body).status_code == 401
    assert browser.on(0).get("/segments").status_code == 302


def test_a_refit_queued_on_one_is_seen_on_the_other(instances: list[Instance]) -> None:
    browser = Browser(instances)
    assert browser.on(1).login("admin@example.com").status_code == 302
    start = callback_spec(browser.on(0), "model-refit-started")
    queued = browser.on(0).post(
        "/_dash-update-component", json=callback_body(start, {"model-refit.n_clicks": 1})
    )
    assert queued.status_code == 200
    job = queued.get_json()["response"]["model-refit-started"]["data"]
    poll = callback_spec(browser.on(1), "model-refit-progress")
    seen = browser.on(1).post(
        "/_dash-update-component",
        json=callback_body(
            poll, {"model-refit-poll.n_intervals": 1}, {"model-refit-started.data": job}
        ),
    )
    assert seen.status_code == 200
    assert f"Queued (job {job['job_id']})" in seen.get_data(as_text=True)


def test_failed_logins_are_counted_across_instances(instances: list[Instance]) -> None:
    """The login rate limit (per address) counts the failures on both instances together: with
    memory storage each would allow LIMIT failures of its own."""
    browser = Browser(instances)
    statuses = [
        browser.on(i % 2).login("viewer@example.com", "wrong password").status_code
        for i in range(LIMIT + 1)
    ]
    assert statuses == [401] * LIMIT + [429]
    assert browser.on(0).login("viewer@example.com").status_code == 429
    assert browser.on(1).login("viewer@example.com").status_code == 429
