"""'Refit now' from the web app: the refit runs in its own process, never in a web worker.

The child is `custseg refit` with the app's settings; it takes the refit lock (a second click,
or the scheduler, is skipped, not doubled) and records its stage in the snapshot row, which the
Model and Admin pages poll. A web worker that dies does not take the refit with it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from config import Settings
from db import snapshots

START_GRACE_S = 90  # a child that has not recorded its run by then did not start
STAGES = ("queued", "loading", "features", "clustering", "profiles", "aggregates", "writing")
_children: list[subprocess.Popen[bytes]] = []
_lock = threading.Lock()


def _env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "CUSTSEG_ENV": settings.env,
            "DATABASE_URL": settings.database_url,
            "CUSTSEG_INSTANCE_DIR": str(settings.instance_dir),
            "CUSTSEG_K_MIN": str(settings.k_min),
            "CUSTSEG_K_MAX": str(settings.k_max),
            "CUSTSEG_RANDOM_SEED": str(settings.random_seed),
            "CUSTSEG_SILHOUETTE_SAMPLE": str(settings.silhouette_sample),
            "CUSTSEG_SNAPSHOTS_KEEP": str(settings.snapshots_keep),
        }
    )
    return env


def reap() -> None:
    """Collect finished children (no zombies)."""
    with _lock:
        _children[:] = [p for p in _children if p.poll() is None]


def log_path(settings: Settings) -> Path:
    return Path(settings.instance_dir) / "refit-web.log"


def start_refit(settings: Settings, engine: object) -> dict[str, Any]:
    """Start `custseg refit` in the background and return what the page polls with.

    The child takes the refit lock itself: if another refit holds it, the child records
    "skipped" in the log and exits; a run left `running` by a dead process is marked failed by
    the next refit that gets the lock. So the button always starts a child.
    """
    reap()
    history = snapshots.history(engine)  # type: ignore[arg-type]
    after = int(history["snapshot_id"].max()) if not history.empty else 0
    path = log_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _lock, open(path, "ab") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "webapp.cli", "refit", "--quiet", "--trigger", "web"],
            env=_env(settings),
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        _children.append(child)
    return {"after": after, "at": time.time(), "pid": child.pid}


def _running(stage: str | None) -> dict[str, Any]:
    stage = stage or "queued"
    step = STAGES.index(stage) + 1 if stage in STAGES else 1
    return {"state": "running", "stage": stage, "percent": int(100 * step / (len(STAGES) + 1))}


def progress(engine: object, started: dict[str, Any] | None) -> dict[str, Any]:
    """What became of the refit started as `started` (from any web worker): its stage while it
    runs, then its snapshot (published or failed), or that it never started (see the log)."""
    reap()
    try:  # `started` comes back from the browser
        after = int(started.get("after", 0)) if isinstance(started, dict) else 0
        at = float(started.get("at", 0.0)) if isinstance(started, dict) else 0.0
    except (TypeError, ValueError, OverflowError):
        after, at = 0, 0.0
    run = snapshots.running(engine)  # type: ignore[arg-type]
    if run is not None and run.id > after:
        return _running(run.stage)
    history = snapshots.history(engine)  # type: ignore[arg-type]
    newer = history[history["snapshot_id"] > after] if not history.empty else history
    if not newer.empty:
        row = newer.iloc[0]
        if str(row["status"]) not in ("published", "failed"):  # began between the two reads
            return _running(row["stage"] if isinstance(row["stage"], str) else None)
        return {
            "state": str(row["status"]),
            "snapshot_id": int(row["snapshot_id"]),
            "k": None if row["k"] != row["k"] else row["k"],
            "error": row["error"],
        }
    if run is not None:
        return {"state": "waiting", "stage": f"another refit ({run.stage})", "percent": 5}
    if time.time() - at < START_GRACE_S:
        return {"state": "starting", "stage": "starting", "percent": 5}
    return {"state": "lost"}
