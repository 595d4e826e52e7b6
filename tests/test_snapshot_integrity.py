"""Snapshot integrity under faults: a refit killed by SIGKILL, readers during a publish, retention.

The kill test runs `custseg refit` in a subprocess through a small runner that pauses it at a
chosen point (inside the write transaction, or after the switch to `published` but before the
commit), kills it with SIGKILL there, and checks what the users would see: the previous
snapshot, whole, still the latest; the dead run marked failed by the next refit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text

from analytics.exports import Filters
from db import snapshots
from db.importer import import_file
from db.models import (
    Snapshot,
    SnapshotCustomer,
    SnapshotOrder,
    SnapshotRetention,
    SnapshotSegment,
)
from db.refit import RefitFailed, RefitSkipped
from tests.conftest import CDNOW, export_frame
from tests.refitting import refit

ROOT = Path(__file__).parent.parent
CHILDREN = (SnapshotSegment, SnapshotCustomer, SnapshotOrder, SnapshotRetention)

RUNNER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path

    import db.refit as job

    marker, point = Path(sys.argv[1]), sys.argv[2]

    def pause():
        marker.write_text(str(os.getpid()))
        time.sleep(600)  # killed here

    if point == "write":  # some child tables written, inside the publish transaction
        real, calls = job.bulk_insert, {"n": 0}

        def bulk_insert(conn, table, frame):
            real(conn, table, frame)
            calls["n"] += 1
            if calls["n"] == 3:
                pause()

        job.bulk_insert = bulk_insert
    else:  # every row written and the run switched to published, not yet committed
        def delete(*args, **kwargs):
            pause()

        job.delete = delete

    from webapp.cli import main

    main(["refit", "--k", "3", "--quiet", "--force"])
    """
)


def fingerprint(engine: Engine, snapshot_id: int) -> tuple[object, ...]:
    """Row counts of every child table of a snapshot, and its customers' total spend."""
    with engine.connect() as conn:
        counts = tuple(
            conn.execute(
                select(func.count()).select_from(m).where(m.snapshot_id == snapshot_id)
            ).scalar_one()
            for m in CHILDREN
        )
        spend = conn.execute(
            select(func.sum(SnapshotCustomer.monetary)).where(
                SnapshotCustomer.snapshot_id == snapshot_id
            )
        ).scalar_one()
        status = conn.execute(
            select(Snapshot.status).where(Snapshot.id == snapshot_id)
        ).scalar_one()
    return (status, *counts, round(float(spend or 0), 2))


def refit_after_crash(engine: Engine) -> int:
    """The next refit; on PostgreSQL the dead client's lock goes when its backend notices."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return refit(engine, k=3, force=True).snapshot_id
        except RefitSkipped:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.mark.parametrize("point", ["write", "publish"])
def test_a_refit_killed_mid_publish_leaves_the_published_snapshot_intact(
    engine: Engine, tmp_path: Path, point: str
) -> None:
    import_file(engine, CDNOW)
    first = refit(engine, k=3).snapshot_id
    good = refit(engine, k=3, force=True).snapshot_id
    before = {first: fingerprint(engine, first), good: fingerprint(engine, good)}
    assert before[good][0] == "published" and before[good][2] > 0

    runner, marker = tmp_path / "runner.py", tmp_path / "paused"
    runner.write_text(RUNNER)
    env = {
        **os.environ,
        "DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "CUSTSEG_ENV": "test",
        "CUSTSEG_SNAPSHOTS_KEEP": "1",  # so that the publish also deletes an old snapshot
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.Popen(
        [sys.executable, str(runner), str(marker), point],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, "the refit never reached the pause"
            time.sleep(0.1)
        # A reader during the publish sees the previous snapshot, whole.
        assert snapshots.get_snapshot(engine).id == good
        assert fingerprint(engine, good) == before[good]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL

    dead = good + 1
    assert snapshots.get_snapshot(engine).id == good
    assert {i: fingerprint(engine, i) for i in (first, good)} == before  # nothing deleted
    with engine.connect() as conn:
        status = conn.execute(select(Snapshot.status).where(Snapshot.id == dead)).scalar_one()
    assert status == "running"  # it died: nobody could mark it
    assert fingerprint(engine, dead)[1:-1] == (0,) * len(CHILDREN)  # its rows rolled back

    after = refit_after_crash(engine)
    with engine.connect() as conn:
        row = conn.execute(select(Snapshot.status, Snapshot.error).where(Snapshot.id == dead)).one()
    assert row.status == "failed" and "interrupted" in row.error
    assert snapshots.get_snapshot(engine).id == after > dead
    assert fingerprint(engine, good) == before[good]
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            held = conn.execute(
                text(
                    "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
                    "WHERE l.locktype = 'advisory' AND d.datname = current_database()"
                )
            ).scalar_one()
        assert held == 0


def test_readers_during_publishes_never_see_a_mix(engine: Engine) -> None:
    import_file(engine, CDNOW)
    refit(engine, k=3, keep=1)
    problems: list[str] = []
    reads = {"n": 0}
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                segs, prov = export_frame(engine, "segments", Filters())
                members, prov2 = export_frame(engine, "members", Filters(), prov["snapshot_id"])
            except Exception as exc:  # noqa: BLE001 - any failure is a finding
                problems.append(f"{type(exc).__name__}: {exc}")
                continue
            with engine.connect() as conn:
                expected = conn.execute(
                    select(Snapshot.customers).where(Snapshot.id == prov["snapshot_id"])
                ).scalar()
            if expected is None:
                problems.append(f"snapshot {prov['snapshot_id']} vanished under a reader")
            elif not (int(segs["customers"].sum()) == len(members) == expected):
                problems.append(
                    f"snapshot {prov['snapshot_id']}: segments {segs['customers'].sum()}, "
                    f"members {len(members)}, customers {expected}"
                )
            reads["n"] += 1

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for k in (2, 4, 3):
            refit(engine, k=k, keep=1)
    finally:
        stop.set()
        reader.join(30)
    assert reads["n"] > 0 and problems == []


def test_retention_never_deletes_the_published_snapshot(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import db.refit as job

    import_file(engine, CDNOW)
    published = []
    for round_ in range(4):
        if round_ == 2:  # a failed run in between deletes nothing
            monkeypatch.setattr(job, "run_refit", _boom)
            with pytest.raises(RefitFailed):
                refit(engine, k=2, keep=1, force=True)
            monkeypatch.undo()
        published.append(refit(engine, k=2, keep=1, force=True).snapshot_id)
        latest = snapshots.get_snapshot(engine).id
        assert latest == published[-1]
        assert fingerprint(engine, latest)[2] > 0  # customers there
    with engine.connect() as conn:
        left = (
            conn.execute(
                select(Snapshot.id).where(Snapshot.status == "published").order_by(Snapshot.id)
            )
            .scalars()
            .all()
        )
        orphans = conn.execute(
            select(func.count())
            .select_from(SnapshotCustomer)
            .where(SnapshotCustomer.snapshot_id.not_in(select(Snapshot.id)))
        ).scalar_one()
    assert left == published[-2:]  # keep=1 and, until the next publish, the one it replaced
    assert orphans == 0


def _boom(*args: object, **kwargs: object) -> None:
    raise RuntimeError("out of memory")
