"""refit: `custseg refit --force` in a child process (the data does not change between runs, so
without `--force` a refit would publish nothing); wall time, peak RSS and the time of each stage.

Peak RSS is the child's `ru_maxrss` from wait4() (the kernel's high-water mark), cross-checked
by polling the RSS with psutil every 50 ms. The stage times are the ones the refit stores in
`snapshots.timings`. The first run has no previous snapshot; later runs match segments to the
previous one, compute the migration table and delete the snapshot before it (the stage keeps
one), as every refit does in steady state. Baseline in the same
run: the per-customer RFM `GROUP BY` over the raw transactions in PostgreSQL, the query any
segmentation must at least run.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg

from bench.harness import Context, median, stage

RFM_SQL = (
    "SELECT customer_id, count(DISTINCT order_id), sum(amount), max(ordered_at) "
    "FROM transactions WHERE customer_id IS NOT NULL GROUP BY customer_id"
)


def _poll_rss(pid: int, peak: list[int], done: threading.Event) -> None:
    try:
        import psutil
    except ImportError:
        return
    try:
        proc = psutil.Process(pid)
        while not done.is_set():
            rss = proc.memory_info().rss
            for child in proc.children(recursive=True):
                rss += child.memory_info().rss
            peak[0] = max(peak[0], rss)
            time.sleep(0.05)
    except psutil.Error:
        return


def run_child(argv: list[str], env: dict[str, str]) -> tuple[float, float, float, str]:
    """Run `argv`; (wall s, ru_maxrss MB, polled peak RSS MB, stdout). Raises on failure."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = [0]
    done = threading.Event()
    poller = threading.Thread(target=_poll_rss, args=(proc.pid, peak, done), daemon=True)
    poller.start()
    out_chunks: list[bytes] = []
    err_chunks: list[bytes] = []
    readers = [
        threading.Thread(target=lambda s=s, b=b: b.append(s.read()), daemon=True)
        for s, b in ((proc.stdout, out_chunks), (proc.stderr, err_chunks))
    ]
    for r in readers:
        r.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    for r in readers:
        r.join()
    out = b"".join(out_chunks).decode()
    if proc.returncode != 0:
        err = b"".join(err_chunks).decode()
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {err.strip()}")
    return wall, usage.ru_maxrss / 1024, peak[0] / 2**20, out


def _latest_timings(libpq_url: str) -> tuple[dict[str, float], int, int]:
    with psycopg.connect(libpq_url) as conn:
        row = conn.execute(
            "SELECT timings, k, customers FROM snapshots WHERE status = 'published' "
            "ORDER BY id DESC LIMIT 1"
        ).fetchone()
    assert row is not None, "the refit published no snapshot"
    return dict(row[0]), int(row[1]), int(row[2])


def ari_vs_planted(libpq_url: str, dataset_path: Path) -> float | None:
    """Adjusted Rand index of the latest snapshot's segments against the planted ones."""
    planted_path = dataset_path.with_name(dataset_path.stem + ".segments.csv")
    if not planted_path.is_file():
        return None
    import pandas as pd
    from sklearn.metrics import adjusted_rand_score

    planted = pd.read_csv(planted_path, dtype=str)
    with psycopg.connect(libpq_url) as conn:
        rows = conn.execute(
            "SELECT customer_id, segment_id FROM snapshot_customers WHERE snapshot_id = "
            "(SELECT max(id) FROM snapshots WHERE status = 'published')"
        ).fetchall()
    found = pd.DataFrame(rows, columns=["customer_id", "segment_id"]).merge(
        planted, on="customer_id"
    )
    return round(float(adjusted_rand_score(found["planted_segment"], found["segment_id"])), 4)


def _groupby_s(libpq_url: str) -> float:
    with psycopg.connect(libpq_url) as conn:
        started = time.perf_counter()
        conn.execute(RFM_SQL).fetchall()
        return time.perf_counter() - started


def _runs(ctx: Context, extra_env: dict[str, str], label: str) -> dict[str, Any]:
    """`custseg refit --force` ctx.repeat times with `extra_env`: the stage's result."""
    ctx.ensure_imported()
    custseg = str(Path(sys.executable).with_name("custseg"))
    env = {
        **os.environ,
        "DATABASE_URL": ctx.database_url,
        "CUSTSEG_ENV": "production",
        "SECRET_KEY": secrets.token_hex(32),
        # Keep one snapshot: from the second run on, publishing also deletes the previous
        # snapshot's rows, as every refit does in steady state (default: keep the latest 5).
        "CUSTSEG_SNAPSHOTS_KEEP": "1",
        **extra_env,
    }
    runs: list[dict[str, Any]] = []
    baseline: list[float] = []
    for i in range(ctx.repeat):
        baseline.append(_groupby_s(ctx.libpq_url))
        # The refit alone: its files for the web workers are page_load's (`files_s`).
        argv = [custseg, "refit", "--quiet", "--force", "--no-files"]
        wall, maxrss, polled, _ = run_child(argv, env)
        timings, k, customers = _latest_timings(ctx.libpq_url)
        runs.append(
            {
                "wall_s": round(wall, 3),
                "peak_rss_mb": round(max(maxrss, polled), 1),
                "ru_maxrss_mb": round(maxrss, 1),
                "polled_rss_mb": round(polled, 1),
                "timings": timings,
                "k": k,
                "customers": customers,
                "previous_snapshot": i > 0,
            }
        )
        ctx.log(
            f"  {label} #{i + 1}: {wall:.1f} s, {max(maxrss, polled):.0f} MB, k={k}, "
            + ", ".join(f"{s} {v:.1f}" for s, v in timings.items())
        )
    stage_names = list(runs[0]["timings"])
    wall = median([r["wall_s"] for r in runs])
    groupby = median(baseline)
    return {
        "wall_s": round(wall, 3),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "stages_s": {
            s: round(median([r["timings"].get(s, 0.0) for r in runs]), 3) for s in stage_names
        },
        "k": runs[-1]["k"],
        "customers": runs[-1]["customers"],
        "ari_vs_planted": ari_vs_planted(ctx.libpq_url, ctx.dataset.path),
        "baseline_rfm_groupby_s": round(groupby, 3),
        "wall_vs_rfm_groupby": round(wall / groupby, 2),
        "runs": runs,
    }


@stage("refit", keys=("wall_s", "peak_rss_mb", "stages_s", "k"))
def run(ctx: Context) -> dict[str, Any]:
    """custseg refit in a child process: wall, peak RSS, stage times; RFM GROUP BY baseline."""
    out = _runs(ctx, {"CUSTSEG_REFIT_ENGINE": "local"}, "refit")
    out["targets"] = {"wall_s": 60, "peak_rss_mb": 4096, "applies_at": "L"}
    return out


def ari_vs_previous(libpq_url: str) -> float | None:
    """Adjusted Rand index of the latest snapshot's segments against the snapshot before it."""
    import pandas as pd
    from sklearn.metrics import adjusted_rand_score

    with psycopg.connect(libpq_url) as conn:
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM snapshots WHERE status = 'published' ORDER BY id DESC LIMIT 2"
            ).fetchall()
        ]
        if len(ids) < 2:
            return None
        rows = conn.execute(
            "SELECT snapshot_id, customer_id, segment_id FROM snapshot_customers "
            "WHERE snapshot_id = ANY(%s)",
            (ids,),
        ).fetchall()
    frame = pd.DataFrame(rows, columns=["snapshot_id", "customer_id", "segment_id"])
    a = frame[frame["snapshot_id"] == ids[1]].set_index("customer_id")["segment_id"]
    b = frame[frame["snapshot_id"] == ids[0]].set_index("customer_id")["segment_id"]
    both = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner")
    return round(float(adjusted_rand_score(both["a"], both["b"])), 4)


@stage("refit_spark", keys=("wall_s", "peak_rss_mb", "stages_s", "k"))
def run_spark(ctx: Context) -> dict[str, Any]:
    """The same refits with CUSTSEG_REFIT_ENGINE=spark (local mode unless CUSTSEG_SPARK_MASTER
    says otherwise): wall, peak RSS of the refit and its JVM, stage times. Not in the default
    run (it needs `.[spark]`, Java and the JDBC driver): `--only refit refit_spark`. After the
    `refit` stage, its first run's previous snapshot is the local engine's: `ari_vs_local`."""
    extra = {
        "CUSTSEG_REFIT_ENGINE": "spark",
        "CUSTSEG_SPARK_MASTER": os.environ.get("CUSTSEG_SPARK_MASTER", "local[*]"),
        # Local mode: the driver does all the work in the JVM's heap (default 1 GB).
        "PYSPARK_SUBMIT_ARGS": os.environ.get(
            "PYSPARK_SUBMIT_ARGS", "--driver-memory 3g pyspark-shell"
        ),
    }
    ari_local = None
    if ctx.repeat and "refit" in ctx.results:
        # One refit first, so its previous snapshot is the local engine's.
        first = _runs(replace(ctx, repeat=1), extra, "refit_spark (vs local)")
        ari_local = ari_vs_previous(ctx.libpq_url)
        out = _runs(ctx, extra, "refit_spark")
        out["runs"] = first["runs"] + out["runs"]
    else:
        out = _runs(ctx, extra, "refit_spark")
    out["ari_vs_local"] = ari_local
    out["spark_master"] = extra["CUSTSEG_SPARK_MASTER"]
    return out
