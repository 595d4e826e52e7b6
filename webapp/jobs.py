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

from config import Settings
from db import snapshots

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


def start_refit(settings: Settings, engine: object) -> str:
    """Start a refit in the background; the message says what happened."""
    reap()
    busy = snapshots.running(engine)  # type: ignore[arg-type]
    if busy is not None:
        return f"A refit is already running (snapshot {busy.id}, stage {busy.stage})."
    with _lock:
        if _children:
            return "A refit started from this server is still starting."
        log = open(os.devnull, "wb")  # noqa: SIM115 - handed to the child
        child = subprocess.Popen(
            [sys.executable, "-m", "webapp.cli", "refit", "--quiet", "--trigger", "web"],
            env=_env(settings),
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        _children.append(child)
    return "Refit started: its progress shows below."


def progress(engine: object) -> tuple[str, int] | None:
    """(stage, percent) of the running refit, or None."""
    reap()
    run = snapshots.running(engine)  # type: ignore[arg-type]
    if run is None:
        with _lock:
            starting = bool(_children)  # started here, not yet recorded its run
        return ("starting", 5) if starting else None
    stage = run.stage or "queued"
    step = STAGES.index(stage) + 1 if stage in STAGES else 1
    return stage, int(100 * step / (len(STAGES) + 1))
