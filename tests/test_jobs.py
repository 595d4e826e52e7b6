"""Refits as queued jobs: the queue, the scheduler process, the checks before a refit records
anything, unchanged data, "Refit now" and `custseg serve`'s scheduler. (The keep policy:
tests/test_refit.py.)"""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select, update
from werkzeug.exceptions import Forbidden

from config import Settings
from config.settings import get_settings
from db import jobs, snapshots
from db.exporter import ORDERS
from db.importer import import_file
from db.jobs import JobResult
from db.migrate import upgrade
from db.models import Job, JobStatus, Snapshot, SnapshotStatus, Trigger
from db.refit import RefitUnchanged
from db.scheduler import SCHEDULE, Scheduler
from db.session import make_engine
from db.snapshot_files import SnapshotFiles
from tests.conftest import SAMPLE, as_user, bare_settings, command_line_env
from tests.refitting import refit
from webapp.cli import main

ROOT = Path(__file__).parent.parent


def snapshot_rows(engine: Engine) -> list[tuple[int, str]]:
    with engine.connect() as conn:
        rows = conn.execute(select(Snapshot.id, Snapshot.status).order_by(Snapshot.id)).all()
    return [(i, str(s)) for i, s in rows]


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """`custseg` reads an SQLite database of its own (migrated); its URL."""
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    command_line_env(monkeypatch, url, tmp_path / "instance")
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    get_settings.cache_clear()


# --- the queue and the scheduler ----------------------------------------------------------------


def test_a_queued_refit_is_run_by_scheduler_once_and_publishes(cli_env: str) -> None:
    engine = make_engine(cli_env)
    import_file(engine, SAMPLE)
    job, new = jobs.enqueue(
        engine, "refit", {"k": 3}, trigger=Trigger.WEB, requested_by="boss@example.com"
    )
    again, again_new = jobs.enqueue(engine, "refit", {"k": 3}, trigger=Trigger.WEB)
    assert new and not again_new and again.id == job.id  # a second click queues nothing more
    result = CliRunner().invoke(main, ["scheduler", "--once"])
    assert result.exit_code == 0, result.output
    assert "job 1 (refit, web): done: snapshot 1 published (k=3)" in result.output
    done = jobs.get(engine, job.id)
    assert done is not None
    assert (done.status, done.snapshot_id, done.stage, done.pid) == (
        JobStatus.DONE,
        1,
        "writing",
        os.getpid(),
    )
    assert done.started_at is not None and done.finished_at is not None
    with engine.connect() as conn:
        snap = conn.execute(select(Snapshot.status, Snapshot.trigger, Snapshot.k)).one()
    assert tuple(snap) == (SnapshotStatus.PUBLISHED, Trigger.WEB, 3)
    # Then the snapshot's files for the web workers, in the same run of the queue.
    files = "job 2 (files, web): done: snapshot 1: files of orders, customers, profiles, "
    assert files + "customer_sample ready" in result.output
    folder = get_settings().snapshot_cache_dir
    kinds = sorted(p.name.split("-")[0] for p in folder.rglob("*.arrow"))
    assert kinds == ["customer_sample", "customers", "orders", "profiles"]

    def never() -> Any:
        raise AssertionError("a web worker built a file the scheduler had written")

    mapped = SnapshotFiles(folder).load(
        engine, snapshots.get_snapshot(engine, 1), "orders", never, ORDERS
    )
    assert len(mapped.customer_ids) == 300  # 297 in segments, 3 with only returns
    empty = CliRunner().invoke(main, ["scheduler", "--once"])
    assert empty.exit_code == 0 and "no queued job" in empty.output


def _probe_kinds(ran: list[int], lock: threading.Lock) -> dict[str, Any]:
    def probe(_engine: Engine, _settings: Settings, job: Job, _stage: Any) -> JobResult:
        with lock:
            ran.append(job.id)
        return JobResult(JobStatus.DONE, message="probed")

    return {"probe": probe}


def test_two_schedulers_never_run_the_same_job(engine: Engine) -> None:
    ran: list[int] = []
    kinds = _probe_kinds(ran, threading.Lock())
    ids = [jobs.enqueue(engine, "probe", {"n": n}, trigger=Trigger.CLI)[0].id for n in range(40)]
    start = threading.Barrier(2)
    settings = bare_settings()

    def work() -> None:
        scheduler = Scheduler(engine, settings, kinds=kinds)
        start.wait()
        scheduler.drain()

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(ran) == ids  # every job once, none twice
    with engine.connect() as conn:
        statuses = set(conn.execute(select(Job.status)).scalars())
    assert statuses == {JobStatus.DONE}


@pytest.mark.postgres
def test_a_claim_skips_a_job_another_scheduler_is_claiming(pg_engine: Engine) -> None:
    first = jobs.enqueue(pg_engine, "probe", {"n": 1}, trigger=Trigger.CLI)[0]
    second = jobs.enqueue(pg_engine, "probe", {"n": 2}, trigger=Trigger.CLI)[0]
    claimed: list[Job | None] = []
    with pg_engine.connect() as other:  # another scheduler, between its SELECT and its COMMIT
        other.execute(select(Job.id).where(Job.id == first.id).with_for_update())
        claiming = threading.Thread(target=lambda: claimed.append(jobs.claim(pg_engine)))
        claiming.start()
        claiming.join(30)
        waited = claiming.is_alive()  # blocked behind the other's lock instead of skipping it
        other.rollback()
    claiming.join()
    assert not waited and claimed[0] is not None and claimed[0].id == second.id
    again = jobs.claim(pg_engine)
    assert again is not None and again.id == first.id
    assert jobs.claim(pg_engine) is None


def test_a_running_job_whose_process_died_is_marked_failed(sqlite_engine: Engine) -> None:
    ran: list[int] = []
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead, restarted, mine, queued = (
        jobs.enqueue(sqlite_engine, "probe", {"n": n}, trigger=Trigger.CLI)[0] for n in range(4)
    )
    for _ in range(3):  # `mine`: running in this process (another scheduler thread)
        jobs.claim(sqlite_engine)
    with sqlite_engine.begin() as conn:
        conn.execute(update(Job).where(Job.id == dead.id).values(pid=gone.pid))
        # An earlier process that had this pid (a restarted container).
        conn.execute(
            update(Job).where(Job.id == restarted.id).values(started_at=datetime(2020, 1, 1))
        )
    scheduler = Scheduler(sqlite_engine, bare_settings(), kinds=_probe_kinds(ran, threading.Lock()))
    assert scheduler.run_next() is not None
    after = {j.id: j for j in jobs.recent(sqlite_engine)}
    assert after[dead.id].status == after[restarted.id].status == JobStatus.FAILED
    assert after[mine.id].status == JobStatus.RUNNING
    assert "process running it ended" in str(after[dead.id].error)
    assert after[queued.id].status == JobStatus.DONE and ran == [queued.id]


def test_the_scheduler_survives_database_errors_and_stops_when_its_parent_is_gone(
    sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import db.scheduler

    ran: list[int] = []
    job = jobs.enqueue(sqlite_engine, "probe", {}, trigger=Trigger.CLI)[0]
    scheduler = Scheduler(sqlite_engine, bare_settings(), kinds=_probe_kinds(ran, threading.Lock()))
    real, calls = scheduler.run_next, {"n": 0}

    def flaky() -> Job | None:
        calls["n"] += 1
        if calls["n"] <= 3:
            raise OSError("database restarting")
        return real()

    loops = iter(range(6))  # the parent is there for six turns of the loop, then gone
    monkeypatch.setattr(scheduler, "run_next", flaky)
    monkeypatch.setattr(db.scheduler.os, "getppid", lambda: 1 if next(loops, None) is None else 7)
    monkeypatch.setattr(db.scheduler.time, "sleep", lambda _s: None)
    messages: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())  # type: ignore[method-assign]
    log = logging.getLogger("custseg.scheduler")
    level = log.level
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    try:
        scheduler.run_forever(0.01, parent_pid=7)
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    assert ran == [job.id] and calls["n"] == 6
    assert messages.count("scheduler cannot reach its jobs; retrying") == 1  # once per outage
    assert "scheduler stopping: its parent process is gone" in messages


def test_the_schedule_queues_a_refit_when_due_and_once(sqlite_engine: Engine) -> None:
    settings = bare_settings(refit_cron="0 3 * * *")
    refits = tuple(p for p in SCHEDULE if p.kind in ("sync", "refit"))  # other periodic jobs aside
    scheduler = Scheduler(sqlite_engine, settings, schedule=refits)
    day = datetime(2025, 1, 1, tzinfo=UTC)
    assert scheduler.queue_due(day + timedelta(hours=2, minutes=59)) == []
    sync, job = scheduler.queue_due(day + timedelta(hours=3))  # database sources first
    assert (sync.kind, job.kind, job.trigger, job.params) == (
        "sync",
        "refit",
        Trigger.SCHEDULER,
        {},
    )
    assert scheduler.queue_due(day + timedelta(hours=3, seconds=30)) == []
    _, still = scheduler.queue_due(day + timedelta(days=1, hours=3))  # the last one still waits
    assert still.id == job.id and len(jobs.recent(sqlite_engine)) == 2
    with pytest.raises(ValueError, match="CUSTSEG_REFIT_CRON='every day'"):
        Scheduler(sqlite_engine, bare_settings(refit_cron="every day"))


# --- checks before anything is recorded -------------------------------------------------------


def test_a_refit_with_bad_inputs_records_no_snapshot(cli_env: str) -> None:
    engine = make_engine(cli_env)
    runner = CliRunner()
    empty = runner.invoke(main, ["refit"])
    assert empty.exit_code == 1 and "import a file first" in empty.output
    import_file(engine, SAMPLE)
    early = runner.invoke(main, ["refit", "--as-of", "2001-01-01"])
    assert early.exit_code == 1
    assert "as-of date 2001-01-01 is before the first order (2010-12-01)" in early.output
    typo = runner.invoke(main, ["refit", "--as-of", "2011-02-30"])
    assert typo.exit_code == 2 and "is not a date" in typo.output
    few = runner.invoke(main, ["refit", "--k", "8", "--as-of", "2010-12-01"])
    assert few.exit_code == 1
    assert "7 customer(s) with orders up to 2010-12-01: k=8 needs at least 9" in few.output
    for params in ({"as_of": "2001-01-01"}, {"as_of": "1 May"}, {"k": 1}):
        jobs.enqueue(engine, "refit", params, trigger=Trigger.WEB)
    ran = runner.invoke(main, ["scheduler", "--once"])
    assert ran.exit_code == 0, ran.output
    failed = jobs.recent(engine)
    assert [j.status for j in failed] == [JobStatus.FAILED] * 3
    assert "before the first order" in str(failed[-1].error)
    assert "as_of='1 May' is not a date" in str(failed[-2].error)
    assert "k=1" in str(failed[-3].error)
    assert snapshot_rows(engine) == []  # nothing recorded, not even a failed run


def test_an_unchanged_refit_publishes_nothing_until_data_or_settings_change(
    engine: Engine, tmp_path: Path
) -> None:
    import_file(engine, SAMPLE)
    first = refit(engine, k=3)
    with pytest.raises(RefitUnchanged, match=f"no change since snapshot {first.snapshot_id}"):
        refit(engine, k=3)
    assert snapshot_rows(engine) == [(first.snapshot_id, "published")]
    forced = refit(engine, k=3, force=True)
    other_k = refit(engine, k=4)
    earlier = refit(engine, k=4, as_of=date(2011, 11, 30))
    assert [forced.snapshot_id, other_k.snapshot_id, earlier.snapshot_id] == [2, 3, 4]
    # New data (a line up to the last day, a new import batch) is a change.
    more = tmp_path / "more.csv"
    pd.DataFrame(
        [("17850", "X1", "2011-12-05T10:00:00", 25.0)],
        columns=["customer_id", "order_id", "ordered_at", "amount"],
    ).to_csv(more, index=False)
    import_file(engine, more)
    assert refit(engine, k=4).snapshot_id == 5
    with pytest.raises(RefitUnchanged, match="no change since snapshot 5"):
        refit(engine, k=4)
    assert [s for _, s in snapshot_rows(engine)] == ["published"] * 5


# --- "Refit now" ---------------------------------------------------------------------------------


def test_refit_now_queues_a_job_and_the_poll_follows_it_in_the_database(  # type: ignore[no-untyped-def]
    app, dashboard, sqlite_engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import db.refit
    from webapp.refit_ui import poll, start

    def forbidden(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("a web worker refitted or started a process")

    with as_user(app, "analyst@example.com"), pytest.raises(Forbidden, match="admin role"):
        start(1)
    assert jobs.recent(sqlite_engine) == []
    with monkeypatch.context() as m:  # the web side only writes and reads rows
        m.setattr(db.refit, "refit", forbidden)
        m.setattr(db.refit, "refit_job", forbidden)
        m.setattr(subprocess, "Popen", forbidden)
        m.setattr(threading.Thread, "start", forbidden)
        with as_user(app, "admin@example.com"):
            msg, disabled, started = start(1)
            assert msg == "Refit queued (job 1): its progress shows below." and not disabled
            assert start(1)[0].startswith("A refit is already queued (job 1)")
            text, value, style, stop = poll(1, msg, started)
            assert text == "Queued (job 1): waiting for the scheduler process…" and not stop
            with sqlite_engine.begin() as conn:
                conn.execute(update(Job).values(created_at=datetime(2020, 1, 1)))
            assert "is `custseg scheduler` running?" in poll(2, msg, started)[0]
            job = jobs.get(sqlite_engine, started["job_id"])
            assert job is not None and job.requested_by == "admin@example.com"
            assert len(snapshot_rows(sqlite_engine)) == 2  # nothing ran

            # The scheduler process claims it and reports its stage in the row.
            jobs.claim(sqlite_engine)
            jobs.set_stage(sqlite_engine, started["job_id"], "clustering")
            text, value, style, stop = poll(3, msg, started)
            assert text == "Refitting: clustering…" and 0 < value < 100 and not stop
    with sqlite_engine.begin() as conn:  # back in the queue, for a real run
        conn.execute(update(Job).values(status=JobStatus.QUEUED, stage=None))
    Scheduler(sqlite_engine, app.server.extensions["custseg"].settings).drain()
    with as_user(app, "admin@example.com"):
        text, value, style, stop = poll(4, msg, started)
        k = snapshots.get_snapshot(sqlite_engine, 3).k  # auto k, in the default range
        assert k is not None and 4 <= k <= 8
        assert str(text.children) == f"Snapshot 3 published (k={k}). Reload to see it."
        assert stop and style == {"display": "none"}
        msg, _, started = start(1)  # the same data again: nothing to publish
    Scheduler(sqlite_engine, app.server.extensions["custseg"].settings).drain()
    with as_user(app, "admin@example.com"):
        text = poll(5, msg, started)[0]
        assert str(text.children) == "Nothing published: no change since snapshot 3."
        failing = start(1)[2]["job_id"]  # (a notify job followed the published refit)
        jobs.finish(sqlite_engine, failing, JobResult(JobStatus.FAILED, error="as-of date ..."))
        text = poll(6, msg, {"job_id": failing})[0]
        assert str(text.children) == "Refit failed: as-of date ..."
        assert "no longer known" in str(poll(7, msg, {"job_id": "x"})[0].children)
    assert [(i, s) for i, s in snapshot_rows(sqlite_engine)][-1] == (3, "published")
    with sqlite_engine.connect() as conn:
        trigger = conn.execute(select(Snapshot.trigger).where(Snapshot.id == 3)).scalar_one()
    assert trigger == Trigger.WEB


# --- `custseg serve` starts and stops the scheduler --------------------------------------------


def _free_port() -> int:
    for port in random.sample(range(8100, 8999), 200):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 8100-8999")


def _gone(pid: int) -> bool:
    """The process has exited (a zombie nobody reaped counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_serve_starts_the_scheduler_process_and_it_ends_with_the_server(
    tmp_path: Path, how: signal.Signals
) -> None:
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    engine = make_engine(url)
    upgrade(engine)
    job = jobs.enqueue(engine, "refit", {}, trigger=Trigger.WEB)[0]  # no data: it fails fast
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "CUSTSEG_ENV": "development",
        "CUSTSEG_INSTANCE_DIR": str(tmp_path / "instance"),
        "CUSTSEG_SCHEDULER_POLL": "0.2",
        "CUSTSEG_WARM_CACHES": "false",
        "PYTHONUNBUFFERED": "1",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "webapp.cli", "serve", "--port", str(_free_port())],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    child, lines = None, []
    watchdog = threading.Timer(180, server.kill)  # a server that hangs fails the test
    watchdog.start()
    try:
        assert server.stdout is not None
        for line in server.stdout:
            lines.append(line)
            if line.startswith("scheduler: process "):
                child = int(line.split()[2].rstrip(","))
            if '"job failed"' in line:  # the scheduler worked the queue
                break
        assert child is not None, "".join(lines)
        assert not _gone(child)
        done = jobs.get(engine, job.id)
        assert done is not None and done.status == JobStatus.FAILED
        assert "import a file first" in str(done.error)
        server.send_signal(how)
        server.wait(60)
        deadline = time.monotonic() + 60
        while not _gone(child):
            assert time.monotonic() < deadline, "the scheduler outlived the server"
            time.sleep(0.1)
    finally:
        watchdog.cancel()
        if server.poll() is None:
            server.kill()
            server.wait()
        if child is not None and not _gone(child):
            os.kill(child, signal.SIGKILL)
        engine.dispose()
    if how != signal.SIGKILL:
        assert server.returncode == 0, "".join(lines)
