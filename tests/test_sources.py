"""Database sources: a shop's own PostgreSQL or MariaDB, made by each test (tests/shops.py),
read by a user with SELECT on its table only. Initial and incremental syncs, syncs that fail
half-way, errors in one line, a refit after a sync against a file import of the same lines."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, create_engine, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from analytics.exports import Filters
from analytics.sync import (
    compare_lines,
    decode_watermark,
    encode_watermark,
    key_problem,
    line_keys,
)
from db import jobs
from db.batches import list_batches, remove_batch
from db.importer import import_file
from db.models import JobStatus, Source, SourceSync, Trigger
from db.scheduler import Scheduler
from db.session import make_engine
from db.sources import (
    SourceError,
    SyncFailed,
    add_source,
    make_spec,
    reading,
    sync,
    sync_history,
)
from db.sources import test_source as probe_source
from tests.conftest import CDNOW, bare_settings, command_line_env, export_frame
from tests.shops import (
    PASSWORD_ENV,
    READER_PASSWORD,
    T0,
    Shop,
    batch_count,
    shop_lines,
    shop_spec,
    stored_lines,
    watermark,
)

# --- syncs -------------------------------------------------------------------------------


def test_an_initial_sync_imports_every_line_as_one_batch_and_an_idle_one_adds_nothing(
    shop: Shop, engine: Engine
) -> None:
    shop.insert(shop_lines(1, 1_200))
    add_source(engine, shop_spec(shop))
    first = sync(engine, "shop", chunk_lines=500)
    assert (first.status, first.lines_read, first.new, first.changed, first.removed) == (
        "done",
        1_200,
        1_200,
        0,
        0,
    )
    assert first.report is not None and first.report.lines_imported == 1_200
    assert first.report.summary().startswith("Imported source shop, sync 1 (normalized layout)")
    assert first.report.read_as["lines"] == "all (full sync)"
    assert stored_lines(engine) == shop.lines()
    (batch,) = list_batches(engine)
    assert (batch.file_name, batch.lines, batch.orders, batch.customers) == (
        "source shop, sync 1",
        1_200,
        401,
        40,
    )
    assert watermark(engine) == T0 + timedelta(seconds=1_200)

    idle = sync(engine, "shop", chunk_lines=500)
    assert (idle.status, idle.lines_read, idle.batch_id) == ("unchanged", 1, None)  # the last
    assert batch_count(engine) == 1
    assert [(h.id, h.status, h.lines_new) for h in sync_history(engine)] == [
        (idle.sync_id, "unchanged", 0),
        (first.sync_id, "done", 1_200),
    ]


def test_an_incremental_sync_adds_new_lines_replaces_changed_ones_and_removes_deleted_ones(
    shop: Shop, engine: Engine
) -> None:
    shop.insert(shop_lines(1, 1_200))
    add_source(engine, shop_spec(shop))
    sync(engine, "shop", chunk_lines=500)
    later = T0 + timedelta(days=1)
    shop.insert([{**line, "updated_at": later} for line in shop_lines(1_201, 30)])
    shop.run(
        "UPDATE order_lines SET amount = amount + 10, updated_at = :at WHERE line_id <= 5",
        {"at": later + timedelta(seconds=1)},
    )
    shop.run(  # touched, not changed: pulled again, written never
        "UPDATE order_lines SET updated_at = :at WHERE line_id IN (100, 101)",
        {"at": later + timedelta(seconds=2)},
    )
    shop.run("DELETE FROM order_lines WHERE line_id IN (10, 11, 12)")

    step = sync(engine, "shop", chunk_lines=16)
    # Pulled: line 1,200 (at the last watermark), 30 new, 5 changed, 2 touched.
    assert (step.lines_read, step.new, step.changed, step.unchanged, step.removed) == (
        38,
        30,
        5,
        3,
        3,
    )
    assert step.report is not None
    assert step.report.read_as["lines"] == f"with updated_at >= {T0 + timedelta(seconds=1_200)}"
    assert step.report.lines_imported == 35
    assert "5 replaced an earlier version, 3 were unchanged" in step.report.summary()
    assert stored_lines(engine) == shop.lines()
    assert len(stored_lines(engine)) == 1_227
    assert watermark(engine) == later + timedelta(seconds=2)

    again = sync(engine, "shop", full=True, chunk_lines=500)
    assert (again.status, again.lines_read, again.unchanged) == ("unchanged", 1_227, 1_227)
    assert stored_lines(engine) == shop.lines()


def test_a_sync_that_fails_half_way_leaves_the_data_as_it_was(shop: Shop, engine: Engine) -> None:
    shop.insert(shop_lines(1, 600))
    add_source(engine, shop_spec(shop))
    sync(engine, "shop", chunk_lines=250)
    before, mark = stored_lines(engine), watermark(engine)
    shop.insert(shop_lines(601, 1_000))
    shop.run("UPDATE order_lines SET amount = NULL WHERE line_id = 1300")

    # An invalid value in the fourth chunk: three chunks were written, then rolled back.
    with pytest.raises(SyncFailed) as invalid:
        sync(engine, "shop", chunk_lines=250)
    assert "source shop, sync 2, row 701, column amount: not a number" in str(invalid.value)
    assert "Fix these lines at the source (or the query)" in str(invalid.value)
    assert stored_lines(engine) == before and batch_count(engine) == 1
    assert watermark(engine) == mark

    # The connection to the shop drops after the first chunk was written.
    shop.run("UPDATE order_lines SET amount = 5 WHERE line_id = 1300")
    written: list[int] = []

    def drop_after_first_chunk(lines: int) -> None:
        written.append(lines)
        if len(written) == 1:
            shop.kill_reader()

    with pytest.raises(SyncFailed) as dropped:
        sync(engine, "shop", chunk_lines=250, progress=drop_after_first_chunk)
    message = str(dropped.value)
    assert message.startswith("source shop: ") and " failed: " in message
    assert "\n" not in message and READER_PASSWORD not in message
    assert written[0] == 250
    assert stored_lines(engine) == before and batch_count(engine) == 1
    assert watermark(engine) == mark
    statuses = [(h.status, (h.error or "")[:13]) for h in sync_history(engine)]
    assert statuses == [("failed", "source shop: "), ("failed", "source shop, "), ("done", "")]

    done = sync(engine, "shop", chunk_lines=250)
    assert (done.new, done.unchanged) == (1_000, 1)
    assert stored_lines(engine) == shop.lines()


def test_a_refit_after_a_sync_gives_the_kpis_of_a_file_import_of_the_same_lines(
    shop: Shop, sqlite_engine: Engine, tmp_path: Path
) -> None:
    lines = pd.read_csv(CDNOW, dtype=str, keep_default_na=False)
    shop.insert(
        [
            {
                "line_id": i,
                "customer": r.customer_id,
                "order_no": r.order_id,
                "ordered_at": datetime.fromisoformat(r.ordered_at),
                "amount": Decimal(r.amount),
                "category": r.category or None,
                "country": r.country or None,
                "updated_at": T0 + timedelta(seconds=i),
            }
            for i, r in enumerate(lines.itertuples(), start=1)
        ]
    )
    settings = bare_settings()
    add_source(sqlite_engine, shop_spec(shop))
    jobs.enqueue(sqlite_engine, "sync", {}, trigger=Trigger.WEB)  # "Sync now", every source
    ran = Scheduler(sqlite_engine, settings).drain()
    ran = [j for j in ran if j.kind not in ("files", "notify")]  # what a refit queues after it
    assert [(j.kind, j.status) for j in ran] == [("sync", JobStatus.DONE), ("refit", "done")]
    assert ran[0].message is not None and "6,919 new" in ran[0].message

    from_file = make_engine(f"sqlite:///{tmp_path / 'file.db'}")
    from db.migrate import upgrade

    upgrade(from_file)
    import_file(from_file, CDNOW)
    jobs.enqueue(from_file, "refit", {}, trigger=Trigger.CLI)
    done = Scheduler(from_file, settings).drain()
    assert [j.kind for j in done if j.status == JobStatus.DONE] == ["refit", "files", "notify"]

    synced, _ = export_frame(sqlite_engine, "kpis", Filters())
    filed, _ = export_frame(from_file, "kpis", Filters())
    assert synced.to_dict("records") == filed.to_dict("records")
    assert synced.iloc[0]["customers"] == 2_349  # of 2,357: 8 have no positive order
    segments = [export_frame(e, "segments", Filters())[0] for e in (sqlite_engine, from_file)]
    assert segments[0]["customers"].tolist() == segments[1]["customers"].tolist()
    from_file.dispose()


def test_the_reader_may_only_select_and_a_sync_cannot_write_even_as_the_owner(
    shop: Shop,
) -> None:
    as_reader = create_engine(
        make_url(shop.url)
        .set(
            drivername="postgresql+psycopg" if shop.dialect == "postgresql" else "mysql+pymysql",
            password=READER_PASSWORD,
        )
        .render_as_string(hide_password=False),
        poolclass=NullPool,
    )
    with pytest.raises(DBAPIError, match="(?i)permission denied|command denied"):
        with as_reader.begin() as conn:
            conn.execute(text("DELETE FROM order_lines"))
    as_reader.dispose()

    owner = make_url(shop.admin.url)  # may write: the transaction a sync opens may not
    spec = make_spec(
        "owner",
        owner.set(password=None).render_as_string(hide_password=False),
        table="order_lines",
        key_column="line_id",
        watermark_column="updated_at",
        password_env=PASSWORD_ENV if owner.password else None,
    )
    if owner.password:
        os.environ[PASSWORD_ENV] = owner.password
    with reading(spec) as reader:
        with pytest.raises(DBAPIError, match="(?i)read-only transaction|read only transaction"):
            reader.conn.execute(text("DELETE FROM order_lines"))


def test_connection_and_query_errors_say_so_in_one_line_and_change_nothing(
    shop: Shop, sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from config.settings import get_settings
    from webapp.cli import main

    command_line_env(monkeypatch, str(sqlite_engine.url), tmp_path)
    runner = CliRunner()
    shop.insert(shop_lines(1, 300))
    common = [
        "--table",
        "order_lines",
        "--map",
        "customer_id=customer",
        "--map",
        "order_id=order_no",
        "--key",
        "line_id",
        "--watermark",
        "updated_at",
        "--password-env",
        PASSWORD_ENV,
    ]
    closed = make_url(shop.url).set(port=1).render_as_string(hide_password=False)
    refused = runner.invoke(main, ["source", "add", "shop", closed, *common])
    assert refused.exit_code == 1
    assert refused.output.startswith("error: source shop: cannot connect to ")
    assert refused.output.count("\n") == 1

    with_password = make_url(shop.url).set(password=READER_PASSWORD)
    secret = runner.invoke(
        main,
        ["source", "add", "shop", with_password.render_as_string(hide_password=False), *common],
    )
    assert secret.exit_code == 1 and "the URL holds a password" in secret.output

    added = runner.invoke(main, ["source", "add", "shop", shop.url, *common])
    assert added.exit_code == 0, added.output
    assert "(read-only transaction); table order_lines: 300 lines" in added.output
    synced = runner.invoke(main, ["sync"])
    assert synced.exit_code == 0, synced.output
    assert "300 new" in synced.output and "refit queued (job 1)" in synced.output
    listed = runner.invoke(main, ["source", "list"])
    assert f"password: environment variable {PASSWORD_ENV}" in listed.output
    with sqlite_engine.connect() as conn:
        row = conn.execute(select(Source)).one()
    assert READER_PASSWORD not in repr(tuple(row)) + listed.output + synced.output
    before = stored_lines(sqlite_engine)

    with sqlite_engine.begin() as conn:  # the shop's server moved: nothing listens there now
        conn.execute(update(Source).values(url=closed))
    moved = runner.invoke(main, ["sync", "shop"])
    assert moved.exit_code == 1
    assert moved.output.startswith("error: source shop: cannot connect to ")
    assert moved.output.count("\n") == 1
    with sqlite_engine.begin() as conn:
        conn.execute(update(Source).values(url=shop.url))

    monkeypatch.delenv(PASSWORD_ENV)
    unset = runner.invoke(main, ["sync", "shop"])
    assert f"the environment variable {PASSWORD_ENV} (its password) is not set" in unset.output

    monkeypatch.setenv(PASSWORD_ENV, READER_PASSWORD)
    shop.run("ALTER TABLE order_lines RENAME TO old_lines")
    gone = runner.invoke(main, ["sync", "shop"])
    assert gone.exit_code == 1
    assert gone.output.startswith("error: source shop: the query failed: ")
    assert gone.output.count("\n") == 1
    assert stored_lines(sqlite_engine) == before
    with sqlite_engine.connect() as conn:
        outcomes = conn.execute(select(SourceSync.status).order_by(SourceSync.id)).scalars()
        assert list(outcomes) == ["done", "failed", "failed", "failed"]
    missing = runner.invoke(main, ["sync", "nope"])
    assert missing.exit_code == 1 and "no source named 'nope'" in missing.output
    get_settings.cache_clear()


@pytest.mark.postgres
def test_removing_a_sync_batch_makes_the_next_sync_read_everything_again(
    pg_shop: Shop, sqlite_engine: Engine
) -> None:
    pg_shop.insert(shop_lines(1, 100))
    add_source(sqlite_engine, shop_spec(pg_shop))
    first = sync(sqlite_engine, "shop")
    assert first.batch_id is not None
    removed = remove_batch(sqlite_engine, first.batch_id)
    assert removed.lines == 100 and stored_lines(sqlite_engine) == set()
    assert watermark(sqlite_engine) is None  # the source is the truth: it comes back
    back = sync(sqlite_engine, "shop")
    assert (back.new, back.since) == (100, None)
    assert stored_lines(sqlite_engine) == pg_shop.lines()


# --- the pure parts ------------------------------------------------------------------------


def test_pulled_lines_are_new_changed_or_unchanged_by_their_key() -> None:
    stored = pd.DataFrame(
        {
            "id": [11, 12, 13],
            "source_key": ["1", "2", "3"],
            "customer_id": ["a", None, "c"],
            "order_id": ["o1", "o2", "o3"],
            "ordered_at": pd.to_datetime(
                ["2024-01-01 10:00", "2024-01-02", "2024-01-03"], format="ISO8601"
            ),
            "amount": [10.5, 3.0, 7.25],
            "category": [None, "x", None],
            "country": ["DE", "DE", None],
        }
    )
    pulled = stored.drop(columns="id").copy()
    pulled["source_key"] = ["2", "3", "4"]
    pulled["customer_id"] = pd.array([None, "c", "d"], dtype="string")
    pulled["order_id"] = ["o2", "o3", "o4"]
    pulled["ordered_at"] = pd.to_datetime(
        ["2024-01-02", "2024-01-03 00:00:01", "2024-01-04"], format="ISO8601"
    )
    pulled["amount"] = [3.0, 7.25, 1.0]
    pulled["category"] = pd.array(["x", pd.NA, pd.NA], dtype="string")
    pulled["country"] = ["DE", None, None]
    changes = compare_lines(pulled, stored)
    assert changes.new.tolist() == [False, False, True]
    assert changes.changed.tolist() == [False, True, False]  # one second later
    assert changes.unchanged.tolist() == [True, False, False]
    assert changes.replaced_ids.tolist() == [13]


def test_line_keys_must_be_present_short_and_unique() -> None:
    assert line_keys(pd.Series([1042, 1042.0, " k7 "], dtype=object)).tolist() == [
        "1042",
        "1042",
        "k7",
    ]
    assert key_problem(pd.Series(["1", "2"])) is None
    assert key_problem(pd.Series(["1", ""])) == (1, "is empty")
    assert key_problem(pd.Series(["1", "x" * 129])) == (1, "is longer than 128 characters")
    assert key_problem(pd.Series(["1", "2", "1"])) == (
        2,
        "'1' appears twice: it is not a line key",
    )


@pytest.mark.parametrize(
    "value",
    [
        datetime(2025, 3, 1, 12, 0, 0, 123456),
        pd.Timestamp("2025-03-01 12:00"),
        datetime(2025, 3, 1).date(),
        np.int64(7),
        Decimal("12.50"),
        2.5,
        "2025-03-01",
    ],
)
def test_a_watermark_is_stored_with_its_type(value: Any) -> None:
    back = decode_watermark(encode_watermark(value))
    expected = {pd.Timestamp: datetime, np.int64: int}.get(type(value), type(value))
    assert back == value and type(back) is expected


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"url": "postgresql://reader:pw@db/shop"}, "the URL holds a password"),
        ({"url": "sqlite:///shop.db"}, "only PostgreSQL (postgresql://) and MySQL / MariaDB"),
        ({"url": "postgresql://reader@db"}, "needs a host and a database"),
        ({"query": "SELECT 1"}, "give a table (or view) or a query, one of the two"),
        ({"table": None}, "give a table (or view) or a query, one of the two"),
        ({"table": "lines; DROP TABLE x"}, "a name such as order_lines"),
        ({"table": None, "query": "DELETE FROM x"}, "the query must be a SELECT"),
        ({"mapping": {"total": "amount"}}, "unknown target column(s) total"),
        ({"name": "my shop"}, "source name 'my shop'"),
        ({"password_env": None, "password_file": "pw"}, "give an absolute path"),
        ({"password_file": "/run/pw"}, "not both"),
    ],
)
def test_a_source_configuration_is_checked_before_it_is_stored(
    changes: dict[str, Any], message: str
) -> None:
    given: dict[str, Any] = {
        "name": "shop",
        "url": "postgresql://reader@db.example.com:5432/shop",
        "table": "order_lines",
        "key_column": "line_id",
        "watermark_column": "updated_at",
        "password_env": "SHOP_DB_PASSWORD",
    }
    given.update(changes)
    with pytest.raises(SourceError) as refused:
        make_spec(**given)
    assert message in str(refused.value)


@pytest.mark.postgres
def test_a_query_source_reads_the_query_with_its_own_colons(pg_shop: Shop) -> None:
    pg_shop.insert(shop_lines(1, 10))
    spec = make_spec(
        "q",
        pg_shop.url,
        query="SELECT line_id, customer AS customer_id, order_no AS order_id, ordered_at, "
        "amount::numeric AS amount, updated_at FROM order_lines WHERE country = 'DE' "
        "AND ordered_at > '2000-01-01 00:00:00';",
        key_column="line_id",
        watermark_column="updated_at",
        password_env=PASSWORD_ENV,
    )
    probe = probe_source(spec)
    assert (probe.lines, probe.keys, probe.no_watermark, probe.ok) == (10, 10, 0, True)
    assert "query SELECT line_id, customer AS customer_id" in probe.summary(spec)
