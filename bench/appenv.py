"""What the dashboard stages share: two published snapshots, bench users, production settings.

The dashboard stages run the app as production does (`CUSTSEG_ENV=production`, a real secret
key) against the run's database, logged in as users the bench creates (role analyst, so the
member list and the downloads are allowed).
"""

from __future__ import annotations

import os
import secrets
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import psycopg

from bench.harness import Context

PASSWORD = "bench-password-" + "x" * 12
SECRET_KEY = secrets.token_hex(32)  # one per bench process: gunicorn workers must agree


def user_email(i: int) -> str:
    return f"bench-user-{i}@bench.invalid"


def production_env(ctx: Context, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": ctx.database_url,
        "CUSTSEG_ENV": "production",
        "SECRET_KEY": SECRET_KEY,
        "CUSTSEG_SNAPSHOTS_KEEP": "5",
        # Plain HTTP on 127.0.0.1 (bench/server.py): a Secure cookie would never come back.
        "CUSTSEG_COOKIE_SECURE": "false",
    }
    env.pop("CUSTSEG_DEBUG", None)
    env.update(extra)
    return env


def published_ids(libpq_url: str) -> list[int]:
    with psycopg.connect(libpq_url) as conn:
        rows = conn.execute(
            "SELECT id FROM snapshots WHERE status = 'published' ORDER BY id DESC"
        ).fetchall()
    return [int(r[0]) for r in rows]


def ensure_snapshots(ctx: Context, n: int = 2) -> list[int]:
    """At least `n` published snapshots (Migration compares two): refit (untimed) until so."""
    from bench.stages.refit import run_child

    ctx.ensure_imported()
    custseg = str(Path(sys.executable).with_name("custseg"))
    while len(ids := published_ids(ctx.libpq_url)) < n:
        ctx.log(f"  {len(ids)} published snapshot(s): refitting (untimed) for {n}")
        run_child([custseg, "refit", "--quiet", "--force", "--no-files"], production_env(ctx))
    return ids


def ensure_users(ctx: Context, count: int) -> list[str]:
    """`count` active analysts with the bench password; their emails."""
    from db.session import make_engine
    from db.users import UserError, create_user

    engine = make_engine(ctx.database_url)
    try:
        emails = [user_email(i) for i in range(count)]
        for email in emails:
            try:  # never update one: a password change ends the user's sessions
                create_user(engine, email, PASSWORD, "analyst")
            except UserError:
                pass
    finally:
        engine.dispose()
    return emails


@dataclass(frozen=True)
class SnapshotFacts:
    """What the filter changes are drawn from: the latest snapshot's last day and segments."""

    snapshot_ids: list[int]  # newest first
    last_day: date
    segment_ids: list[int]

    def as_json(self) -> dict[str, Any]:
        return {
            "snapshot_ids": self.snapshot_ids,
            "last_day": self.last_day.isoformat(),
            "segment_ids": self.segment_ids,
        }


def snapshot_facts(ctx: Context) -> SnapshotFacts:
    ids = published_ids(ctx.libpq_url)
    with psycopg.connect(ctx.libpq_url) as conn:
        row = conn.execute("SELECT data_end FROM snapshots WHERE id = %s", (ids[0],)).fetchone()
        segs = conn.execute(
            "SELECT segment_id FROM snapshot_segments WHERE snapshot_id = %s ORDER BY segment_id",
            (ids[0],),
        ).fetchall()
    assert row is not None and row[0] is not None
    last = row[0] if isinstance(row[0], date) else date.fromisoformat(str(row[0])[:10])
    return SnapshotFacts(ids, last, [int(s[0]) for s in segs])
