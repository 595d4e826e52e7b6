"""A first run (`custseg bootstrap`, `make run`): migrate, import the sample into an empty
database, create the admin, make the first snapshots. Safe to run again: it adds no duplicate
data, users or snapshots."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import Engine, func, select

from config import Settings
from db import jobs
from db.importer import ImportReport, import_file
from db.migrate import upgrade
from db.models import Transaction, Trigger, User
from db.queries import data_window
from db.refit import RefitOutcome, RefitSkipped, refit, refit_settings
from db.session import session_scope
from db.snapshots import latest_published
from db.users import create_user

PREVIOUS_DAYS = 30  # the first of two bootstrap snapshots: this long before the last order day
MIN_SPAN_DAYS = 90  # data spanning less than this gets one snapshot
DEFAULT_ADMIN = "admin@example.com"


@dataclass
class Bootstrapped:
    """What a bootstrap did, in order, for the command line to print."""

    imported: ImportReport | None = None  # the sample imported now
    missing_sample: Path | None = None  # no data and no sample to import
    admin_email: str | None = None  # the admin created now
    admin_password: str | None = None  # when generated (shown once)
    snapshot_days: list[date] = field(default_factory=list)  # two first snapshots: as of these
    refits: list[RefitOutcome] = field(default_factory=list)
    refit_skipped: str | None = None


def _create_admin(engine: Engine, settings: Settings, done: Bootstrapped) -> None:
    """The admin of `CUSTSEG_ADMIN_EMAIL` if missing, or `admin@example.com` when no user
    exists; with `CUSTSEG_ADMIN_PASSWORD` or a generated password."""
    email = (settings.admin_email or DEFAULT_ADMIN).strip().lower()
    with session_scope(engine) as db:
        exists = db.scalar(select(User).where(User.email == email)) is not None
        has_users = bool(db.scalar(select(func.count()).select_from(User)))
    if exists or (has_users and not settings.admin_email):
        return
    password = settings.admin_password
    if password is None:
        password = done.admin_password = secrets.token_urlsafe(12)
    done.admin_email = create_user(engine, email, password, "admin")


def first_snapshots(engine: Engine, settings: Settings, done: Bootstrapped) -> None:
    """Make the first snapshots when there are orders and none is published yet.

    Two when the data spans three months or more: one as of 30 days before the last order day,
    standing in for the previous scheduled refit, then one as of the last order day, so that
    the Migration page has two snapshots to compare on the first run. One otherwise.
    """
    if latest_published(engine) is not None:
        return
    first, last = data_window(engine)
    if first is None or last is None:
        return
    as_of_dates: list[date | None] = [None]
    if (last - first).days >= MIN_SPAN_DAYS:
        previous = last - timedelta(days=PREVIOUS_DAYS)
        as_of_dates.insert(0, previous)
        done.snapshot_days = [previous, last]
    for as_of in as_of_dates:
        try:
            outcome = refit(
                engine, refit_settings(engine, settings), as_of=as_of, trigger=Trigger.BOOTSTRAP
            )
        except RefitSkipped as exc:
            done.refit_skipped = str(exc)
            return
        done.refits.append(outcome)
        # Its files for the web workers, built by the scheduler process (make run starts it).
        jobs.enqueue(
            engine, "files", {"snapshot_id": outcome.snapshot_id}, trigger=Trigger.BOOTSTRAP
        )
        if settings.predictions:  # the scheduler process attaches them (make run starts it)
            jobs.enqueue(
                engine, "predict", {"snapshot_id": outcome.snapshot_id}, trigger=Trigger.BOOTSTRAP
            )


def bootstrap(engine: Engine, settings: Settings, sample: Path) -> Bootstrapped:
    """Migrate; import `sample` if there are no transactions; create the admin; make the
    first snapshots. Returns what it did."""
    done = Bootstrapped()
    upgrade(engine)
    with session_scope(engine) as db:
        has_data = bool(db.scalar(select(func.count()).select_from(Transaction)))
    if not has_data:
        if sample.is_file():
            done.imported = import_file(engine, sample)
        else:
            done.missing_sample = sample
    _create_admin(engine, settings, done)
    first_snapshots(engine, settings, done)
    return done
