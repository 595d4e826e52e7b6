"""The one entry point of exports: `Exporter.export(name, filters, snapshot)`.

Pages, downloads and `custseg export` all call it, so what a chart draws, what its download holds
and what the command line writes cannot disagree. It checks the filters against the snapshot
(`Filters.validate`, its segments), refuses data a role may not receive (the export's declared
role, `analytics/exports/registry.py`), computes the export from the snapshot's frames (served by
`SnapshotSources` from the process's `SnapshotCache`) and returns the frame with its provenance.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from analytics import aggregates, exports, rfm
from analytics.campaigns import AudienceList
from analytics.exports import Filters, SnapshotInfo
from analytics.exports.customers import MEMBER_COLUMNS, profile_table, sample_customers
from analytics.exports.predictions import PREDICTION_COLUMNS, rounded
from analytics.exports.predictions import high_value_high_risk as at_risk_flags
from analytics.orderindex import OrderIndex
from config import Settings
from db import snapshots
from db.jobs import JobResult
from db.models import Job, JobStatus, Snapshot
from db.snapshot_cache import SnapshotCache
from db.snapshot_files import FRAME, Codec, arrays_table, table_arrays

# The orders index as one file of flat arrays, completed first (order-value runs, the rollups of
# every granularity) so that no process computes those for itself.
ORDERS: Codec[OrderIndex] = Codec(
    lambda index: arrays_table(index.complete().arrays()),
    lambda table: OrderIndex.from_arrays(table_arrays(table)),
)


@dataclass(frozen=True)
class Limits:
    """The settings exports use: the active-customer window and the risk and value thresholds."""

    active_days: int = 90
    high_risk: float = 0.7
    high_value_share: float = 0.2

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(settings.active_days, settings.high_risk, settings.high_value_share)


def empty_predictions() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": pd.Series(dtype=str),
            "segment_id": pd.Series(dtype="int64"),
            "expected_orders_90d": pd.Series(dtype=float),
            "churn_risk": pd.Series(dtype=float),
            "clv_12m": pd.Series(dtype=float),
            "unscored_reason": pd.Series(dtype=object),
        }
    )


# What a snapshot keeps as files (besides its predictions, once they are done), and the cache
# key of its predictions (read once they are done: they change once, from pending to done).
FILE_KINDS = ("orders", "customers", "profiles", "customer_sample")
PREDICTIONS_KIND = "predictions:done"


class Forbidden(PermissionError):
    """The asking role may not receive this export's data."""


class SnapshotSources:
    """One snapshot's frames for the exports (`analytics.exports.Sources`): the large, fixed
    ones from the cache, the small ones (names, history) read per instance. Make one per request
    (or per command) and reuse it for every export of that request."""

    def __init__(
        self, engine: Engine, cache: SnapshotCache, snap: Snapshot, limits: Limits | None = None
    ) -> None:
        self.engine, self.cache, self.snap = engine, cache, snap
        self.limits = limits or Limits()

    def _cached(self, kind: str, load: Any, codec: Codec[Any] | None = None) -> Any:
        return self.cache.get(self.engine, self.snap, kind, load, codec)

    @cached_property
    def snapshot(self) -> SnapshotInfo:
        s, lim = self.snap, self.limits
        return SnapshotInfo(
            s.id,
            s.as_of,
            s.data_start,
            s.data_end,
            s.k,
            s.previous_id,
            lim.active_days,
            lim.high_risk,
            lim.high_value_share,
            str(s.predictions_status),
            s.predictions,
        )

    @property
    def orders(self) -> OrderIndex:
        return self._cached(  # type: ignore[no-any-return]
            "orders", lambda: OrderIndex.build(snapshots.orders(self.engine, self.snap)), ORDERS
        )

    @property
    def customers(self) -> pd.DataFrame:
        """Every customer of the snapshot, sorted by customer id."""

        def load() -> pd.DataFrame:
            frame = snapshots.customers(self.engine, self.snap.id)
            return frame.sort_values("customer_id", kind="stable").reset_index(drop=True)

        return self._cached("customers", load, FRAME)  # type: ignore[no-any-return]

    @property
    def predictions(self) -> pd.DataFrame:
        """The snapshot's predictions with each customer's segment, by customer id (read once
        they are done: a published snapshot's predictions change once, from pending to done)."""
        if str(self.snap.predictions_status) != "done":
            return empty_predictions()

        def load() -> pd.DataFrame:
            from db.predictions import read

            preds = read(self.engine, self.snap.id)
            segment = self.customers[["customer_id", "segment_id"]]
            # Unscored customers with only returns have no segment: 0, as in `sales`.
            frame = preds.merge(segment, on="customer_id", how="left")
            frame["segment_id"] = frame["segment_id"].fillna(0).astype("int64")
            cols = ["customer_id", "segment_id", *PREDICTION_COLUMNS, "unscored_reason"]
            return frame[cols].sort_values("customer_id", kind="stable").reset_index(drop=True)

        return self._cached(PREDICTIONS_KIND, load, FRAME)  # type: ignore[no-any-return]

    @property
    def member_predictions(self) -> np.ndarray:
        """For each row of `customers`, the row of its predictions in `predictions` (-1: none,
        every row while they are pending), so the member list sorts and filters by them
        without a join of every customer on each page turn."""
        if str(self.snap.predictions_status) != "done":
            return np.full(len(self.customers), -1, dtype=np.int64)

        def load() -> np.ndarray:
            index = pd.Index(self.predictions["customer_id"])
            return np.asarray(index.get_indexer(self.customers["customer_id"]), dtype=np.int64)

        return self._cached("member_predictions:done", load)  # type: ignore[no-any-return]

    @cached_property
    def segments(self) -> pd.DataFrame:
        return snapshots.segments(self.engine, self.snap.id)

    @property
    def profiles(self) -> pd.DataFrame:
        """Every segment's profile, computed once per snapshot (names: see `segments`)."""
        return self._cached(  # type: ignore[no-any-return]
            "profiles", lambda: profile_table(self.customers, self.segments), FRAME
        )

    @property
    def customer_sample(self) -> pd.DataFrame:
        return self._cached(  # type: ignore[no-any-return]
            "customer_sample", lambda: sample_customers(self.customers), FRAME
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
        target, source = self.snap, self._earlier(compare_to)
        if source.id == target.id:  # the first snapshot: nobody moved yet
            return snapshots.migration_table(self.engine, target.id).iloc[0:0], None
        if target.previous_id == source.id:
            stored = snapshots.migration_table(self.engine, target.id)
            if not stored.empty:
                return stored, source.id
        earlier = SnapshotSources(self.engine, self.cache, source, self.limits).customers
        return aggregates.migration(earlier, self.customers), source.id

    @cached_property
    def stages(self) -> pd.DataFrame:
        return snapshots.stages(self.engine, self.snap.id)

    @cached_property
    def k_previews(self) -> pd.DataFrame:
        return snapshots.k_previews(self.engine, self.snap.id)

    def _earlier(self, compare_to: int | None) -> Snapshot:
        """The snapshot moves come from: `compare_to`, else the previous one (the snapshot
        itself when there is none: the first snapshot)."""
        target = self.snap
        if compare_to is not None:
            if compare_to >= target.id:
                raise exports.FilterError(
                    f"compare_to must be a snapshot earlier than {target.id} (got {compare_to})"
                )
            return snapshots.get_snapshot(self.engine, compare_to)
        if target.previous_id is not None:
            return snapshots.latest_published(self.engine, target.previous_id) or target
        return target

    def stage_migration(self, compare_to: int | None) -> tuple[pd.DataFrame, int | None]:
        cols = ["from_stage", "to_stage", "customers", "gross_revenue"]
        target, source = self.snap, self._earlier(compare_to)
        if source.id == target.id:  # the first snapshot: nobody moved yet
            return pd.DataFrame(columns=cols), None
        if target.previous_id == source.id:
            stored = snapshots.stage_migration_table(self.engine, target.id)
            if not stored.empty:
                return stored[cols], source.id
        earlier = SnapshotSources(self.engine, self.cache, source, self.limits).customers
        columns = ["customer_id", "lifecycle_stage", "monetary"]
        # Plain objects: the stage-migration marks "(new)" / "(gone)" are no categories.
        before, now = (
            frame[columns].astype({"lifecycle_stage": object})
            for frame in (earlier, self.customers)
        )
        return rfm.stage_migration(before, now)[cols], source.id


class Exporter:
    """Exports of a database's snapshots, read through one process-wide cache."""

    def __init__(self, engine: Engine, cache: SnapshotCache, limits: Limits | None = None) -> None:
        self.engine, self.cache, self.limits = engine, cache, limits or Limits()

    @classmethod
    def of(cls, engine: Engine, cache: SnapshotCache, settings: Settings) -> Exporter:
        """The exporter of an app or a command, with its settings' thresholds."""
        return cls(engine, cache, Limits.of(settings))

    def sources(self, snapshot_id: int | None = None) -> SnapshotSources:
        """The frames of published snapshot `snapshot_id` (default: the latest)."""
        snap = snapshots.get_snapshot(self.engine, snapshot_id)
        return SnapshotSources(self.engine, self.cache, snap, self.limits)

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
        stages: tuple[str, ...] = (),
        high_value_high_risk: bool = False,
        sort: tuple[str, bool] | None = None,
    ) -> tuple[pd.DataFrame, int]:
        """One page of the `members` export (same segment, stage and high value, high risk
        filters), and how many members there are. In customer id order, or sorted by `sort`
        (column, descending) over every member, not only the page: missing values (no
        predictions yet, unscored) last, ties by customer id.

        Positions first, then the page's rows: filtering the whole frame copied every column of
        up to 1M customers on each page turn.
        """
        self._check_role("members", role)
        check_segments(src.segments, src.snap.id, segment_ids)
        exports.Filters(stages=stages, high_value_high_risk=high_value_high_risk).validate()
        if sort is not None and sort[0] not in MEMBER_COLUMNS:
            raise exports.FilterError("The sort column is not valid.")
        frame = src.customers
        keep = np.ones(len(frame), dtype=bool)
        if segment_ids:
            keep &= np.isin(frame["segment_id"].to_numpy(), segment_ids)
        if stages:
            keep &= frame["lifecycle_stage"].isin(stages).to_numpy()
        preds, at = src.predictions, src.member_predictions
        if high_value_high_risk:
            flagged = at_risk_flags(preds, src.snapshot).to_numpy(dtype=bool)
            keep &= _aligned(flagged, at, False).astype(bool)
        rows = np.flatnonzero(keep)
        if sort is not None:
            column, descending = sort
            if column in PREDICTION_COLUMNS:
                values = pd.Series(_aligned(preds[column].to_numpy(float), at[rows], np.nan))
            else:
                values = frame[column].iloc[rows].reset_index(drop=True)
            order = values.sort_values(
                ascending=not descending, kind="stable", na_position="last"
            ).index.to_numpy()
            rows = rows[order]
        shown = rows[page * size : (page + 1) * size]
        features = [c for c in MEMBER_COLUMNS if c not in PREDICTION_COLUMNS]
        part = frame[features].iloc[shown].reset_index(drop=True)
        for column in PREDICTION_COLUMNS:
            part[column] = _aligned(preds[column].to_numpy(float), at[shown], np.nan)
        return rounded(part), len(rows)

    def warm(self, snap: Snapshot) -> None:
        """Read what the pages' filter changes need of `snap` into the cache: its orders (and
        the per-granularity sales tables and order-value runs), customers, retention table,
        profiles and customer sample."""
        src = SnapshotSources(self.engine, self.cache, snap, self.limits)
        index = src.orders
        for granularity in exports.GRANULARITIES:
            index.sales(None, None, (), granularity)
        index.aov_distribution(None, None, ())
        for kind in ("customers", "retention", "profiles", "customer_sample"):
            getattr(src, kind)

    def write_files(self, snap: Snapshot) -> list[str]:
        """Build `snap`'s files on this machine, as the scheduler does right after a refit
        publishes it and after its predictions attach, so that no web worker waits for them
        (db/snapshot_files.py). The kinds written (or found whole); needs a cache directory."""
        if self.cache.files is None:
            raise ValueError("no snapshot cache directory (CUSTSEG_CACHE_DIR)")
        src = SnapshotSources(self.engine, self.cache, snap, self.limits)
        kinds = list(FILE_KINDS)
        if str(snap.predictions_status) == "done":
            kinds.append("predictions")
        for kind in kinds:
            getattr(src, kind)
        # The cache keeps a frame in memory, with a warning, where it cannot write its file (a
        # read-only or full directory): that is a failure here, where the file is the point.
        stored = {"predictions": PREDICTIONS_KIND}
        missing = [
            k for k in kinds if self.cache.files.path(self.engine, snap, stored.get(k, k)) is None
        ]
        if missing:
            raise OSError(
                f"snapshot {snap.id}: files of {', '.join(missing)} not written in "
                f"{self.cache.files.directory} (see the warning logged)"
            )
        return kinds

    def prune(self) -> list[Any]:
        """Remove the cache files of snapshots no longer published (see `SnapshotCache.prune`)."""
        return self.cache.prune(self.engine, snapshots.published(self.engine))


def _aligned(values: np.ndarray, at: np.ndarray, missing: float | bool) -> np.ndarray:
    """`values` (one per prediction row) at positions `at` (-1: `missing`)."""
    if not len(values):
        return np.full(len(at), missing)
    out = values[np.clip(at, 0, None)]
    return np.where(at >= 0, out, missing)


def check_segments(segs: pd.DataFrame, snapshot_id: int, segment_ids: tuple[int, ...]) -> None:
    """Refuse segment ids the snapshot does not have."""
    known = set(segs["segment_id"].astype(int))
    unknown = sorted(set(segment_ids) - known)
    if unknown:
        raise exports.FilterError(
            f"unknown segment id(s) {unknown} in snapshot {snapshot_id}; known: {sorted(known)}"
        )


def write_snapshot_files(
    engine: Engine, settings: Settings, snap: Snapshot
) -> tuple[list[str], list[Any], float]:
    """Build `snap`'s files in the settings' cache directory and remove those of snapshots no
    longer published: the kinds written (or found whole), the paths removed, the seconds."""
    started = time.perf_counter()
    exporter = Exporter.of(engine, SnapshotCache(directory=settings.snapshot_cache_dir), settings)
    kinds = exporter.write_files(snap)
    removed = exporter.prune()
    return kinds, removed, time.perf_counter() - started


def files_job(
    engine: Engine, settings: Settings, job: Job, on_stage: Callable[[str], None]
) -> JobResult:
    """The `files` job kind (params snapshot_id): build a published snapshot's files on the
    scheduler's machine and remove those of snapshots no longer published. Queued by a refit
    that publishes (before its predictions) and by the predictions when they attach, so a web
    worker that starts, or sees the new snapshot, maps files instead of building them."""
    snapshot_id = job.params.get("snapshot_id") if isinstance(job.params, dict) else None
    if not isinstance(snapshot_id, int) or isinstance(snapshot_id, bool):
        return JobResult(JobStatus.FAILED, error=f"job parameter snapshot_id={snapshot_id!r}")
    snap = snapshots.latest_published(engine, snapshot_id)
    if snap is None:  # pruned or failed meanwhile: nothing to serve
        return JobResult(
            JobStatus.SKIPPED,
            message=f"snapshot {snapshot_id} is not published",
            snapshot_id=snapshot_id,
        )
    on_stage("files")
    kinds, removed, seconds = write_snapshot_files(engine, settings, snap)
    return JobResult(
        JobStatus.DONE,
        message=f"snapshot {snapshot_id}: files of {', '.join(kinds)} ready",
        snapshot_id=snapshot_id,
        details={
            "duration_s": round(seconds, 3),
            "directory": str(settings.snapshot_cache_dir),
            "files_removed": len(removed),
        },
    )
