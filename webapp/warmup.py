"""Each web worker reads the latest snapshot's caches in the background, at start and after a
publish, so the first filter change after either does not wait seconds for them.

The app's `SnapshotCache` keeps what a filter change needs of a snapshot (its orders as arrays,
its customers, ...); building them at 1M customers takes seconds. A daemon thread per process
reads them when the process starts (gunicorn imports `wsgi` in each worker) and again when it
sees a newer published snapshot (it looks every `CUSTSEG_WARM_INTERVAL` seconds: one indexed
query). The large ones come from the machine's Arrow files (db/snapshot_files.py), which the
scheduler writes right after a refit publishes; where it has not (another machine), the first
worker to get there builds them under a file lock, the others wait and then map them, so a
snapshot is built once per machine and held once in memory. The thread then removes the files
of snapshots no longer published. Requests are served meanwhile; one that needs a frame being
read waits for that read rather than starting its own. Older snapshots' frames leave the cache
as usual (LRU).

After each read the thread freezes what the process then holds (`gc.freeze`), as servers that
keep large long-lived state do. Python's full garbage collection walks every object it tracks,
the app's modules and what the cache holds: at M, ~220k objects in ~0.1 s, once every 30 to 60
filter changes in one measurement, inside whichever request allocated at that moment. Frozen
objects are left out of every later collection (a full one then takes ~1 ms); reference
counting still frees them when the cache lets them go. Only reference cycles among them wait:
the next read (a new snapshot) unfreezes and collects before it freezes again, a pause of about
that tenth of a second once per publish instead of once every few dozen requests.
"""

from __future__ import annotations

import gc
import logging
import threading
import time

from db import snapshots
from db.exporter import Exporter
from db.models import Snapshot

log = logging.getLogger("custseg.warmup")


def warm(exporter: Exporter, snap: Snapshot) -> None:
    """Read what filter changes need of `snap` into the cache, then freeze what the process
    holds, after collecting what the previous freeze kept from the collector (see above)."""
    gc.unfreeze()
    exporter.warm(snap)
    gc.collect()
    gc.freeze()


def _loop(exporter: Exporter, interval: float) -> None:
    seen: tuple[int, object] | None = None
    failing = False
    while True:
        try:
            snap = snapshots.latest_published(exporter.engine)
            if snap is not None and (snap.id, snap.started_at) != seen:
                started = time.perf_counter()
                warm(exporter, snap)
                seen = (snap.id, snap.started_at)
                removed = exporter.prune()  # files of snapshots the refit no longer keeps
                log.info(
                    "snapshot caches read",
                    extra={
                        "snapshot_id": snap.id,
                        "seconds": round(time.perf_counter() - started, 2),
                        "files_removed": len(removed),
                    },
                )
            failing = False
        except Exception:  # noqa: BLE001 - a cold cache is slower, never wrong: keep serving
            if not failing:
                log.warning("could not read the snapshot caches; retrying", exc_info=True)
            failing = True
        time.sleep(interval)


def start(exporter: Exporter, interval: float = 30.0) -> threading.Thread:
    thread = threading.Thread(
        target=_loop, args=(exporter, interval), name="custseg-warmup", daemon=True
    )
    thread.start()
    return thread
