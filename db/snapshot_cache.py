"""What the pages need of a published snapshot, read once per process and kept in memory.

A published snapshot never changes (analysts' names, kept apart, are read on every call), so
its orders (as an `OrderIndex`), customers, retention table and the frames derived from them are
read once and kept in a small LRU keyed by database, snapshot id and start time: a filter change
then costs binary searches and sums over in-memory arrays, never a database scan.

One `SnapshotCache` per process, held by the app's state (webapp/state.py) and by the command
line; `warm` fills it in the background when a web worker starts and after a publish
(webapp/warmup.py).

With a `directory` (the app's: `CUSTSEG_CACHE_DIR`), the kinds read with a `Codec` (orders,
customers, predictions, and the profiles and customer sample, small but seconds to compute at 1M
customers) are not kept in the process: they come from Arrow files that the first process of the
machine writes and every process memory-maps (`db/snapshot_files.py`), so the LRU holds views of
shared pages. The retention table stays in the LRU as before. Without a directory
(the command line, tests) everything is read into the process.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine

from db.models import Snapshot
from db.snapshot_files import Codec, SnapshotFiles

T = TypeVar("T")
ENTRIES = 12  # frames: a few kinds × the snapshots being looked at


class SnapshotCache:
    """An LRU of a process's snapshot frames, one build at a time per key."""

    def __init__(self, entries: int = ENTRIES, directory: Path | None = None) -> None:
        self.entries = entries
        self.files = SnapshotFiles(directory) if directory is not None else None
        self._frames: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict[tuple[Any, ...], threading.Lock] = {}

    @staticmethod
    def key(engine: Engine, snap: Snapshot, kind: str) -> tuple[Any, ...]:
        return (str(engine.url), snap.id, snap.started_at, kind)

    def get(
        self,
        engine: Engine,
        snap: Snapshot,
        kind: str,
        load: Callable[[], T],
        codec: Codec[T] | None = None,
    ) -> T:
        """The `kind` frame of `snap`, loaded by `load` on first use.

        One load per key: a request that needs what another thread (e.g. the warm-up) is reading
        waits for it instead of reading it a second time (twice the memory, twice the work).
        With a `codec` and a directory, the frame comes from the machine's file of it (built
        with `load` by whichever process needs it first).
        """
        if codec is not None and self.files is not None:
            files, build = self.files, load

            def load() -> T:
                return files.load(engine, snap, kind, build, codec)

        key = self.key(engine, snap, kind)
        with self._lock:
            if key in self._frames:
                self._frames.move_to_end(key)
                return self._frames[key]  # type: ignore[no-any-return]
            building = self._building.setdefault(key, threading.Lock())
        with building:
            with self._lock:
                if key in self._frames:
                    self._frames.move_to_end(key)
                    return self._frames[key]  # type: ignore[no-any-return]
            try:
                value = load()
                with self._lock:
                    self._frames[key] = value
                    while len(self._frames) > self.entries:
                        self._frames.popitem(last=False)
            finally:
                with self._lock:
                    self._building.pop(key, None)
        return value

    def clear(self) -> None:
        """Forget this process's frames (the machine's files stay)."""
        with self._lock:
            self._frames.clear()

    def prune(self, engine: Engine, published: Iterable[Snapshot]) -> list[Path]:
        """Remove the files of this database's snapshots that are no longer `published`."""
        return self.files.prune(engine, published) if self.files is not None else []

    def __len__(self) -> int:
        return len(self._frames)
