"""Fixtures: settings, databases (SQLite and PostgreSQL), the app, a client and a login helper.

PostgreSQL comes from TEST_DATABASE_URL (`make test` sets it); without it the PostgreSQL tests
fail with a message saying what to do, rather than being skipped.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from config import Settings
from db.migrate import upgrade
from db.session import make_engine

# The shops' own databases of the database-source tests (fixtures `shop`, `pg_shop`).
pytest_plugins = ["tests.shops"]

DATA = Path(__file__).parent / "data"
SAMPLE = DATA / "online_retail_sample.csv"
RAW = DATA / "online_retail_raw_2010-12-01_09.csv"
CDNOW = DATA / "cdnow_sample.csv"
PASSWORD = "correct horse battery"
USERS = tuple((f"{role}@example.com", role) for role in ("viewer", "analyst", "admin"))


def pytest_setup_options():  # called by dash[testing] for its Chrome driver
    from bench.chrome import chrome_options

    return chrome_options(shell=True)


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


def built_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]
) -> Path:
    """The folder `name`, filled by `build(folder)` once for the whole run rather than once in
    each of pytest-xdist's processes: they share the parent of their temporary folders, the first
    to come builds under a lock and the others wait for it. A build that fails is tried again by
    the next process (and fails its tests with its own error)."""
    import fcntl
    import shutil

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    folder = root / name
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / ".built").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            (folder / ".built").touch()
    return folder


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once per test run (each test gets a copy)."""

    def build(folder: Path) -> None:
        engine = make_engine(f"sqlite:///{folder / 'head.db'}")
        upgrade(engine)
        engine.dispose()

    return built_once(tmp_path_factory, "migrated", build) / "head.db"


@pytest.fixture
def sqlite_engine(tmp_path: Path, migrated_sqlite: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'test.db'}")
    copy_database(migrated_sqlite, engine)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_url)
    _truncate_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture(autouse=True)
def _no_predictions_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refits in tests publish without fitting the prediction models (a minute of pytensor
    compiling in a fresh instance folder); tests/test_prediction_stage.py turns them on."""
    monkeypatch.setenv("CUSTSEG_PREDICTIONS", "false")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that need PostgreSQL carry the `postgres` marker (`-m "not postgres"` skips them).
    The files with browser tests run first: they take longest, and `make test` hands out whole
    files to its processes in this order, so a long one started last would run on alone."""
    for item in items:
        if "pg_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)
    in_browser = {item.path for item in items if item.get_closest_marker("browser")}
    items.sort(key=lambda item: item.path not in in_browser)  # stable: file order kept


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest) -> Engine:
    """The same test on both databases."""
    name = "sqlite_engine" if request.param == "sqlite" else "pg_engine"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


def make_settings(tmp_path: Path, url: str, **overrides: object) -> Settings:
    values: dict[str, object] = dict(
        env="test",
        secret_key="test-secret-0123456789-abcdefghijklmnopqrstuvwxyz",
        database_url=url,
        instance_dir=tmp_path / "instance",
        login_rate_limit="1000 per minute",
        predictions=False,
    )
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path, sqlite_engine: Engine) -> Settings:
    return make_settings(tmp_path, str(sqlite_engine.url))


@functools.lru_cache(maxsize=8)
def password_hash(password: str) -> str:
    """A scrypt hash of `password`, made once per test session. A tenth of the app's cost
    (n=4096 instead of werkzeug's 32768): each login of a test user checks it, ~8 ms instead of
    ~90 ms; the login path is the same (the hash names its own parameters)."""
    from werkzeug.security import generate_password_hash

    return generate_password_hash(password, method="scrypt:4096:8:1")


def add_user(engine: Engine, email: str, role: str = "viewer", password: str = PASSWORD) -> None:
    from db.models import User
    from db.models.users import MIN_PASSWORD_LENGTH
    from db.session import session_scope

    assert len(password) >= MIN_PASSWORD_LENGTH
    with session_scope(engine) as db:
        db.add(
            User(
                email=email,
                role=role,
                active=True,
                session_version=1,
                password_hash=password_hash(password),
            )
        )


def import_rejection(engine: Engine, path: Path, **options: object) -> str:
    """The message of the ImportRejected that importing `path` (with `options`) raises."""
    from db.importer import ImportRejected, import_file

    with pytest.raises(ImportRejected) as info:
        import_file(engine, path, **options)  # type: ignore[arg-type]
    return str(info.value)


def fail_at_call(
    monkeypatch: pytest.MonkeyPatch, target: object, name: str, n: int, error: Exception
) -> None:
    """Make `target.name` raise `error` at its `n`-th call; the other calls go through."""
    real = getattr(target, name)
    calls = 0

    def failing(*args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        if calls == n:
            raise error
        return real(*args, **kwargs)

    monkeypatch.setattr(target, name, failing)


def command_line_env(
    monkeypatch: pytest.MonkeyPatch, url: str, instance_dir: Path, **more: str
) -> None:
    """The environment `custseg` commands read: a development instance on `url` with its files
    in `instance_dir`, and the variables `more`; the settings are read again."""
    from config.settings import get_settings

    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("CUSTSEG_ENV", "development")
    monkeypatch.setenv("CUSTSEG_INSTANCE_DIR", str(instance_dir))
    for name, value in more.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()


def forget_page_duplicates() -> None:
    """A test that imports `webapp.pages.x` registers that page a second time under this name;
    Dash would then refuse every later app for duplicate paths. And an app a test made but never
    served leaves its pages' callbacks in Dash's global list (each app runs the page modules
    again), where the next app would take them up as duplicates: the list starts empty."""
    import dash
    from dash import _callback

    for name in [n for n in dash.page_registry if n.startswith("webapp.pages.")]:
        dash.page_registry.pop(name)
    _callback.GLOBAL_CALLBACK_LIST.clear()
    _callback.GLOBAL_CALLBACK_MAP.clear()


@pytest.fixture
def app(settings: Settings, sqlite_engine: Engine):  # type: ignore[no-untyped-def]
    from webapp.app import create_app
    from webapp.auth import limiter

    forget_page_duplicates()
    dash_app = create_app(settings, sqlite_engine)
    limiter.reset()
    for email, role in USERS:
        add_user(sqlite_engine, email, role)
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


@pytest.fixture(scope="session")
def dashboard_template(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The dashboard's database and its two refits' outcomes, built once per test run (see
    `dashboard`)."""
    import pickle
    from datetime import date

    from db.importer import import_file
    from tests.refitting import refit

    def build(folder: Path) -> None:
        engine = make_engine(f"sqlite:///{folder / 'dashboard.db'}")
        upgrade(engine)
        for email, role in USERS:
            add_user(engine, email, role)
        import_file(engine, SAMPLE)
        first = refit(engine, k=3, as_of=date(2011, 9, 30))
        second = refit(engine, k=3)
        engine.dispose()
        (folder / "outcomes.pickle").write_bytes(pickle.dumps((first, second)))

    folder = built_once(tmp_path_factory, "dashboard", build)
    return folder / "dashboard.db", pickle.loads((folder / "outcomes.pickle").read_bytes())


def copy_database(source: Path, engine: Engine) -> None:
    """Replace the SQLite database of `engine` by a copy of `source` (SQLite's backup API)."""
    import sqlite3

    engine.dispose()
    target = make_url(str(engine.url)).database
    assert target
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


@pytest.fixture
def dashboard(app, sqlite_engine: Engine, dashboard_template):  # type: ignore[no-untyped-def]
    """The sample imported and two published snapshots (as of 2011-09-30, then the last day),
    k=3 each, so every page has data, migration included, and the three users. Built once per
    test run and copied into each test's database (tests may write to it). Returns the two refit
    outcomes (read them, do not change them)."""
    path, outcomes = dashboard_template
    copy_database(path, sqlite_engine)
    return outcomes


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


def export_frame(
    engine: Engine, name: str, filters: object = None, snapshot_id: int | None = None, **kw: object
):  # type: ignore[no-untyped-def]
    """Export `name` of a snapshot and its provenance, as pages, downloads and the CLI get it."""
    from analytics.exports import Filters
    from db.exporter import Exporter
    from db.snapshot_cache import SnapshotCache

    f = filters if filters is not None else Filters()
    return Exporter(engine, SnapshotCache()).export(name, f, snapshot_id, **kw)  # type: ignore[arg-type]


def frame(engine: Engine, name: str, role: str | None = None, **filters: object):  # type: ignore[no-untyped-def]
    """The frame of export `name` as `role` sees it (None: the command line), its filters (and
    `snapshot`) given by name."""
    from analytics.exports import Filters

    snapshot = filters.pop("snapshot", None)
    return export_frame(engine, name, Filters(**filters), snapshot, role=role)[0]  # type: ignore[arg-type]


def view(
    start: object = None, end: object = None, segments: object = None, snapshot: object = None
) -> dict[str, object]:
    """The filter bar's values as a page callback takes them (by name)."""
    return {"start": start, "end": end, "segments": segments, "snapshot": snapshot}


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(dash_duo, app) -> str:  # type: ignore[no-untyped-def]
    """Start `app` for a browser test on a free port (tests may run beside other servers) and
    return its base URL; the test then logs in through the form."""
    dash_duo.start_server(app, navigate=False, port=free_port())
    return str(dash_duo.server.url)


def bare_settings(**values: object) -> Settings:
    """Settings as declared (not this shell's environment), predictions off unless asked for:
    a refit job would otherwise fit the prediction models (a minute of compiling)."""
    values.setdefault("predictions", False)
    return Settings.model_construct(**values)  # type: ignore[arg-type]
