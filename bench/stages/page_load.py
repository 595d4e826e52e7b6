"""page_load: headless Chromium, from navigation to every chart of the page drawn.

The app runs under gunicorn as production runs it (`bench/server.py`). Chromium (selenium, from
dash[testing]) logs in through the form once, then loads each page by its URL (a full
navigation, default filters) and polls every 20 ms until the page is drawn: the page's layout
is in, every `dcc.Graph` holds a Plotly plot with data (or its "nothing to show" message), the
Customers member table has rows,
and no element has `data-dash-is-loading=true`. `page_load_s` is the largest per-page median
over `loads` warm loads; the first load of each page after gunicorn starts is reported apart
(`cold_s`): its worker may be the one that reads the snapshot's caches. gunicorn starts with an
empty snapshot cache directory (`CUSTSEG_CACHE_DIR`), so that first load includes building the
snapshot's files once for the machine; `restart_s` is the first load of each page after a
second start on the same directory (the files are there: a deploy or a crash), and
`scheduled_s` the first load after a start once the scheduler process has written the files
of the two latest snapshots, as it does after each refit (`files_s`: that job's time). Worker memory
after the warm-up: RSS, USS (private), PSS (private plus a share of shared pages) and anonymous
memory (the worker's own data: a mapped file's pages never count there).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import appenv, server
from bench.chrome import chrome_options
from bench.harness import Context, median, stage

PAGES = ("/", "/segments", "/retention", "/sales", "/migration", "/customers", "/model")
EXTRA_READY = {"/customers": "#members-table td.dash-cell"}
LOADS = {"S": 2, "M": 5, "L": 5, "XL": 3}
TIMEOUT_S = 60

READY_JS = """
const extra = arguments[0];
if (document.querySelector('[data-dash-is-loading="true"]')) return false;
const graphs = document.querySelectorAll('#_pages_content .dash-graph');
if (extra) {
  if (!document.querySelector(extra)) return false;
} else if (graphs.length === 0) {
  return false;
}
for (const g of graphs) {
  const plot = g.querySelector('.js-plotly-plot');
  if (!plot || !plot.data || !plot._fullLayout) return false;
  // A chart with nothing to show (e.g. predictions switched off) draws its message instead.
  const note = (plot.layout.annotations || []).length > 0;
  if (plot.data.length === 0 && !note) return false;
}
return graphs.length + (extra ? 1 : 0);
"""


def browser() -> Any:
    from selenium import webdriver

    return webdriver.Chrome(options=chrome_options())


def login(driver: Any, url: str, email: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(url + "/login")
    driver.find_element(By.ID, "email").send_keys(email)
    driver.find_element(By.ID, "password").send_keys(appenv.PASSWORD)
    driver.find_element(By.ID, "login-submit").click()
    deadline = time.monotonic() + TIMEOUT_S
    while "/login" in driver.current_url:
        if time.monotonic() > deadline:
            raise RuntimeError("the login form did not let the bench user in")
        time.sleep(0.05)


DOM_JS = "return performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd;"


def load(driver: Any, url: str, path: str, dom: list[float] | None = None) -> float:
    """Seconds from navigation to the page drawn; `dom` gets the DOMContentLoaded time (the
    HTML and Dash's scripts, before any callback)."""
    started = time.perf_counter()
    driver.get(url + path)
    deadline = time.monotonic() + TIMEOUT_S
    while not driver.execute_script(READY_JS, EXTRA_READY.get(path)):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} was not drawn within {TIMEOUT_S} s")
        time.sleep(0.02)
    took = time.perf_counter() - started
    if dom is not None:
        dom.append(float(driver.execute_script(DOM_JS)) / 1000)
    return took


def first_loads(ctx: Context, cache_dir: Path, email: str, what: str) -> dict[str, float]:
    """Start gunicorn on `cache_dir`, log in and load each page once: seconds per page."""
    with server.gunicorn(ctx, cache_dir=cache_dir) as served:
        driver = browser()
        try:
            login(driver, served.url, email)
            firsts = {p: load(driver, served.url, p) for p in PAGES}
        finally:
            driver.quit()
    ctx.log(f"  {what}: " + ", ".join(f"{p} {s:.2f} s" for p, s in firsts.items()))
    return firsts


def scheduler_writes_files(ctx: Context, cache_dir: Path) -> tuple[float, float]:
    """Queue a `files` job for the two latest published snapshots and run them as the
    scheduler does (`custseg scheduler --once`, a child process): wall s and peak RSS MB."""
    from bench.stages.refit import run_child
    from db import jobs
    from db.models import Trigger
    from db.session import make_engine

    engine = make_engine(ctx.database_url)
    try:
        for snapshot_id in appenv.published_ids(ctx.libpq_url)[:2]:
            jobs.enqueue(engine, "files", {"snapshot_id": snapshot_id}, trigger=Trigger.CLI)
    finally:
        engine.dispose()
    custseg = str(Path(sys.executable).with_name("custseg"))
    env = appenv.production_env(ctx, CUSTSEG_CACHE_DIR=str(cache_dir))
    wall, maxrss, polled, out = run_child([custseg, "scheduler", "--once"], env)
    if out.count("(files, cli): done") != 2:
        raise RuntimeError(f"the scheduler did not write the files: {out.strip()}")
    return wall, max(maxrss, polled)


@stage("page_load", keys=("page_load_s", "pages", "cold_s"))
def run(ctx: Context) -> dict[str, Any]:
    """Headless Chromium against gunicorn: navigation to every chart drawn, per page."""
    appenv.ensure_snapshots(ctx, 2)
    [email] = appenv.ensure_users(ctx, 1)
    loads = 1 if ctx.repeat == 1 else LOADS[ctx.scale]
    cache_dir = Path(tempfile.mkdtemp(prefix="custseg-bench-cache-"))  # empty: built here
    try:
        with server.gunicorn(ctx, cache_dir=cache_dir) as served:
            driver = browser()
            try:
                login(driver, served.url, email)
                cold = {p: load(driver, served.url, p) for p in PAGES}
                ctx.log("  cold: " + ", ".join(f"{p} {s:.2f} s" for p, s in cold.items()))
                for _ in range(1 if ctx.repeat == 1 else 2):  # warm-up: spread over workers
                    for p in PAGES:
                        load(driver, served.url, p)
                rss_warm = served.worker_rss_mb()
                memory_warm = served.memory()
                runs: dict[str, list[float]] = {p: [] for p in PAGES}
                dom: dict[str, list[float]] = {p: [] for p in PAGES}
                for _ in range(loads):
                    for p in PAGES:
                        runs[p].append(load(driver, served.url, p, dom[p]))
            finally:
                driver.quit()
        # A restart (a deploy, a crash) on the same machine: the snapshot files are there.
        restart = first_loads(ctx, cache_dir, email, "after a restart")
        # Production's path: after a refit publishes, the scheduler process writes the files
        # (a `files` job per snapshot), so a worker that starts maps them.
        shutil.rmtree(cache_dir)
        files_s, files_rss_mb = scheduler_writes_files(ctx, cache_dir)
        ctx.log(f"  scheduler wrote the files: {files_s:.1f} s, peak RSS {files_rss_mb:,.0f} MB")
        scheduled = first_loads(ctx, cache_dir, email, "start after the scheduler's files")
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    pages = {p: round(median(v), 3) for p, v in runs.items()}
    ctx.log("  warm medians: " + ", ".join(f"{p} {s:.2f} s" for p, s in pages.items()))
    return {
        "page_load_s": max(pages.values()),
        "slowest_page": max(pages, key=lambda p: pages[p]),
        "pages": pages,
        "cold_s": {p: round(v, 3) for p, v in cold.items()},
        "cold_max_s": round(max(cold.values()), 3),
        "restart_s": {p: round(v, 3) for p, v in restart.items()},
        "restart_max_s": round(max(restart.values()), 3),
        "files_s": round(files_s, 3),
        "files_peak_rss_mb": round(files_rss_mb, 1),
        "scheduled_s": {p: round(v, 3) for p, v in scheduled.items()},
        "scheduled_max_s": round(max(scheduled.values()), 3),
        "loads": loads,
        "dom_content_loaded_s": {p: round(median(v), 3) for p, v in dom.items()},
        "runs_s": {p: [round(x, 3) for x in v] for p, v in runs.items()},
        "rss_mb_warm": rss_warm,
        "uss_mb_warm": memory_warm["uss_mb"],
        "pss_mb_warm": memory_warm["pss_mb"],
        "anon_mb_warm": memory_warm["anon_mb"],
        "server": server.summary(served),
        "targets": {"page_load_s": 2, "applies_at": "L"},
    }
