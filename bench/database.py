"""A fresh PostgreSQL database per run: created, migrated to head, dropped at the end."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def fresh_database(server_url: str, scale: str, keep: bool = False) -> Iterator[str]:
    """Yield the SQLAlchemy URL of a new, migrated database on `server_url`'s server."""
    from db.migrate import upgrade
    from db.session import make_engine

    name = f"custseg_bench_{scale.lower()}_{uuid.uuid4().hex[:8]}"
    admin = _libpq(server_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_url(server_url).set(drivername="postgresql+psycopg", database=name)
    url_text = url.render_as_string(hide_password=False)
    try:
        engine = make_engine(url_text)
        upgrade(engine)
        engine.dispose()
        yield url_text
    finally:
        if not keep:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )


def checkpoint(libpq_url: str) -> None:
    """Flush dirty buffers so a timed write does not pay for the previous one's."""
    with psycopg.connect(libpq_url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def truncate_all(libpq_url: str) -> None:
    """Empty the transactions and every snapshot table (a clean slate between repetitions)."""
    with psycopg.connect(libpq_url, autocommit=True) as conn:
        conn.execute(
            "TRUNCATE transactions, import_batches, snapshots, segment_labels "
            "RESTART IDENTITY CASCADE"
        )
        conn.execute("VACUUM ANALYZE")


def has_transactions(libpq_url: str) -> bool:
    with psycopg.connect(libpq_url) as conn:
        return conn.execute("SELECT EXISTS (SELECT 1 FROM transactions)").fetchone() == (True,)
