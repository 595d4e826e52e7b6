"""callbacks: each page's filter-change callback, server side, logged in, against a SQL GROUP BY.

The app runs in this process as production configures it (`CUSTSEG_ENV=production`), against
the run's database with two published snapshots. A bench analyst logs in through the form
(CSRF token and all) with Flask's test client, and every request is a POST to
`/_dash-update-component` built from `/_dash-dependencies`: routing, the login guard, the
callback checks, the callback and Dash's JSON serialization all count; the network does not
(the `load` stage has it).

Cold: the first call of each page after the per-snapshot caches are emptied
(the app's `SnapshotCache` cleared: what a fresh worker sees; the machine's snapshot files stay,
as they do when a worker starts). `cold_build_ms`: the first page's first call with no snapshot
files either (an empty `CUSTSEG_CACHE_DIR`): what the first process on a machine pays after a
publish. Warm: every filter
change of `bench.dashpost.scenarios` (date ranges 30/90/365 days/all x no segment/one/two, Sales
x day/week/month, each page's own inputs drawn at random), shuffled, `repeat` times over.

Baseline, alternating with the Sales callback in the same run: what a BI tool would run for the
same chart, a `GROUP BY` over the raw transactions, for each request: revenue (positive orders),
orders and net revenue by month x segment over the last year, the segments joined from the
snapshot's assignments (`snapshot_customers`). `speedup_vs_sql` = median SQL time / median time
of the Sales callback (month, the same year and segments).
"""

from __future__ import annotations

import random
import re
import shutil
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

from bench import appenv, dashpost
from bench.harness import Context, median, stage

SQL_BASELINE = """
WITH o AS (
    SELECT t.customer_id, t.order_id, min(t.ordered_at) AS at, sum(t.amount) AS total
    FROM transactions t
    WHERE t.customer_id IS NOT NULL AND t.ordered_at >= %(start)s AND t.ordered_at < %(stop)s
    GROUP BY t.customer_id, t.order_id
)
SELECT date_trunc('month', o.at) AS month, c.segment_id,
       count(*) FILTER (WHERE o.total > 0) AS orders,
       coalesce(sum(o.total) FILTER (WHERE o.total > 0), 0) AS gross_revenue,
       sum(o.total) AS net_revenue
FROM o JOIN snapshot_customers c ON c.customer_id = o.customer_id AND c.snapshot_id = %(snap)s
WHERE cardinality(%(segs)s::int[]) = 0 OR c.segment_id = ANY(%(segs)s::int[])
GROUP BY 1, 2 ORDER BY 1, 2
"""
WARM_REPEAT = {"S": 1, "M": 3, "L": 3, "XL": 2}
SQL_REPEAT = {"S": 3, "M": 11, "L": 7, "XL": 3}


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


class LoggedIn:
    """The app in this process and a test client logged in through the login form."""

    def __init__(self, ctx: Context, email: str) -> None:
        from config import Settings
        from db.session import make_engine
        from webapp.app import create_app

        env = appenv.production_env(ctx)
        self.cache_dir = Path(tempfile.mkdtemp(prefix="custseg-bench-cache-"))
        settings = Settings(
            env="production",
            secret_key=env["SECRET_KEY"],
            database_url=ctx.database_url,
            cache_dir=self.cache_dir,  # empty: the first read builds the snapshot's files
        )
        self.engine = make_engine(ctx.database_url)
        self.app = create_app(settings, self.engine)
        self.state = self.app.server.extensions["custseg"]  # its snapshot cache and exporter
        self.client = self.app.server.test_client()
        page = self.client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert token, "the login form has no CSRF token"
        done = self.client.post(
            "/login",
            data={"email": email, "password": appenv.PASSWORD, "csrf_token": token.group(1)},
        )
        assert done.status_code == 302, f"login failed: {done.status_code}"
        self.deps = self.client.get("/_dash-dependencies").get_json()

    def post(self, payload: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        started = time.perf_counter()
        resp = self.client.post("/_dash-update-component", json=payload)
        took = (time.perf_counter() - started) * 1000
        if resp.status_code != 200:
            raise RuntimeError(f"callback answered {resp.status_code}: {resp.get_data()[:300]!r}")
        return took, resp.get_json()

    def close(self) -> None:
        self.engine.dispose()
        shutil.rmtree(self.cache_dir, ignore_errors=True)


def sql_ms(libpq_url: str, facts: appenv.SnapshotFacts, segs: list[int]) -> float:
    stop = facts.last_day + timedelta(days=1)
    args = {
        "start": stop - timedelta(days=365),
        "stop": stop,
        "snap": facts.snapshot_ids[0],
        "segs": segs,
    }
    with psycopg.connect(libpq_url) as conn:
        started = time.perf_counter()
        rows = conn.execute(SQL_BASELINE, args).fetchall()
        took = (time.perf_counter() - started) * 1000
    assert rows, "the baseline query found no orders"
    return took


@stage("callbacks", keys=("p50_ms", "p95_ms", "speedup_vs_sql", "cold_ms", "pages"))
def run(ctx: Context) -> dict[str, Any]:
    """Each page's filter-change callback over HTTP-shaped posts, logged in; SQL baseline."""
    from db import snapshots
    from webapp import warmup

    appenv.ensure_snapshots(ctx, 2)
    [email] = appenv.ensure_users(ctx, 1)
    facts = appenv.snapshot_facts(ctx)
    app = LoggedIn(ctx, email)
    rng = random.Random(6)
    warm_repeat = 1 if ctx.repeat == 1 else WARM_REPEAT[ctx.scale]
    try:
        specs = {p: dashpost.spec_for(app.deps, out) for p, out in dashpost.PAGES.items()}
        work = {
            p: dashpost.scenarios(p, facts.last_day, facts.segment_ids, facts.snapshot_ids, rng)
            for p in specs
        }
        # Cold: each page's first call with empty per-snapshot caches (all dates, no segment).
        # The first one also finds no snapshot files: it builds them (once per machine).
        cold: dict[str, float] = {}
        build_ms: float | None = None
        build_page = next(iter(specs))
        for page, spec in [(build_page, specs[build_page]), *specs.items()]:
            app.state.cache.clear()
            values, changed = next(  # all dates, no segment
                s
                for s in work[page]
                if not s[0]["f-dates.start_date"] and not s[0]["f-segments.value"]
            )
            took, _ = app.post(dashpost.body(spec, values, changed))
            if page == build_page and build_ms is None:
                build_ms = took
                ctx.log(f"  cold {page}, snapshot files built: {took:.0f} ms")
                continue
            cold[page] = took
            ctx.log(f"  cold {page}: {cold[page]:.0f} ms")
        # Warm: what a worker's background thread reads after a publish (webapp/warmup.py),
        # then every scenario of every page, shuffled, warm_repeat times.
        for snap in snapshots.published(app.engine)[:2]:
            warmup.warm(app.state.exporter, snap)

        calls = [(p, s) for p in specs for s in work[p]] * warm_repeat
        rng.shuffle(calls)
        times: dict[str, list[float]] = {p: [] for p in specs}
        problems: dict[str, list[str]] = {p: [] for p in specs}
        for page, (values, changed) in calls:
            took, answer = app.post(dashpost.body(specs[page], values, changed))
            times[page].append(took)
            msg = dashpost.message(page, answer)
            if msg is not None:
                problems[page].append(str(msg)[:200])
        # Baseline, alternating with the same chart from the app (Sales, month, last year).
        start, end = dashpost.date_range(facts.last_day, 365)
        sql: list[float] = []
        app_ms: list[float] = []
        seg_options = dashpost.segment_choices(facts.segment_ids, rng)
        sql_repeat = max(3, ctx.repeat) if ctx.repeat == 1 else SQL_REPEAT[ctx.scale]
        for i in range(sql_repeat):
            segs = seg_options[i % len(seg_options)]
            sql.append(sql_ms(ctx.libpq_url, facts, segs))
            values = {
                "f-dates.start_date": start,
                "f-dates.end_date": end,
                "f-segments.value": segs,
                "f-snapshot.value": facts.snapshot_ids[0],
                "sales-granularity.value": "month",
            }
            took, _ = app.post(dashpost.body(specs["sales"], values, "f-dates.start_date"))
            app_ms.append(took)
        ctx.log(f"  SQL GROUP BY median {median(sql):.0f} ms, Sales {median(app_ms):.1f} ms")
    finally:
        app.close()
    every = [t for ts in times.values() for t in ts]
    pages = {
        p: {
            "calls": len(ts),
            "p50_ms": round(percentile(ts, 50), 1),
            "p95_ms": round(percentile(ts, 95), 1),
            "max_ms": round(max(ts), 1),
            "cold_ms": round(cold[p], 1),
            "messages": sorted(set(problems[p]))[:3],
        }
        for p, ts in times.items()
    }
    for p, row in pages.items():
        ctx.log(f"  {p}: p50 {row['p50_ms']} ms, p95 {row['p95_ms']} ms, cold {row['cold_ms']} ms")
    return {
        "p50_ms": round(percentile(every, 50), 1),
        "p95_ms": round(percentile(every, 95), 1),
        "speedup_vs_sql": round(median(sql) / median(app_ms), 1),
        "cold_ms": {p: round(v, 1) for p, v in cold.items()},
        "cold_max_ms": round(max(cold.values()), 1),
        "cold_build_ms": None if build_ms is None else round(build_ms, 1),
        "pages": pages,
        "calls": len(every),
        "messages": sum(len(v) for v in problems.values()),
        "baseline_sql_ms": round(median(sql), 1),
        "baseline_app_ms": round(median(app_ms), 1),
        "baseline_runs_ms": [round(v, 1) for v in sql],
        "baseline_app_runs_ms": [round(v, 1) for v in app_ms],
        "baseline": "revenue, orders and net revenue by month x segment over the last year: "
        "GROUP BY over the raw transactions joined to snapshot_customers, per request",
        "snapshots": facts.snapshot_ids,
        "targets": {"p95_ms": 50, "speedup_vs_sql": 50, "applies_at": "L"},
    }
