"""A web worker's warm-up (webapp/warmup.py): it reads the latest snapshot's caches, then
freezes what the process holds, so that Python's full garbage collections stop walking the
cached frames in the middle of requests; the next warm-up first lets the collector see them
again, so reference cycles among what was frozen are still freed."""

from __future__ import annotations

import gc
import weakref

from sqlalchemy import Engine

from db import snapshots
from db.exporter import Exporter
from db.snapshot_cache import SnapshotCache
from webapp import warmup


class _Node:
    me: _Node


def test_a_warm_up_reads_the_caches_freezes_them_and_the_next_one_collects_cycles(
    dashboard: object, sqlite_engine: Engine
) -> None:
    exporter = Exporter(sqlite_engine, SnapshotCache())
    snap = snapshots.get_snapshot(sqlite_engine)
    cycle = _Node()
    cycle.me = cycle  # freed only by the collector once nothing else holds it
    freed = weakref.ref(cycle)
    try:
        warmup.warm(exporter, snap)
        assert len(exporter.cache) >= 4  # orders, customers, retention, profiles, ...
        frozen = gc.get_freeze_count()
        assert frozen > len(gc.get_objects())  # nearly everything the process holds
        del cycle
        gc.collect()
        assert freed() is not None  # frozen: no collection walks it
        warmup.warm(exporter, snap)  # a new snapshot seen: unfreeze, collect, freeze
        assert freed() is None
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
