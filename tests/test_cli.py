"""The `custseg` command line: bootstrap is idempotent, errors are one clear line."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from config.settings import get_settings
from db import jobs
from db.models import Snapshot, SnapshotStatus, Transaction, Trigger, User
from db.session import make_engine
from tests.conftest import SAMPLE, command_line_env
from webapp.cli import main


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    command_line_env(
        monkeypatch,
        url,
        tmp_path / "instance",
        CUSTSEG_ADMIN_EMAIL="Boss@Example.com",
        CUSTSEG_ADMIN_PASSWORD="a long admin password",
    )
    yield url
    get_settings.cache_clear()


def test_bootstrap_twice_adds_no_duplicate_data_or_users(env: str) -> None:
    runner = CliRunner()
    first = runner.invoke(main, ["bootstrap", "--sample", str(SAMPLE)])
    assert first.exit_code == 0, first.output
    assert "admin user: boss@example.com" in first.output
    second = runner.invoke(main, ["bootstrap", "--sample", str(SAMPLE)])
    assert second.exit_code == 0, second.output
    engine = make_engine(env)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Transaction)).scalar_one() == 32_421
        assert conn.execute(select(func.count()).select_from(User)).scalar_one() == 1
        # Two first snapshots, so Migration has something to compare on the first run; the
        # second bootstrap makes none.
        snaps = conn.execute(
            select(Snapshot.as_of)
            .where(Snapshot.status == SnapshotStatus.PUBLISHED)
            .order_by(Snapshot.id)
        ).all()
    assert [str(a) for (a,) in snaps] == ["2011-11-09", "2011-12-09"]
    assert "two first snapshots: as of 2011-11-09" in first.output


def test_import_of_a_bad_file_prints_the_error_and_exits_non_zero(env: str, tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["init-db"]).exit_code == 0
    bad = tmp_path / "bad.csv"
    bad.write_text("customer_id,order_id,ordered_at,amount\nc,o,2024-01-01,abc\n")
    result = runner.invoke(main, ["import", str(bad)])
    assert result.exit_code == 1
    assert "bad.csv, row 2, column amount: not a number ('abc')" in result.output
    assert "Traceback" not in result.output


def test_import_prints_the_report(env: str) -> None:
    runner = CliRunner()
    runner.invoke(main, ["init-db"])
    result = runner.invoke(main, ["import", str(SAMPLE), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "lines imported: 32,421" in result.output
    assert "customers: 300" in result.output


def test_create_user_and_unknown_role(env: str) -> None:
    runner = CliRunner()
    runner.invoke(main, ["init-db"])
    ok = runner.invoke(
        main,
        [
            "create-user",
            "ann@example.com",
            "--role",
            "analyst",
            "--password",
            "a good long password",
        ],
    )
    assert ok.exit_code == 0, ok.output
    again = runner.invoke(main, ["create-user", "ann@example.com", "--password", "x" * 12])
    assert again.exit_code == 1 and "already exists" in again.output


def test_demo_data_writes_a_csv_with_planted_segments(env: str, tmp_path: Path) -> None:
    out = tmp_path / "demo.csv"
    result = CliRunner().invoke(
        main, ["demo-data", "--customers", "300", "--seed", "3", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert out.exists() and (tmp_path / "demo.segments.csv").exists()


def test_refit_export_rename_and_scheduler_once(env: str, tmp_path: Path) -> None:
    import openpyxl
    import pandas as pd

    runner = CliRunner()
    runner.invoke(main, ["init-db"])
    runner.invoke(main, ["import", str(SAMPLE), "--quiet"])
    refit = runner.invoke(main, ["refit", "--k", "3"])
    assert refit.exit_code == 0, refit.output
    assert "snapshot 1 published: as of 2011-12-09, 297 customers, k=3" in refit.output
    # ... and its files for the web workers, as the scheduler builds them after its refits.
    files = "snapshot files (orders, customers, profiles, customer_sample) ready in "
    assert files + str(get_settings().snapshot_cache_dir) in refit.output
    csv_path = tmp_path / "kpis.csv"
    out = runner.invoke(main, ["export", "kpis", "--out", str(csv_path)])
    assert out.exit_code == 0, out.output
    kpis = pd.read_csv(csv_path, comment="#")
    assert kpis.loc[0, "orders"] == 1286 and kpis.loc[0, "returns"] == 275
    assert "# snapshot_id: 1" in csv_path.read_text()
    xlsx = tmp_path / "seg.xlsx"
    assert (
        runner.invoke(
            main, ["export", "segments", "--format", "xlsx", "--out", str(xlsx)]
        ).exit_code
        == 0
    )
    book = openpyxl.load_workbook(xlsx)
    assert book.sheetnames == ["data", "provenance"]
    assert book["data"].cell(1, 1).value == "segment_id"
    renamed = runner.invoke(main, ["rename-segment", "1", '=HYPERLINK("x")'])
    assert renamed.exit_code == 0, renamed.output
    # A queued refit of unchanged data (a rename is no change) publishes nothing and says so,
    # as does `custseg refit`; --force publishes.
    jobs.enqueue(make_engine(env), "refit", {"k": 3}, trigger=Trigger.WEB)
    sched = runner.invoke(main, ["scheduler", "--once"])
    assert sched.exit_code == 0, sched.output
    assert "job 1 (refit, web): skipped: no change since snapshot 1" in sched.output
    same = runner.invoke(main, ["refit", "--k", "3"])
    assert same.exit_code == 0 and "no change since snapshot 1" in same.output
    again = runner.invoke(main, ["refit", "--k", "3", "--force"])
    assert again.exit_code == 0, again.output
    assert "snapshot 2 published" in again.output
    assert 'segment   1  =HYPERLINK("x")' in again.output  # the name users see, not the generated
    runner.invoke(main, ["export", "segments", "--format", "xlsx", "--out", str(xlsx)])
    names = [c.value for c in openpyxl.load_workbook(xlsx)["data"]["B"]][1:]
    assert '\'=HYPERLINK("x")' in names  # the rename followed into snapshot 2, neutralized
    same = runner.invoke(main, ["export", "migration", "--compare-to", "2", "--out", "-"])
    assert same.exit_code == 1 and "earlier than 2 (got 2)" in same.output
    earlier = runner.invoke(main, ["export", "migration", "--compare-to", "1", "--out", "-"])
    assert earlier.exit_code == 0 and "# from_snapshot_id: 1" in earlier.output
    orders = runner.invoke(main, ["export", "customer_orders", "--customer", "17450", "--out", "-"])
    assert orders.exit_code == 0, orders.output
    totals = pd.read_csv(io.StringIO(orders.output), comment="#")["total"]
    assert len(totals) > 1 and (totals.round(2) == totals).all()
    bad = runner.invoke(main, ["export", "sales", "--start", "2011-13-01", "--out", "-"])
    assert bad.exit_code == 2 and "is not a date" in bad.output
    unknown = runner.invoke(main, ["export", "sales", "--segment", "99", "--out", "-"])
    assert unknown.exit_code == 1 and "unknown segment id(s) [99]" in unknown.output


def test_refit_with_no_data_says_what_to_do(env: str) -> None:
    runner = CliRunner()
    runner.invoke(main, ["init-db"])
    result = runner.invoke(main, ["refit"])
    assert result.exit_code == 1 and "import a file first" in result.output
