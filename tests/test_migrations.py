"""The Alembic migrations build exactly the tables the models describe, on both databases, and
step down and up again."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, make_url, text

import db.models  # noqa: F401 - registers every table on Base.metadata
from db.base import Base
from db.migrate import alembic_config, upgrade
from db.session import make_engine


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty database of its own (the shared test databases are left alone)."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'migrations.db'}")
        yield engine
        engine.dispose()
        return
    admin_url = request.getfixturevalue("pg_admin_url")
    name = f"custseg_migrations_{uuid.uuid4().hex[:8]}"
    admin = make_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(make_url(admin_url).set(database=name).render_as_string(False))
    yield engine
    engine.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _downgrade(engine: Engine, revision: str) -> None:
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def _drift(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), Base.metadata))


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def test_migrations_match_the_models_and_go_down_and_up(empty_engine: Engine) -> None:
    upgrade(empty_engine)
    assert _drift(empty_engine) == []
    assert "snapshot_orders" in _tables(empty_engine)
    assert "snapshot_sales_daily" not in _tables(empty_engine)

    _downgrade(empty_engine, "0003")
    assert "snapshot_sales_daily" in _tables(empty_engine)
    _downgrade(empty_engine, "base")
    assert _tables(empty_engine) <= {"alembic_version"}

    upgrade(empty_engine)
    assert _drift(empty_engine) == []
    assert "snapshot_sales_daily" not in _tables(empty_engine)
