"""The Alembic migrations build exactly the tables the models describe, on both databases, and
step down and up again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

import db.models  # noqa: F401 - registers every table on Base.metadata
from db.base import Base
from db.migrate import downgrade, upgrade
from db.session import make_engine
from tests.conftest import pg_database


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty database of its own (the shared test databases are left alone)."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'migrations.db'}")
        yield engine
        engine.dispose()
        return
    with pg_database(request.getfixturevalue("pg_admin_url"), "custseg_migrations") as url:
        engine = make_engine(url)
        yield engine
        engine.dispose()


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

    downgrade(empty_engine, "0003")
    assert "snapshot_sales_daily" in _tables(empty_engine)
    downgrade(empty_engine, "base")
    assert _tables(empty_engine) <= {"alembic_version"}

    upgrade(empty_engine)
    assert _drift(empty_engine) == []
    assert "snapshot_sales_daily" not in _tables(empty_engine)
