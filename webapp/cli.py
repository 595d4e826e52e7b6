"""The `custseg` command line. Errors print one clear line and exit non-zero, no traceback."""

from __future__ import annotations

import functools
import json
import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy import func, select

from config import ConfigError, Settings, get_settings

F = TypeVar("F", bound=Callable[..., Any])


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def handled(fn: F) -> F:
    """Turn the errors users can fix into one line on stderr and exit status 1 (2 for usage)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from db.importer import ImportRejected

        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            _fail(f"configuration: {exc}")
        except ImportRejected as exc:
            _fail(str(exc))
        except (click.ClickException, click.exceptions.Exit, SystemExit, KeyboardInterrupt):
            raise
        except ValueError as exc:
            _fail(str(exc))
        except Exception as exc:  # an operational error: say what and where, not a traceback
            from sqlalchemy.exc import OperationalError

            if isinstance(exc, OperationalError):
                _fail(
                    f"database: cannot use {_safe_url(get_settings().database_url)}: "
                    f"{str(exc.orig).strip().splitlines()[0]}"
                )
            raise

    return wrapper  # type: ignore[return-value]


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _engine(settings: Settings):  # type: ignore[no-untyped-def]
    from db.session import make_engine

    return make_engine(settings.database_url)


def _show_progress(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Customer segmentation: import transactions, segment customers, serve the dashboard."""


@main.command("init-db")
@handled
def init_db() -> None:
    """Create or upgrade the database schema (Alembic migrations to head)."""
    from db.migrate import upgrade

    settings = get_settings()
    upgrade(_engine(settings))
    click.echo(f"database ready: {_safe_url(settings.database_url)}")


def _create_user(email: str, password: str, role: str, update: bool = False) -> str:
    from db.models import ROLES, User
    from db.session import session_scope

    email = email.strip().lower()
    if "@" not in email or len(email) > 254:
        raise ValueError(f"not an email address: {email!r}")
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: choose one of {', '.join(ROLES)}")
    with session_scope(_engine(get_settings())) as db:
        user = db.scalar(select(User).where(User.email == email))
        if user is not None and not update:
            raise ValueError(f"a user {email} already exists")
        if user is None:
            user = User(email=email, role=role, active=True, session_version=0)
            db.add(user)
        user.role = role
        user.password = password
    return email


@main.command("create-user")
@click.argument("email")
@click.option(
    "--role", type=click.Choice(["viewer", "analyst", "admin"]), default="viewer", show_default=True
)
@click.option(
    "--password",
    envvar="CUSTSEG_NEW_PASSWORD",
    default=None,
    help="Password (else asked for; or set CUSTSEG_NEW_PASSWORD).",
)
@click.option("--update", is_flag=True, help="Change role and password of an existing user.")
@handled
def create_user(email: str, role: str, password: str | None, update: bool) -> None:
    """Create a user who can log in to the web app."""
    if password is None:
        if sys.stdin.isatty():
            password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        else:
            raise ValueError("no password: pass --password or set CUSTSEG_NEW_PASSWORD")
    assert password is not None
    email = _create_user(email, password, role, update)
    click.echo(f"user {email} ({role}) {'updated' if update else 'created'}")


@main.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "layout",
    type=click.Choice(["normalized", "online-retail"]),
    default=None,
    help="Layout of the file (default: detected from the header).",
)
@click.option(
    "--map",
    "mapping",
    multiple=True,
    metavar="TARGET=SOURCE",
    help="Read column SOURCE as TARGET (normalized names), repeatable.",
)
@click.option("--skip-invalid", is_flag=True, help="Import the valid lines, report the rest.")
@click.option("--encoding", default="utf-8", show_default=True)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@handled
def import_cmd(
    file: Path,
    layout: str | None,
    mapping: tuple[str, ...],
    skip_invalid: bool,
    encoding: str,
    quiet: bool,
    as_json: bool,
) -> None:
    """Import order lines from a CSV file (normalized or Online Retail layout)."""
    from tqdm import tqdm

    from db.importer import import_file, parse_mapping

    settings = get_settings()
    engine = _engine(settings)
    bar = tqdm(
        unit=" lines",
        unit_scale=True,
        desc="import",
        disable=not _show_progress(quiet),
        file=sys.stderr,
    )
    try:
        report = import_file(
            engine,
            file,
            layout=layout,
            mapping=parse_mapping(mapping),
            skip_invalid=skip_invalid,
            encoding=encoding,
            progress=bar.update,
        )
    finally:
        bar.close()
    click.echo(json.dumps(report.as_dict(), indent=2) if as_json else report.summary())


@main.command("demo-data")
@click.option("--customers", type=click.IntRange(1, 20_000_000), default=5_000, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write a CSV (and FILE.segments.csv with the planted segments) instead of "
    "importing into the database.",
)
@click.option(
    "--end",
    "end_day",
    default="2025-12-31",
    show_default=True,
    help="Last day of the generated history (two years).",
)
@click.option("--quiet", "-q", is_flag=True)
@handled
def demo_data(customers: int, seed: int, out: Path | None, end_day: str, quiet: bool) -> None:
    """Generate a synthetic shop with planted customer segments."""
    import tempfile
    from datetime import date

    from tqdm import tqdm

    from analytics.demo import write_demo_csv
    from db.importer import import_file

    end = date.fromisoformat(end_day)
    show = _show_progress(quiet)
    target = out
    tmp_dir = None
    if target is None:
        tmp_dir = tempfile.TemporaryDirectory(prefix="custseg-demo-")
        target = Path(tmp_dir.name) / f"demo-{customers}-{seed}.csv"
    with tqdm(
        total=customers,
        unit=" customers",
        unit_scale=True,
        desc="generate",
        disable=not show,
        file=sys.stderr,
    ) as bar:
        stats = write_demo_csv(target, customers, seed, end=end, progress=bar.update)
    click.echo(
        f"generated {stats['customers']:,} customers, {stats['orders']:,} orders, "
        f"{stats['lines']:,} lines" + (f" into {target}" if out else "")
    )
    if out is None:
        try:
            with tqdm(
                total=stats["lines"],
                unit=" lines",
                unit_scale=True,
                desc="import",
                disable=not show,
                file=sys.stderr,
            ) as bar:
                report = import_file(
                    _engine(get_settings()),
                    target,
                    progress=bar.update,
                    display_name=f"demo-data customers={customers} seed={seed}",
                )
            click.echo(report.summary())
        finally:
            assert tmp_dir is not None
            tmp_dir.cleanup()


@main.command("bootstrap")
@click.option(
    "--sample",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("tests/data/online_retail_sample.csv"),
    show_default=True,
)
@handled
def bootstrap(sample: Path) -> None:
    """Prepare a first run: migrate, import the sample if the database is empty, make an admin.

    Safe to run again: it adds no duplicate data or users.
    """
    from db.importer import import_file
    from db.migrate import upgrade
    from db.models import Transaction, User
    from db.session import session_scope

    settings = get_settings()
    engine = _engine(settings)
    upgrade(engine)
    with session_scope(engine) as db:
        has_data = db.scalar(select(func.count()).select_from(Transaction)) or 0
        has_users = db.scalar(select(func.count()).select_from(User)) or 0
    if not has_data:
        if sample.is_file():
            report = import_file(engine, sample)
            click.echo(report.summary())
        else:
            click.echo(
                f"no transactions and no sample at {sample}; import a file with "
                "`custseg import FILE`"
            )
    email = (settings.admin_email or "admin@example.com").strip().lower()
    with session_scope(engine) as db:
        exists = db.scalar(select(User).where(User.email == email)) is not None
    if not exists and (not has_users or settings.admin_email):
        password = settings.admin_password
        generated = password is None
        if password is None:
            password = secrets.token_urlsafe(12)
        _create_user(email, password, "admin")
        click.echo(f"admin user: {email}")
        if generated:
            click.echo(f"admin password (shown once, change it): {password}")
    _post_bootstrap(engine)


def _post_bootstrap(engine: Any) -> None:
    """Hook for later stages of the first run (e.g. the first refit)."""


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--port",
    type=int,
    default=lambda: int(os.environ.get("PORT", "8050")),
    show_default="8050, or $PORT",
)
@handled
def serve(host: str, port: int) -> None:
    """Serve the dashboard with the development server (production: gunicorn wsgi:server)."""
    from webapp.app import create_app

    app = create_app()
    click.echo(f"serving on http://{host}:{port}")
    app.run(host=host, port=port, debug=get_settings().debug)


if __name__ == "__main__":
    main()
