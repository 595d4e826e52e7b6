"""Snapshot frames as Arrow files shared by a machine's processes (db/snapshot_files.py).

The files give the same answers as frames read from the database (every export, the pandas
oracle of tests/reference.py), are built once by whichever of several caches (processes) on one
directory gets there first, are mapped rather than copied, and a truncated, corrupt or partial
file is rebuilt, never served. Files of snapshots no longer published are removed.
"""

from __future__ import annotations

import os
import re
import threading
import time
import zlib
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sqlalchemy import Engine

from analytics import exports
from analytics.exports import Filters
from db import snapshots
from db.exporter import Exporter
from db.importer import import_file
from db.snapshot_cache import SnapshotCache
from db.snapshot_files import FRAME, SnapshotFiles, arrays_table, table_arrays
from tests import reference
from tests.conftest import SAMPLE, USERS, add_user, copy_database
from tests.refitting import refit

SKIP = {"campaign_treatment"}  # needs a campaign (tests/test_campaigns_db.py)


@pytest.fixture
def shop(sqlite_engine: Engine, dashboard_template) -> Engine:  # type: ignore[no-untyped-def]
    """The dashboard's database (sample, two published snapshots, k=3)."""
    path, _ = dashboard_template
    copy_database(path, sqlite_engine)
    return sqlite_engine


def filter_sets(src) -> list[Filters]:  # type: ignore[no-untyped-def]
    segs = tuple(int(s) for s in src.segments["segment_id"])
    end = src.snap.data_end
    customer = str(src.customers["customer_id"].iloc[len(src.customers) // 2])
    return [
        Filters(),
        Filters(segments=segs[:1], granularity="week"),
        Filters(start=date(2011, 3, 1), end=date(2011, 9, 15), segments=segs[:2]),
        Filters(start=date(2011, 6, 1), end=end, granularity="day", split_by_segment=True),
        Filters(stages=("Champions", "At risk")),
        Filters(customer=customer),
    ]


def assert_same_exports(left: Exporter, right: Exporter, snapshot_id: int | None = None) -> int:
    """Every export of the snapshot under every filter set is equal from both exporters."""
    compared = 0
    src_left, src_right = left.sources(snapshot_id), right.sources(snapshot_id)
    for f in filter_sets(src_left):
        for name in exports.REGISTRY:
            if name in SKIP or (name == "customer_orders" and f.customer is None):
                continue
            try:
                a, _ = left.export(name, f, snapshot_id, src=src_left)
            except (ValueError, LookupError) as exc:  # refused filters: refused alike
                with pytest.raises(type(exc), match=re.escape(str(exc))):
                    right.export(name, f, snapshot_id, src=src_right)
                continue
            b, _ = right.export(name, f, snapshot_id, src=src_right)
            pd.testing.assert_frame_equal(a, b, check_exact=True, obj=f"{name} {f}")
            compared += 1
    return compared


def files_of(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*.arrow"))


def test_files_answer_as_the_database(shop: Engine, tmp_path: Path) -> None:
    """Frames from the files equal those read from the database, column for column and dtype
    for dtype, and so does every export of both snapshots."""
    mapped = Exporter(shop, SnapshotCache(directory=tmp_path / "cache"))
    direct = Exporter(shop, SnapshotCache())
    for snap in snapshots.published(shop):
        a, b = mapped.sources(snap.id), direct.sources(snap.id)
        pd.testing.assert_frame_equal(a.customers, b.customers, check_exact=True)
        assert a.customers["first_order_day"].dtype == snapshots.DAY
        assert assert_same_exports(mapped, direct, snap.id) > 100
    # orders, customers, profiles, customer sample (predictions are pending: no file), twice
    names = sorted(p.name.split("-")[0] for p in files_of(tmp_path / "cache"))
    assert names == sorted(["customer_sample", "customers", "orders", "profiles"] * 2)
    # A member list still gives days as dates, as before the files.
    members, _ = mapped.export("members", Filters())
    assert isinstance(members["first_order_day"].iloc[0], date)


def test_mapped_index_matches_the_pandas_oracle(shop: Engine, tmp_path: Path) -> None:
    """The index served from its file (views of the mapped pages, read-only) gives the
    reference figures of tests/reference.py."""
    cache = SnapshotCache(directory=tmp_path / "cache")
    src = Exporter(shop, cache).sources()
    index = src.orders
    day = index.blocks[0].day
    assert not day.flags.writeable and not day.flags.owndata  # a view of the map, not a copy
    assert isinstance(index.customer_ids, pa.Array)
    orders = snapshots.orders(shop, src.snap)
    segs = tuple(int(s) for s in src.segments["segment_id"])
    for f in (
        Filters(),
        Filters(segments=segs[:2], granularity="week"),
        Filters(start=date(2011, 2, 14), end=date(2011, 10, 3), granularity="day"),
    ):
        got = exports.compute("sales", src, f)[0]
        pd.testing.assert_frame_equal(got, reference.sales(orders, f), check_dtype=False)
        kpis = exports.compute("kpis", src, f)[0]
        expected = reference.kpis(orders, f, src.snapshot.active_days)
        for col in ("customers", "orders", "returns", "active_customers"):
            assert int(kpis[col].iloc[0]) == int(expected[col].iloc[0]), (col, f)
    one = str(orders["customer_id"].iloc[0])
    mine = orders[orders["customer_id"] == one].sort_values(["day", "total"])
    got = index.customer_orders(one)
    assert got["total"].tolist() == mine["total"].tolist()
    assert index.customer_orders("no such customer").empty


def test_a_truncated_or_corrupt_file_is_rebuilt(shop: Engine, tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    first = Exporter(shop, SnapshotCache(directory=directory))
    expected = first.export("kpis", Filters())[0]
    snap = snapshots.get_snapshot(shop)
    files = SnapshotFiles(directory)
    path = files.path(shop, snap, "orders")
    assert path is not None
    size = path.stat().st_size

    # Truncated (a copy cut short, a full disk): detected by its size, rebuilt, same answer.
    with open(path, "r+b") as fh:
        fh.truncate(size // 2)
    again = Exporter(shop, SnapshotCache(directory=directory))  # another process
    pd.testing.assert_frame_equal(again.export("kpis", Filters())[0], expected)
    rebuilt = files.path(shop, snap, "orders")
    assert rebuilt is not None and rebuilt.stat().st_size == size

    # Same size, one byte changed inside a column: the checksum tells.
    with open(rebuilt, "r+b") as fh:
        fh.seek(size // 2)
        byte = fh.read(1)
        fh.seek(size // 2)
        fh.write(bytes([byte[0] ^ 0xFF]))
    third = Exporter(shop, SnapshotCache(directory=directory))
    pd.testing.assert_frame_equal(third.export("kpis", Filters())[0], expected)
    good = files.path(shop, snap, "orders")
    assert good is not None
    SnapshotFiles._open(good)  # checks out
    assert [p for p in files_of(directory) if p.name.startswith("orders-")] == [good]


def test_a_partial_write_is_never_served(shop: Engine, tmp_path: Path) -> None:
    """A builder that died mid-write leaves only a temporary file, which nobody reads and the
    next builder removes; a file under a final name that is not an Arrow file is refused too."""
    directory = tmp_path / "cache"
    snap = snapshots.get_snapshot(shop)
    folder = SnapshotFiles(directory).snapshot_dir(shop, snap)
    folder.mkdir(parents=True)
    (folder / ".customers.999.1.tmp").write_bytes(b"ARROW1\0\0half a file")
    junk = b"not an arrow file at all"
    (folder / f"customers-{len(junk)}-{zlib.crc32(junk):08x}.arrow").write_bytes(junk)
    mapped = Exporter(shop, SnapshotCache(directory=directory)).sources()
    direct = Exporter(shop, SnapshotCache()).sources()
    pd.testing.assert_frame_equal(mapped.customers, direct.customers, check_exact=True)
    names = sorted(p.name for p in folder.iterdir() if "customers" in p.name)
    assert len(names) == 2 and names[1] == "customers.lock", names  # one good file and the lock
    SnapshotFiles._open(folder / names[0])


def test_two_processes_build_once(shop: Engine, tmp_path: Path) -> None:
    """Two caches (two processes' worth: separate objects, separate file descriptors) on one
    directory, asking at the same time: one builds while the other waits, then both map the
    same file."""
    directory = tmp_path / "cache"
    snap = snapshots.get_snapshot(shop)
    builds: list[int] = []
    real = snapshots.orders

    def slow_orders(engine: Engine, s: object) -> pd.DataFrame:
        builds.append(threading.get_ident())
        time.sleep(0.5)  # long enough for the other to arrive while this one builds
        return real(engine, s)  # type: ignore[arg-type]

    caches = [SnapshotCache(directory=directory) for _ in range(2)]
    results: list[object] = [None, None]

    def ask(i: int) -> None:
        results[i] = Exporter(shop, caches[i]).export("kpis", Filters())[0]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(snapshots, "orders", slow_orders)
        threads = [threading.Thread(target=ask, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(builds) == 1
    pd.testing.assert_frame_equal(results[0], results[1])  # type: ignore[arg-type]
    orders = [p for p in files_of(directory) if p.name.startswith("orders-")]
    assert len(orders) == 1 and SnapshotFiles(directory).path(shop, snap, "orders") == orders[0]


def test_another_process_builds_once_too(shop: Engine, tmp_path: Path) -> None:
    """A real second process (fork) finds the file this one built and maps it."""
    directory = tmp_path / "cache"
    Exporter(shop, SnapshotCache(directory=directory)).export("kpis", Filters())
    before = {p: p.stat().st_mtime_ns for p in files_of(directory)}
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: must not build (the database is made unreachable to prove it)
        code = 1
        try:
            os.close(read)

            def refuse(*_: object) -> None:
                raise AssertionError("built in the child")

            snapshots.orders = refuse  # type: ignore[assignment]
            cache = SnapshotCache(directory=directory)
            snap = snapshots.get_snapshot(shop)
            index = Exporter(shop, cache).sources(snap.id).orders
            os.write(write, str(len(index.customer_ids)).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    answer = os.read(read, 100).decode()
    os.close(read)
    assert status == 0
    assert int(answer) == len(Exporter(shop, SnapshotCache()).sources().orders.customer_ids)
    assert {p: p.stat().st_mtime_ns for p in files_of(directory)} == before


def test_files_of_pruned_snapshots_are_removed(shop: Engine, tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    exporter = Exporter(shop, SnapshotCache(directory=directory))
    first, second = sorted(s.id for s in snapshots.published(shop))
    for snap_id in (first, second):
        exporter.export("kpis", Filters(), snap_id)
    files = SnapshotFiles(directory)
    dirs = {s.id: files.snapshot_dir(shop, s) for s in snapshots.published(shop)}
    assert all(d.is_dir() for d in dirs.values())
    assert exporter.prune() == []  # both still published

    # A refit keeping one snapshot deletes the first; the cache follows.
    refit(shop, k=3, keep=1, keep_monthly=0, force=True)
    published = snapshots.published(shop)
    assert first not in {s.id for s in published}
    removed = exporter.prune()
    assert dirs[first] in removed and not dirs[first].exists()
    # The newest published snapshot's directory is not touched, nor a later one's (a refit in
    # progress) nor another database's.
    later = files.database_dir(shop) / "snapshot-999-20990101T000000000000"
    later.mkdir()
    other = files.root / "another-database" / "snapshot-1-x"
    other.mkdir(parents=True)
    exporter.export("kpis", Filters())
    assert exporter.prune() == [] or all(p not in (later, other) for p in exporter.prune())
    assert later.exists() and other.exists()


def test_an_unusable_directory_falls_back_to_memory(shop: Engine, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the cache directory should be")
    mapped = Exporter(shop, SnapshotCache(directory=blocker))
    direct = Exporter(shop, SnapshotCache())
    pd.testing.assert_frame_equal(
        mapped.export("kpis", Filters())[0], direct.export("kpis", Filters())[0]
    )


def test_frame_and_array_codecs_round_trip() -> None:
    """Every dtype the cached frames use comes back as it went in."""
    frame = pd.DataFrame(
        {
            "customer_id": pd.Series(["b", "a", "c"], dtype="str"),
            "segment_id": np.array([1, 2, 3], dtype=np.int64),
            "monetary": [1.5, np.nan, 3.25],
            "r_score": pd.array([1, None, 5], dtype="Int8"),
            "lifecycle_stage": pd.Categorical(["x", None, "y"], categories=["y", "x", "z"]),
            "first_order_day": pd.array(
                pa.array([date(2011, 1, 2), date(2011, 3, 4), None]), dtype=snapshots.DAY
            ),
            "unscored_reason": pd.Series([None, "only returns", None], dtype=object),
        }
    )
    back = FRAME.decode(FRAME.encode(frame))
    pd.testing.assert_frame_equal(back, frame, check_exact=True)
    arrays = {
        "a": np.arange(5, dtype=np.int64),
        "b": np.linspace(0, 1, 7),
        "empty": np.zeros(0, np.int64),
        "ids": pa.array(["x", "y"], type=pa.large_string()),
    }
    got = table_arrays(arrays_table(arrays))
    for name, values in arrays.items():
        if isinstance(values, np.ndarray):
            np.testing.assert_array_equal(got[name], values)
            assert got[name].dtype == values.dtype
        else:
            assert got[name].equals(values)


@pytest.mark.postgres
def test_files_answer_as_postgresql(pg_engine: Engine, tmp_path: Path) -> None:
    """On PostgreSQL (frames read through COPY) the files answer as the database does."""
    for email, role in USERS:
        add_user(pg_engine, email, role)
    import_file(pg_engine, SAMPLE)
    refit(pg_engine, k=3, as_of=date(2011, 9, 30))
    refit(pg_engine, k=3)
    mapped = Exporter(pg_engine, SnapshotCache(directory=tmp_path / "cache"))
    direct = Exporter(pg_engine, SnapshotCache())
    pd.testing.assert_frame_equal(
        mapped.sources().customers, direct.sources().customers, check_exact=True
    )
    assert assert_same_exports(mapped, direct) > 100


def test_a_member_page_joins_only_its_own_predictions() -> None:
    """A page of the member list takes its rows' predictions without joining every customer's
    (Arrow-backed ids made that join ~45 ms a page at 100k customers): same rows either way."""
    from analytics.exports.customers import MEMBER_COLUMNS, member_rows
    from analytics.exports.predictions import PREDICTION_COLUMNS

    n = 500
    ids = pd.Series([f"C{i:05d}" for i in range(n)], dtype="str")
    rng = np.random.default_rng(1)
    customers = pd.DataFrame({c: rng.integers(0, 9, n) for c in MEMBER_COLUMNS})
    customers["customer_id"] = ids
    customers["lifecycle_stage"] = pd.Categorical(["Champions"] * n)
    predictions = pd.DataFrame({c: rng.random(n) for c in PREDICTION_COLUMNS})
    predictions["customer_id"] = ids
    predictions = predictions.drop(index=[3, 7])  # some customers have none
    page = customers.iloc[2:12]
    got = member_rows(page, predictions)
    whole = member_rows(customers, predictions)  # no shortcut: as many rows as predictions
    expected = whole[whole["customer_id"].isin(page["customer_id"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected)
    assert got.loc[got["customer_id"] == "C00003", "clv_12m"].isna().all()


def test_a_large_frame_is_mapped_not_copied(tmp_path: Path) -> None:
    """Numeric columns of a frame read back from its file are views of the file's pages, even
    for a frame whose text columns are Arrow arrays in several chunks (as `read_frame` gives
    them: chunks of COPY concatenated), which made every record batch of the file a chunk that
    pandas then had to concatenate: a copy of every column in every worker."""
    n = 100_000
    parts = [
        pd.DataFrame(
            {
                "customer_id": pd.Series([f"C{i:07d}" for i in range(k, k + n)], dtype="str"),
                "frequency": np.arange(k, k + n, dtype=np.int64),
                "monetary": np.linspace(0, 1, n),
            }
        )
        for k in range(0, 4 * n, n)
    ]
    frame = pd.concat(parts, ignore_index=True)
    assert pa.Table.from_pandas(frame).column("customer_id").num_chunks == 4
    table = FRAME.encode(frame)
    assert all(table.column(c).num_chunks == 1 for c in table.column_names)
    path = tmp_path / "frame.arrow"
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    back = FRAME.decode(pa.ipc.open_file(pa.memory_map(str(path), "r")).read_all())
    for column in ("frequency", "monetary"):
        values = back[column].to_numpy()
        assert not values.flags.owndata and not values.flags.writeable, column
    pd.testing.assert_frame_equal(back, frame)


def test_the_scheduler_writes_a_snapshots_files_or_fails_saying_where(
    shop: Engine, tmp_path: Path
) -> None:
    """The `files` job a refit queues: every file of the snapshot under the directory, which a
    worker then maps without building; in a directory it cannot write, the job fails and names
    it (the web workers keep building in memory)."""
    from db import jobs
    from db.models import JobStatus, Trigger
    from db.scheduler import Scheduler
    from tests.conftest import bare_settings

    latest = snapshots.latest_published(shop)
    assert latest is not None
    jobs.enqueue(shop, "files", {"snapshot_id": latest.id}, trigger=Trigger.WEB)
    [done] = Scheduler(shop, bare_settings(cache_dir=tmp_path / "cache")).drain()
    assert done.status == JobStatus.DONE, done.error
    assert done.message == (
        f"snapshot {latest.id}: files of orders, customers, profiles, customer_sample ready"
    )
    files = SnapshotFiles(tmp_path / "cache")
    for kind in ("orders", "customers", "profiles", "customer_sample"):
        assert files.path(shop, latest, kind) is not None, kind

    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the cache directory should be")
    jobs.enqueue(shop, "files", {"snapshot_id": latest.id}, trigger=Trigger.WEB)
    [failed] = Scheduler(shop, bare_settings(cache_dir=blocker)).drain()
    assert failed.status == JobStatus.FAILED
    assert f"files of orders, customers, profiles, customer_sample not written in {blocker}" in (
        failed.error or ""
    )
