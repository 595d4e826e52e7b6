"""The one entry point of exports: `Exporter.export(name, filters, snapshot)`.

Pages, downloads and `custseg export` all call it, so what a chart draws, what its download holds
and what the command line writes cannot disagree. It checks the filters against the snapshot
(`Filters.validate`, its segments), refuses data a role may not receive (the export's declared
role, `analytics/exports/registry.py`), computes the export from the snapshot's frames (served by
`SnapshotSources` from the process's `SnapshotCache`) and returns the frame with its provenance.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from analytics import aggregates, exports
from analytics.campaigns import AudienceList
from analytics.exports import Filters, SnapshotInfo
from analytics.exports.customers import member_rows, profile_table, sample_customers
from analytics.orderindex import OrderIndex
from db import snapshots
from db.models import Snapshot
from db.snapshot_cache import SnapshotCache


class Forbidden(PermissionError):
    """The asking role may not receive this export's data."""


class SnapshotSources:
    """One snapshot's frames for the exports (`analytics.exports.Sources`): the large, fixed
    ones from the cache, the small ones (names, history) read per instance. Make one per request
    (or per command) and reuse it for every export of that request."""

    def __init__(
        self, engine: Engine, cache: SnapshotCache, snap: Snapshot, active_days: int = 90
    ) -> None:
        self.engine, self.cache, self.snap, self.active_days = engine, cache, snap, active_days

    def _cached(self, kind: str, load: Any) -> Any:
        return self.cache.get(self.engine, self.snap, kind, load)

    @cached_property
    def snapshot(self) -> SnapshotInfo:
        s = self.snap
        return SnapshotInfo(
            s.id, s.as_of, s.data_start, s.data_end, s.k, s.previous_id, self.active_days
        )

    @property
    def orders(self) -> OrderIndex:
        return self._cached(  # type: ignore[no-any-return]
            "orders", lambda: OrderIndex.build(snapshots.orders(self.engine, self.snap))
        )

    @property
    def customers(self) -> pd.DataFrame:
        """Every customer of the snapshot, sorted by customer id."""

        def load() -> pd.DataFrame:
            frame = snapshots.customers(self.engine, self.snap.id)
            return frame.sort_values("customer_id", kind="stable").reset_index(drop=True)

        return self._cached("customers", load)  # type: ignore[no-any-return]

    @cached_property
    def segments(self) -> pd.DataFrame:
        return snapshots.segments(self.engine, self.snap.id)

    @property
    def profiles(self) -> pd.DataFrame:
        """Every segment's profile, computed once per snapshot (names: see `segments`)."""
        return self._cached(  # type: ignore[no-any-return]
            "profiles", lambda: profile_table(self.customers, self.segments)
        )

    @property
    def customer_sample(self) -> pd.DataFrame:
        return self._cached(  # type: ignore[no-any-return]
            "customer_sample", lambda: sample_customers(self.customers)
        )

    @property
    def retention(self) -> pd.DataFrame:
        return self._cached(  # type: ignore[no-any-return]
            "retention", lambda: snapshots.retention_table(self.engine, self.snap.id)
        )

    @cached_property
    def scores(self) -> pd.DataFrame:
        return snapshots.scores(self.engine, self.snap.id)

    @cached_property
    def history(self) -> pd.DataFrame:
        return snapshots.history(self.engine)

    def campaign(self, campaign_id: int) -> AudienceList:
        from db.campaigns import audience_list

        return audience_list(self.engine, campaign_id)

    def migration(self, compare_to: int | None) -> tuple[pd.DataFrame, int | None]:
        target = self.snap
        if compare_to is not None:
            if compare_to >= target.id:
                raise exports.FilterError(
                    f"compare_to must be a snapshot earlier than {target.id} (got {compare_to})"
                )
            source = snapshots.get_snapshot(self.engine, compare_to)
        elif target.previous_id is not None:
            source = snapshots.latest_published(self.engine, target.previous_id) or target
        else:
            source = target
        if source.id == target.id:  # the first snapshot: nobody moved yet
            return snapshots.migration_table(self.engine, target.id).iloc[0:0], None
        if target.previous_id == source.id:
            stored = snapshots.migration_table(self.engine, target.id)
            if not stored.empty:
                return stored, source.id
        earlier = SnapshotSources(self.engine, self.cache, source, self.active_days).customers
        return aggregates.migration(earlier, self.customers), source.id


class Exporter:
    """Exports of a database's snapshots, read through one process-wide cache."""

    def __init__(self, engine: Engine, cache: SnapshotCache, active_days: int = 90) -> None:
        self.engine, self.cache, self.active_days = engine, cache, active_days

    def sources(self, snapshot_id: int | None = None) -> SnapshotSources:
        """The frames of published snapshot `snapshot_id` (default: the latest)."""
        snap = snapshots.get_snapshot(self.engine, snapshot_id)
        return SnapshotSources(self.engine, self.cache, snap, self.active_days)

    def export(
        self,
        name: str,
        filters: Filters,
        snapshot_id: int | None = None,
        *,
        role: str | None = None,
        src: SnapshotSources | None = None,
    ) -> tuple[pd.DataFrame, dict[str, Any]]:
        """Export `name` of the snapshot, and its provenance.

        `role`: the asking user's (None: the command line, for whoever runs the server). `src`:
        the snapshot's sources when the caller reads several exports of it (a page).
        """
        self._check_role(name, role)
        filters.validate()
        if src is None or (snapshot_id is not None and src.snap.id != snapshot_id):
            src = self.sources(snapshot_id)
        check_segments(src.segments, src.snap.id, filters.segments)
        frame, extra = exports.compute(name, src, filters)
        snap = src.snap
        provenance: dict[str, Any] = {
            "export": name,
            "snapshot_id": snap.id,
            "as_of": snap.as_of,
            "data_window": f"{snap.data_start} .. {snap.data_end}",
            "fitted_at": snap.finished_at,
            **extra,
            **{f"filter_{k}": v for k, v in filters.describe().items()},
            "exported_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
            "rows": len(frame),
        }
        return frame, provenance

    @staticmethod
    def _check_role(name: str, role: str | None) -> None:
        spec = exports.get(name)
        if not exports.allowed(spec.role, role):
            raise Forbidden(f"This shows single customers: it needs the {spec.role} role.")

    def file(
        self,
        name: str,
        filters: Filters,
        snapshot_id: int | None,
        fmt: str,
        *,
        row_cap: int,
        role: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> tuple[bytes, dict[str, Any]]:
        """The file of export `name` (CSV or XLSX) and its provenance; an export longer than its
        row cap (the export's own, else `row_cap`) is refused with what to do."""
        if fmt not in exports.FORMATS:
            raise ValueError(f"The format must be one of {', '.join(exports.FORMATS)}.")
        frame, provenance = self.export(name, filters, snapshot_id, role=role)
        cap = exports.get(name).row_cap or row_cap
        if len(frame) > cap:
            raise ValueError(
                f"{len(frame):,} rows is over the export cap of {cap:,} "
                "(CUSTSEG_EXPORT_ROW_CAP): narrow the filters."
            )
        provenance.update(extra or {})
        return exports.to_bytes(frame, fmt, provenance), provenance

    def members_page(
        self,
        src: SnapshotSources,
        segment_ids: tuple[int, ...],
        page: int,
        size: int,
        *,
        role: str | None = None,
    ) -> tuple[pd.DataFrame, int]:
        """One page of the `members` export (same order), and how many members there are.

        Positions first, then the page's rows: filtering the whole frame copied every column of
        up to 1M customers on each page turn.
        """
        self._check_role("members", role)
        check_segments(src.segments, src.snap.id, segment_ids)
        frame = src.customers
        rows = np.arange(len(frame))
        if segment_ids:
            rows = np.flatnonzero(np.isin(frame["segment_id"].to_numpy(), segment_ids))
        part = member_rows(frame.iloc[rows[page * size : (page + 1) * size]])
        return part, len(rows)

    def warm(self, snap: Snapshot) -> None:
        """Read what the pages' filter changes need of `snap` into the cache: its orders (and
        the per-granularity sales tables and order-value runs), customers, retention table,
        profiles and customer sample."""
        src = SnapshotSources(self.engine, self.cache, snap, self.active_days)
        index = src.orders
        for granularity in exports.GRANULARITIES:
            index.sales(None, None, (), granularity)
        index.aov_distribution(None, None, ())
        for kind in ("customers", "retention", "profiles", "customer_sample"):
            getattr(src, kind)


def check_segments(segs: pd.DataFrame, snapshot_id: int, segment_ids: tuple[int, ...]) -> None:
    """Refuse segment ids the snapshot does not have."""
    known = set(segs["segment_id"].astype(int))
    unknown = sorted(set(segment_ids) - known)
    if unknown:
        raise exports.FilterError(
            f"unknown segment id(s) {unknown} in snapshot {snapshot_id}; known: {sorted(known)}"
        )
