"""Fixtures: settings, databases (SQLite and PostgreSQL), the app, a client and a login helper.

PostgreSQL comes from TEST_DATABASE_URL (`make test` sets it); without it the PostgreSQL tests
fail with a message saying what to do, rather than being skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from config import Settings
from db.migrate import upgrade
from db.session import make_engine

DATA = Path(__file__).parent / "data"
SAMPLE = DATA / "online_retail_sample.csv"
RAW = DATA / "online_retail_raw_2010-12-01_09.csv"
CDNOW = DATA / "cdnow_sample.csv"
PASSWORD = "correct horse battery"


def pytest_setup_options():  # called by dash[testing] for its Chrome driver
    from selenium.webdriver.chrome.options import Options

    options = Options()
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ):
        options.add_argument(arg)
    return options


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        pytest.fail(
            "TEST_DATABASE_URL is not set: run the suite with `make test`, or point "
            "TEST_DATABASE_URL at a PostgreSQL server (postgresql://user@host/db)"
        )
    return url


@contextmanager
def pg_database(admin_url: str, prefix: str) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped on exit."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def pg_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh database for this test session, migrated to head, dropped at the end."""
    with pg_database(pg_admin_url, "custseg_test") as url:
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url


def _truncate_all(engine: Engine) -> None:
    from db.base import Base

    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'test.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_url)
    _truncate_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest) -> Engine:
    """The same test on both databases."""
    name = "sqlite_engine" if request.param == "sqlite" else "pg_engine"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


def make_settings(tmp_path: Path, url: str, **overrides: object) -> Settings:
    values: dict[str, object] = dict(
        env="test",
        secret_key="test-secret-" + "x" * 40,
        database_url=url,
        instance_dir=tmp_path / "instance",
        login_rate_limit="1000 per minute",
    )
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path, sqlite_engine: Engine) -> Settings:
    return make_settings(tmp_path, str(sqlite_engine.url))


def add_user(engine: Engine, email: str, role: str = "viewer", password: str = PASSWORD) -> None:
    from db.models import User
    from db.session import session_scope

    with session_scope(engine) as db:
        user = User(email=email, role=role, active=True, session_version=0)
        user.password = password
        db.add(user)


def forget_page_duplicates() -> None:
    """A test that imports `webapp.pages.x` registers that page a second time under this name;
    Dash would then refuse every later app for duplicate paths."""
    import dash

    for name in [n for n in dash.page_registry if n.startswith("webapp.pages.")]:
        dash.page_registry.pop(name)


@pytest.fixture
def app(settings: Settings, sqlite_engine: Engine):  # type: ignore[no-untyped-def]
    from webapp.app import create_app
    from webapp.auth import limiter

    forget_page_duplicates()
    dash_app = create_app(settings, sqlite_engine)
    limiter.reset()
    for role in ("viewer", "analyst", "admin"):
        add_user(sqlite_engine, f"{role}@example.com", role)
    return dash_app


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.server.test_client()


def csrf_token(client) -> str:  # type: ignore[no-untyped-def]
    import re

    page = client.get("/login").get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "login form has no CSRF token"
    return match.group(1)


def login(client, email: str = "viewer@example.com", password: str = PASSWORD, **extra):  # type: ignore[no-untyped-def]
    data = {"email": email, "password": password, "csrf_token": csrf_token(client)}
    data.update(extra)
    return client.post("/login", data=data)


@pytest.fixture
def dashboard(app, sqlite_engine: Engine):  # type: ignore[no-untyped-def]
    """The sample imported and two published snapshots (as of 2011-09-30, then the last day),
    k=3 each, so every page has data, migration included. Returns the two refit outcomes."""
    from datetime import date

    from db.importer import import_file
    from tests.refitting import refit

    import_file(sqlite_engine, SAMPLE)
    first = refit(sqlite_engine, k=3, as_of=date(2011, 9, 30))
    second = refit(sqlite_engine, k=3)
    return first, second


@contextmanager
def as_user(app, email: str = "viewer@example.com") -> Iterator[None]:  # type: ignore[no-untyped-def]
    """Run page callbacks directly, inside a request of the logged-in `email`."""
    from flask_login import login_user
    from sqlalchemy import select

    from db.models import User
    from webapp.auth import SessionUser
    from webapp.state import state

    with app.server.test_request_context("/_dash-update-component", method="POST"):
        with state().sessions() as db:
            user = db.scalar(select(User).where(User.email == email))
            assert user is not None, email
            login_user(SessionUser(user))
        yield


def page(name: str):  # type: ignore[no-untyped-def]
    """A page module as the app loaded it (`pages.<name>`). Importing `webapp.pages.<name>`
    directly would register the page a second time and break the next app."""
    import sys

    return sys.modules[f"pages.{name}"]
