"""load: locust, headless, 50 logged-in analysts changing filters and downloading charts.

Against gunicorn as production runs it (`bench/server.py`: 3 workers, timeout 120 s). The
users (`bench/locustfile.py`) each log in once through the form with its CSRF token; the login
rate limit (`CUSTSEG_LOGIN_RATE_LIMIT`, default 5 per minute) is left as it is: it counts only
failed logins, and the bench users' logins succeed. Before the run, every page's callback is
posted from 6 concurrent sessions (`server.warm_up`), so the workers have read the latest
snapshot's caches (the cold cost is the `callbacks` stage's `cold_ms`).

locust needs urllib3 >= 2 and dash[testing]'s selenium pins 1.26, so it runs from its own
virtualenv, `bench/.venv-locust` (gitignored), created here on first use with `pip install
locust`. `load.p95_ms` is the 95th percentile over every callback and download request (the
locustfile records each one; logins are not in it), `load.errors` the requests that failed
(non-200, a page message, a download without a file).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bench import appenv, server
from bench.harness import ROOT, Context, stage

VENV = ROOT / "bench" / ".venv-locust"
LOCUST_SPEC = "locust>=2.20,<3"
USERS = 50
SPAWN_RATE = 10  # users per second: all 50 in 5 s
RUN_TIME = {"S": "20s", "M": "60s", "L": "60s", "XL": "60s"}


def locust_bin(ctx: Context) -> Path:
    exe = VENV / "bin" / "locust"
    if not exe.exists():
        ctx.log(f"  creating {VENV.relative_to(ROOT)} ({LOCUST_SPEC})")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run(
            [str(VENV / "bin" / "python"), "-m", "pip", "install", "-q", LOCUST_SPEC], check=True
        )
    return exe


@stage("load", keys=("users", "p95_ms", "errors"))
def run(ctx: Context) -> dict[str, Any]:
    """locust headless against gunicorn: 50 analysts, filter changes and downloads."""
    appenv.ensure_snapshots(ctx, 2)
    emails = appenv.ensure_users(ctx, USERS)
    facts = appenv.snapshot_facts(ctx)
    exe = locust_bin(ctx)
    run_time = "10s" if ctx.repeat == 1 else RUN_TIME[ctx.scale]  # CI's smoke run: 10 s
    tmp = Path(tempfile.mkdtemp(prefix="custseg-locust-"))
    times_path = tmp / "times.json"
    config = {"emails": emails, "password": appenv.PASSWORD, **facts.as_json()}
    with server.gunicorn(ctx) as served:
        warm_s = server.warm_up(served, emails[0], facts)
        ctx.log(f"  warm-up {warm_s:.1f} s; locust {USERS} users for {run_time}")
        rss_before = served.worker_rss_mb()
        env = {
            **os.environ,
            "BENCH_LOAD_CONFIG": json.dumps(config),
            "BENCH_LOAD_TIMES": str(times_path),
        }
        argv = [
            str(exe),
            "-f",
            str(ROOT / "bench" / "locustfile.py"),
            "--headless",
            "--host",
            served.url,
            "-u",
            str(USERS),
            "-r",
            str(SPAWN_RATE),
            "-t",
            run_time,
            "--csv",
            str(tmp / "stats"),
            "--only-summary",
            "--loglevel",
            "WARNING",
            "--exit-code-on-error",
            "0",
        ]
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=tmp)
        if proc.returncode != 0 or not times_path.exists():
            raise RuntimeError(f"locust failed ({proc.returncode}): {proc.stderr[-3000:]}")
    rows = json.loads(times_path.read_text())
    by_name: dict[str, list[float]] = {}
    for name, ms, _ok in rows:
        by_name.setdefault(name, []).append(ms)
    every = np.asarray([ms for _, ms, _ in rows])
    errors = sum(1 for _, _, ok in rows if not ok)
    failures = (
        (tmp / "stats_failures.csv").read_text() if (tmp / "stats_failures.csv").exists() else ""
    )
    requests = len(rows)
    seconds = float(run_time.rstrip("s"))
    result = {
        "users": USERS,
        "p95_ms": round(float(np.percentile(every, 95)), 1),
        "p50_ms": round(float(np.percentile(every, 50)), 1),
        "max_ms": round(float(every.max()), 1),
        "errors": errors,
        "requests": requests,
        "requests_per_s": round(requests / seconds, 1),
        "run_time_s": seconds,
        "per_request": {
            name: {
                "count": len(v),
                "p50_ms": round(float(np.percentile(v, 50)), 1),
                "p95_ms": round(float(np.percentile(v, 95)), 1),
            }
            for name, v in sorted(by_name.items())
        },
        "failures_csv": failures[:3000],
        "warm_up_s": round(warm_s, 1),
        "rss_mb_before": rss_before,
        "server": server.summary(served),
        "login": "each user logs in once through the form; the rate limit counts failed "
        "logins only and is left at its default",
        "targets": {"errors": 0, "p95_ms": 500, "applies_at": "L"},
    }
    ctx.log(
        f"  {requests} requests, p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms, "
        f"{errors} errors"
    )
    return result
