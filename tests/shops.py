"""Shops' own databases for the database-source tests (tests/test_sources.py,
tests/test_data_page.py): PostgreSQL or MariaDB, made by each test (never the app's database),
with an `order_lines` table and a reader that may only SELECT it.

MariaDB (or MySQL) comes from TEST_MYSQL_URL, default mysql://root@127.0.0.1:3306/ (root
without a password, as on the development machines); without one the MariaDB tests fail with
what to do, as the PostgreSQL ones do.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from analytics.sync import decode_watermark
from db.models import ImportBatch, Source, Transaction
from db.session import make_engine
from db.sources import SourceSpec, make_spec
from tests.conftest import pg_database

MYSQL_ADMIN_URL = os.environ.get("TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/")
READER_PASSWORD = "reader-Pw-7f3x"
PASSWORD_ENV = "CUSTSEG_TEST_SHOP_PASSWORD"
COLUMNS = "line_id, customer, order_no, ordered_at, amount, category, country, updated_at"
DDL = {
    "postgresql": (
        "CREATE TABLE order_lines (line_id integer PRIMARY KEY, customer varchar(64), "
        "order_no varchar(64) NOT NULL, ordered_at timestamp NOT NULL, amount numeric(12, 2), "
        "category varchar(128), country varchar(64), updated_at timestamp(6) NOT NULL)"
    ),
    "mariadb": (
        "CREATE TABLE order_lines (line_id integer PRIMARY KEY, customer varchar(64), "
        "order_no varchar(64) NOT NULL, ordered_at datetime NOT NULL, amount decimal(12, 2), "
        "category varchar(128), country varchar(64), updated_at datetime(6) NOT NULL) "
        "ENGINE=InnoDB"
    ),
}
T0 = datetime(2025, 1, 1)  # updated_at of line i: T0 + i seconds, unless a test changes it


@dataclass
class Shop:
    """A shop's database: `admin` writes its lines (as the shop would), `url` is the reader's
    (SELECT on order_lines only, password in PASSWORD_ENV)."""

    dialect: str
    admin: Engine
    url: str
    reader: str

    def run(self, sql: str, rows: Any = None) -> None:
        with self.admin.begin() as conn:
            conn.execute(text(sql), rows or {})

    def insert(self, rows: list[dict[str, Any]]) -> None:
        values = ", ".join(f":{c.strip()}" for c in COLUMNS.split(","))
        self.run(f"INSERT INTO order_lines ({COLUMNS}) VALUES ({values})", rows)  # noqa: S608

    def lines(self) -> set[tuple[Any, ...]]:
        with self.admin.connect() as conn:
            rows = conn.execute(
                text("SELECT line_id, customer, order_no, ordered_at, amount FROM order_lines")
            ).all()
        return {(str(r[0]), r[1], r[2], r[3], round(float(r[4]), 2)) for r in rows}

    def kill_reader(self) -> None:
        """End the reader's sessions, as a dropped connection would."""
        with self.admin.connect() as conn:
            if self.dialect == "postgresql":
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE usename = :r AND pid <> pg_backend_pid()"
                    ),
                    {"r": self.reader},
                )
            else:
                ids = conn.execute(
                    text("SELECT id FROM information_schema.processlist WHERE user = :r"),
                    {"r": self.reader},
                ).scalars()
                for ident in list(ids):
                    conn.execute(text(f"KILL CONNECTION {int(ident)}"))
            conn.commit()


def shop_lines(first: int, count: int) -> list[dict[str, Any]]:
    """Order lines `first`..`first + count - 1`: 40 customers, 3 lines an order, a return in
    every 23, a line without category in every 5."""
    return [
        {
            "line_id": i,
            "customer": f"c{i % 40:03d}",
            "order_no": f"o{i // 3:05d}",
            "ordered_at": datetime(2024, 1, 1) + timedelta(hours=7 * i),
            "amount": Decimal(f"{(-1 if i % 23 == 0 else 1) * ((i % 17) + 0.25):.2f}"),
            "category": None if i % 5 == 0 else f"cat{i % 4}",
            "country": "DE",
            "updated_at": T0 + timedelta(seconds=i),
        }
        for i in range(first, first + count)
    ]


@contextmanager
def postgres_shop(admin_url: str) -> Iterator[Shop]:
    reader = f"custseg_reader_{uuid.uuid4().hex[:8]}"
    server = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with pg_database(admin_url, "custseg_shop") as url:
            admin = make_engine(url)
            with admin.begin() as conn:
                conn.execute(text(DDL["postgresql"]))
                conn.execute(text(f"CREATE ROLE {reader} LOGIN PASSWORD '{READER_PASSWORD}'"))
                conn.execute(text(f"GRANT SELECT ON order_lines TO {reader}"))
            try:
                yield Shop(
                    "postgresql",
                    admin,
                    make_url(url).set(username=reader).render_as_string(hide_password=False),
                    reader,
                )
            finally:
                admin.dispose()
    finally:
        with server.connect() as conn:
            conn.execute(text(f"DROP ROLE IF EXISTS {reader}"))
        server.dispose()


@contextmanager
def mariadb_shop() -> Iterator[Shop]:
    base = make_url(MYSQL_ADMIN_URL).set(drivername="mysql+pymysql")
    server = create_engine(base, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        server.connect().close()
    except DBAPIError as exc:
        pytest.fail(
            f"no MariaDB/MySQL at {MYSQL_ADMIN_URL} ({exc.orig}): start it, or point "
            "TEST_MYSQL_URL at one (a user that may create databases and users)"
        )
    tag = uuid.uuid4().hex[:8]
    name, reader = f"custseg_shop_{tag}", f"custseg_r_{tag}"
    with server.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
        conn.execute(text(f"CREATE USER '{reader}'@'%' IDENTIFIED BY '{READER_PASSWORD}'"))
    admin = create_engine(base.set(database=name), poolclass=NullPool)
    try:
        with admin.begin() as conn:
            conn.execute(text(DDL["mariadb"]))
        with server.connect() as conn:
            conn.execute(text(f"GRANT SELECT ON {name}.order_lines TO '{reader}'@'%'"))
        url = make_url(MYSQL_ADMIN_URL).set(username=reader, password=None, database=name)
        yield Shop("mariadb", admin, url.render_as_string(hide_password=False), reader)
    finally:
        admin.dispose()
        with server.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
            conn.execute(text(f"DROP USER IF EXISTS '{reader}'@'%'"))
        server.dispose()


@pytest.fixture(
    params=[
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ],
)
def shop(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Shop]:
    """The shop's database, PostgreSQL or MariaDB; the reader's password in PASSWORD_ENV."""
    monkeypatch.setenv(PASSWORD_ENV, READER_PASSWORD)
    if request.param == "postgresql":
        with postgres_shop(request.getfixturevalue("pg_admin_url")) as made:
            yield made
    else:
        with mariadb_shop() as made:
            yield made


@pytest.fixture
def pg_shop(pg_admin_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Shop]:
    monkeypatch.setenv(PASSWORD_ENV, READER_PASSWORD)
    with postgres_shop(pg_admin_url) as made:
        yield made


def shop_spec(shop: Shop, name: str = "shop") -> SourceSpec:
    return make_spec(
        name,
        shop.url,
        table="order_lines",
        mapping={"customer_id": "customer", "order_id": "order_no", "category": "category"},
        key_column="line_id",
        watermark_column="updated_at",
        password_env=PASSWORD_ENV,
    )


def stored_lines(engine: Engine) -> set[tuple[Any, ...]]:
    t = Transaction
    with engine.connect() as conn:
        rows = conn.execute(
            select(t.source_key, t.customer_id, t.order_id, t.ordered_at, t.amount)
        ).all()
    return {
        (
            r[0],
            r[1],
            r[2],
            r[3] if isinstance(r[3], datetime) else datetime.fromisoformat(r[3]),
            round(r[4], 2),
        )
        for r in rows
    }


def batch_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(ImportBatch)).scalar_one())


def watermark(engine: Engine) -> Any:
    with engine.connect() as conn:
        stored = conn.execute(select(Source.watermark)).scalar_one()
    return None if stored is None else decode_watermark(stored)
