"""What the pages need of a published snapshot, read once per process and kept in memory.

A published snapshot never changes (analysts' names, kept apart, are read on every call), so
its orders (as an `OrderIndex`), customers, retention table and the frames derived from them are
read once and kept in a small LRU keyed by database, snapshot id and start time: a filter change
then costs binary searches and sums over in-memory arrays, never a database scan.

One `SnapshotCache` per process, held by the app's state (webapp/state.py) and by the command
line; `warm` fills it in the background when a web worker starts and after a publish
(webapp/warmup.py).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Engine

from db.models import Snapshot

T = TypeVar("T")
ENTRIES = 12  # frames: a few kinds × the snapshots being looked at


class SnapshotCache:
    """An LRU of a process's snapshot frames, one build at a time per key."""

    def __init__(self, entries: int = ENTRIES) -> None:
        self.entries = entries
        self._frames: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict[tuple[Any, ...], threading.Lock] = {}

    @staticmethod
    def key(engine: Engine, snap: Snapshot, kind: str) -> tuple[Any, ...]:
        return (str(engine.url), snap.id, snap.started_at, kind)

    def get(self, engine: Engine, snap: Snapshot, kind: str, load: Callable[[], T]) -> T:
        """The `kind` frame of `snap`, loaded by `load` on first use.

        One load per key: a request that needs what another thread (e.g. the warm-up) is reading
        waits for it instead of reading it a second time (twice the memory, twice the work).
        """
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
        with self._lock:
            self._frames.clear()

    def __len__(self) -> int:
        return len(self._frames)
