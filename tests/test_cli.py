"""The `custseg` command line: bootstrap is idempotent, errors are one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from config.settings import get_settings
from db.models import Transaction, User
from db.session import make_engine
from tests.conftest import SAMPLE
from webapp.cli import main


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("CUSTSEG_ENV", "development")
    monkeypatch.setenv("CUSTSEG_INSTANCE_DIR", str(tmp_path / "instance"))
    monkeypatch.setenv("CUSTSEG_ADMIN_EMAIL", "Boss@Example.com")
    monkeypatch.setenv("CUSTSEG_ADMIN_PASSWORD", "a long admin password")
    get_settings.cache_clear()
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
