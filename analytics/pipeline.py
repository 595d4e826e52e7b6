"""A refit as one pure function: orders (and the previous snapshot) in, snapshot tables out."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from analytics import actions, aggregates, rfm
from analytics.segmentation import (
    MODEL_FEATURES,
    Bounds,
    KSelection,
    Transform,
    customer_features,
    describe_segment,
    fit_kmeans,
    match_segments,
    previous_centroids,
    segment_colors,
    segment_names,
)

if TYPE_CHECKING:
    from config import Settings

UNSEGMENTED = 0  # segment_id of orders whose customer has no positive order


@dataclass(frozen=True)
class EngineSettings:
    """Which engine runs the refit and, for Spark, where (CUSTSEG_REFIT_ENGINE, CUSTSEG_SPARK_*;
    defaults in config/settings.py)."""

    name: str = "local"  # "local" or "spark"
    spark_master: str = "local[*]"
    spark_jdbc_jar: str = "/usr/share/java/postgresql.jar"
    spark_jdbc_url: str | None = None
    spark_partitions: int = 8


@dataclass(frozen=True)
class RefitSettings:
    """What a refit is run with. Built from the app's settings (`from_settings`), where every
    default lives; `k` None chooses k by silhouette score in [k_min, k_max]."""

    k_min: int
    k_max: int
    seed: int
    silhouette_sample: int
    keep: int  # the latest published snapshots kept
    keep_monthly: int  # and the last one of each of this many calendar months
    k: int | None = None
    k_margin: float = 0.01  # hysteresis: the previous k stays while this close to the best
    k_source: str = "default"  # where k_min/k_max/k came from (resolve_k_setting)
    predictions: bool = True  # a prediction job follows the publish (not part of as_dict)
    engine: EngineSettings = EngineSettings()  # only its name is part of as_dict, if not local

    @classmethod
    def from_settings(cls, s: Settings, *, choice: KChoice | None = None) -> RefitSettings:
        """The refit settings of `s`, with the k setting of `choice` (the effective one:
        `db.k_settings.effective_k_setting`) when given."""
        return cls(
            k_min=choice.k_min if choice else s.k_min,
            k_max=choice.k_max if choice else s.k_max,
            seed=s.random_seed,
            silhouette_sample=s.silhouette_sample,
            keep=s.snapshots_keep,
            keep_monthly=s.snapshots_monthly,
            k=choice.k if choice else None,
            k_margin=s.k_margin,
            k_source=choice.source if choice else "environment",
            predictions=s.predictions,
            engine=EngineSettings(
                name=s.refit_engine,
                spark_master=s.spark_master,
                spark_jdbc_jar=s.spark_jdbc_jar,
                spark_jdbc_url=s.spark_jdbc_url,
                spark_partitions=s.spark_partitions,
            ),
        )

    def as_dict(self) -> dict[str, Any]:
        """The settings that shape the segments (recorded with the snapshot, part of its
        fingerprint); how many snapshots are kept is not one of them. The engine is named
        when it is not the local one (its K-Means is another implementation), so switching
        engines refits even on unchanged data."""
        out: dict[str, Any] = {
            "k_min": self.k_min,
            "k_max": self.k_max,
            "k": self.k or "auto",
            "random_seed": self.seed,
            "silhouette_sample": self.silhouette_sample,
            "k_margin": self.k_margin,
            "k_source": self.k_source,
        }
        if self.engine.name != "local":
            out["engine"] = self.engine.name
        return out


DEFAULT_K_RANGE = (4, 8)
K_SOURCES = ("command line", "admin setting", "environment", "default")


@dataclass(frozen=True)
class KChoice:
    """The k setting a refit uses and where it came from (one of K_SOURCES).

    With a fixed k, k_min..k_max is still the range the Model page compares it with.
    """

    k_min: int
    k_max: int
    k: int | None
    source: str
    set_by: str | None = None  # the admin, when the admin setting won
    set_at: str | None = None


def resolve_k_setting(
    cli_k: int | None,
    admin: dict[str, Any] | None,
    env: tuple[int, int] | None,
    default: tuple[int, int] = DEFAULT_K_RANGE,
) -> KChoice:
    """The effective k setting: `--k` on the command line, then the admin's setting in the app
    (a fixed k or a range), then the environment's range, then the default.

    `admin`: k, k_min, k_max, set_by, set_at (or None: no setting). `env`: (k_min, k_max) when
    the environment sets them (or None).
    """
    k_min, k_max = env or default
    if admin and admin.get("k_min") is not None and admin.get("k_max") is not None:
        k_min, k_max = int(admin["k_min"]), int(admin["k_max"])
    by = (admin or {}).get("set_by")
    at = (admin or {}).get("set_at")
    at_text = str(at) if at is not None else None
    if cli_k is not None:
        return KChoice(k_min, k_max, cli_k, "command line")
    if admin and admin.get("k") is not None:
        return KChoice(k_min, k_max, int(admin["k"]), "admin setting", by, at_text)
    if admin and admin.get("k_min") is not None:
        return KChoice(k_min, k_max, None, "admin setting", by, at_text)
    if env is not None and tuple(env) != tuple(default):
        return KChoice(k_min, k_max, None, "environment")
    return KChoice(k_min, k_max, None, "default")


@dataclass
class Previous:
    """What a refit needs of the previous published snapshot."""

    snapshot_id: int
    segments: pd.DataFrame  # segment_id, name, centroid (dict in original units), color
    customers: pd.DataFrame  # customer_id, segment_id, monetary (and lifecycle_stage, if any)
    k: int | None = None  # its k: kept while it scores within the margin (hysteresis)


@dataclass
class RefitResult:
    k: int
    silhouette: float
    scores: pd.DataFrame
    customers: pd.DataFrame
    segments: pd.DataFrame
    orders: pd.DataFrame
    retention: pd.DataFrame
    migration: pd.DataFrame
    features: dict[str, Any]
    matching: dict[str, Any]
    data_quality: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    k_selection: dict[str, Any] = field(default_factory=dict)  # why this k (fit_kmeans.reason)
    previews: pd.DataFrame = field(default_factory=pd.DataFrame)  # k_previews: every k fitted
    stages: pd.DataFrame = field(default_factory=pd.DataFrame)  # lifecycle + medians + action
    stage_migration: pd.DataFrame = field(default_factory=pd.DataFrame)  # from the previous


class Clock:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.timings[stage] = round(now - self._t, 4)
        self._t = now


def run_refit(
    orders: pd.DataFrame,
    as_of: date,
    settings: RefitSettings,
    breadth: pd.Series | None = None,
    previous: Previous | None = None,
    data_quality: dict[str, Any] | None = None,
    on_stage: Any = None,
    next_segment_id: int = 1,
) -> RefitResult:
    """Segment the customers of `orders` (up to `as_of`) and build every snapshot table.

    New segments get ids from `next_segment_id` on (the caller passes one above every id still
    in a snapshot or carrying an analyst's name, so a rename never lands on another segment).
    The per-customer part (`check_customers`, `kmeans_hints`, `segment_customers`,
    `refit_quality`, `assemble`) is shared with the Spark engine (db/spark_refit.py).
    """
    clock = Clock()
    stage = on_stage or (lambda _name: None)
    stage("features")
    # Customers as integer codes (in id order) in every group-by below: the ids are hashed once
    # here instead of in each of a dozen group-bys (6 of 17 s at 4.3M orders).
    codes, uniques = pd.factorize(orders["customer_id"], sort=True)
    # One order of rows whatever order they came in (the database returns them unsorted):
    # by customer, time and total; rows equal in all three are interchangeable here.
    stamps = orders["ordered_at"].to_numpy(dtype="datetime64[us]")
    totals = orders["total"].to_numpy(dtype=float)
    order = np.lexsort((totals, stamps.view(np.int64), codes))
    codes, stamps, totals = codes[order], stamps[order], totals[order]
    keyed = pd.DataFrame({"customer_id": codes, "ordered_at": stamps, "total": totals})
    feats, left_out = customer_features(keyed, None, as_of)
    feat_codes = feats.index.to_numpy()
    feats.index = pd.Index(uniques.take(feat_codes), name="customer_id")
    if breadth is not None:
        feats["category_breadth"] = breadth.reindex(feats.index).fillna(0).astype(int)
    check_customers(feats, as_of)
    transform = Transform.fit(feats)
    x = transform.apply(feats[list(MODEL_FEATURES)].to_numpy())
    clock.lap("features")

    stage("clustering")
    previous_k, previous_centers = kmeans_hints(previous, transform)
    sel = fit_kmeans(
        x,
        (settings.k_min, settings.k_max),
        settings.seed,
        settings.silhouette_sample,
        settings.k,
        margin=settings.k_margin,
        previous_k=previous_k,
        previous_centers=previous_centers,
    )
    sel.reason["source"] = settings.k_source
    clock.lap("clustering")

    stage("profiles")
    seg = segment_customers(feats, transform, sel, previous, next_segment_id)
    clock.lap("profiles")

    stage("aggregates")
    # Customers with only returns have no segment (0): their orders count in the totals
    # (returns, net revenue) and in no segment.
    seg_by_code = np.full(len(uniques), UNSEGMENTED, dtype=np.int64)
    seg_by_code[feat_codes] = seg.feats["segment_id"].to_numpy()
    with_seg = keyed.assign(segment_id=seg_by_code[codes])
    retention = aggregates.retention(with_seg)
    # In day order (a stable sort): PostgreSQL then appends to its (snapshot_id, day) index
    # instead of inserting all over it, 15 -> 11 s for 4.3M orders.
    days = stamps.astype("datetime64[D]")
    by_day = np.argsort(days, kind="stable")
    order_rows = pd.DataFrame(
        {
            "customer_id": uniques.take(codes[by_day]),
            "segment_id": with_seg["segment_id"].to_numpy()[by_day],
            "day": days[by_day].astype("datetime64[s]"),  # a date, as datetime64 (no objects)
            "total": totals[by_day],
        }
    )
    clock.lap("aggregates")

    quality = refit_quality(
        data_quality,
        left_out,
        len(feats),
        int((totals <= 0).sum()),
        int((totals == 0).sum()),
        transform,
    )
    return assemble(sel, transform, seg, order_rows, retention, quality, clock)


def check_customers(feats: pd.DataFrame, as_of: date) -> None:
    """ValueError when fewer than 3 customers have a positive order: nothing to segment."""
    if len(feats) < 3:
        raise ValueError(
            f"only {len(feats)} customers with a positive order up to {as_of}: "
            "at least 3 are needed to segment"
        )


def kmeans_hints(
    previous: Previous | None, transform: Transform
) -> tuple[int | None, np.ndarray | None]:
    """The previous snapshot's k (hysteresis) and its centroids in this refit's model space
    (the warm start), or None when there is no previous snapshot."""
    if previous is None:
        return None, None
    centers = (
        transform.apply(previous_centroids(previous.segments))
        if not previous.segments.empty
        else None
    )
    return previous.k, centers


@dataclass
class Segmented:
    """The per-customer outcome of a refit, whichever engine clustered: the features with
    segment id and RFM scores (`feats`, indexed by customer id), the snapshot's customers,
    segments, k previews, lifecycle stages, migrations and the segment matching."""

    feats: pd.DataFrame
    customers: pd.DataFrame
    segments: pd.DataFrame
    previews: pd.DataFrame
    stages: pd.DataFrame
    migration: pd.DataFrame
    stage_migration: pd.DataFrame
    matching: dict[str, Any]
    ids: list[int]  # segment id of each cluster label


def segment_customers(
    feats: pd.DataFrame,
    transform: Transform,
    sel: KSelection,
    previous: Previous | None,
    next_segment_id: int,
) -> Segmented:
    """Identities, RFM scores and stages, profiles, names and actions, previews and the
    migrations, from the customers' features (in customer id order) and their clustering."""
    prev_segments = previous.segments if previous is not None else pd.DataFrame()
    centers_orig = transform.invert(sel.centers)
    ids, matching = match_segments(centers_orig, prev_segments, transform, next_segment_id)
    feats = feats.copy()
    feats["segment_id"] = np.asarray(ids)[sel.labels]
    feats = feats.join(rfm.scores(feats))
    population = Bounds.of(feats)
    segments = _profiles(feats, centers_orig, ids, prev_segments, matching, previous, population)
    previews = k_previews(feats, sel, segments, population)
    stages = _stages(feats, previous, population)
    customers = feats.reset_index().rename(columns={"index": "customer_id"})
    customers["first_order_day"] = customers["first_order_day"].dt.date
    customers["last_order_day"] = customers["last_order_day"].dt.date
    if previous is not None:
        migration = aggregates.migration(previous.customers, customers)
    else:
        migration = pd.DataFrame(
            columns=["from_segment", "to_segment", "customers", "gross_revenue"]
        )
    if previous is not None and "lifecycle_stage" in previous.customers:
        stage_migration = rfm.stage_migration(previous.customers, customers)
    else:
        stage_migration = pd.DataFrame(
            columns=["from_stage", "to_stage", "customers", "gross_revenue"]
        )
    return Segmented(
        feats, customers, segments, previews, stages, migration, stage_migration, matching, ids
    )


def refit_quality(
    data_quality: dict[str, Any] | None,
    left_out: dict[str, int],
    segmented: int,
    returns_orders: int,
    zero_total_orders: int,
    transform: Transform,
) -> dict[str, Any]:
    """The snapshot's data-quality report: the database's counts and the refit's own."""
    quality = dict(data_quality or {})
    quality["customers_left_out"] = left_out
    quality["customers_segmented"] = int(segmented)
    quality["returns_orders"] = int(returns_orders)
    quality["zero_total_orders"] = int(zero_total_orders)
    quality["outliers"] = {
        "treatment": "log1p, then clipped to the 0.1 and 99.9 percentiles before "
        "standardizing; kept in every metric",
        "clipped_customers": transform.clipped,
    }
    return quality


def assemble(
    sel: KSelection,
    transform: Transform,
    seg: Segmented,
    orders: pd.DataFrame,
    retention: pd.DataFrame,
    quality: dict[str, Any],
    clock: Clock,
) -> RefitResult:
    """The RefitResult of a clustering and its tables."""
    best = sel.scores.loc[sel.scores["k"] == sel.k, "silhouette"].iloc[0]
    return RefitResult(
        k=sel.k,
        silhouette=float(best),
        scores=sel.scores,
        customers=seg.customers,
        segments=seg.segments,
        orders=orders,
        retention=retention,
        migration=seg.migration,
        features=transform.describe(),
        matching=seg.matching,
        data_quality=quality,
        timings=clock.timings,
        k_selection=sel.reason,
        previews=seg.previews,
        stages=seg.stages,
        stage_migration=seg.stage_migration,
    )


def _profiles(
    feats: pd.DataFrame,
    centers_orig: np.ndarray,
    ids: list[int],
    previous: pd.DataFrame,
    matching: dict[str, Any],
    prev_snapshot: Previous | None = None,
    population: Bounds | None = None,
) -> pd.DataFrame:
    g = feats.groupby("segment_id")
    total_customers = len(feats)
    total_revenue = float(feats["monetary"].sum())
    prof = pd.DataFrame(
        {
            "customers": g.size(),
            "gross_revenue": g["monetary"].sum(),
            "orders": g["frequency"].sum(),
            "repeat_rate": g["frequency"].apply(lambda f: float((f >= 2).mean())),
            "recency_days": g["recency_days"].median(),
            "frequency": g["frequency"].median(),
            "monetary": g["monetary"].median(),
            "tenure_days": g["tenure_days"].median(),
        }
    )
    prof["share"] = prof["customers"] / total_customers
    prof["revenue_share"] = prof["gross_revenue"] / total_revenue if total_revenue else 0.0
    prof["aov"] = prof["gross_revenue"] / prof["orders"]
    centroid = {
        sid: dict(zip(MODEL_FEATURES, map(float, centers_orig[i]), strict=True))
        for i, sid in enumerate(ids)
    }
    prof["centroid"] = [centroid[sid] for sid in prof.index]
    prev_names = (
        dict(zip(previous["segment_id"], previous["name"], strict=True))
        if not previous.empty
        else {}
    )
    population = population or Bounds.of(feats)
    prof["name"] = segment_names(prof, population, prev_names)
    prof["description"] = [describe_segment(row, total_revenue) for _, row in prof.iterrows()]
    before = None
    if prev_snapshot is not None:
        pg = prev_snapshot.customers.groupby("segment_id")
        before = pd.DataFrame({"customers": pg.size(), "gross_revenue": pg["monetary"].sum()})
    suggestions = actions.suggest(prof, population, before)
    prof["action"] = [s.advice for s in suggestions]
    prof["action_basis"] = [s.basis for s in suggestions]
    # A segment keeps its colour of the previous snapshot; no two share one.
    prev_colors = (
        dict(zip(previous["segment_id"].astype(int), previous["color"], strict=True))
        if "color" in previous
        else {}
    )
    colors = segment_colors(prof.index, prev_colors)
    prof["color"] = [colors[int(sid)] for sid in prof.index]
    new_ids = set(matching.get("new", []))
    prof["status"] = ["new" if sid in new_ids else "matched" for sid in prof.index]
    prof = prof.reset_index().rename(columns={"index": "segment_id"})
    prof = prof.sort_values("gross_revenue", ascending=False).reset_index(drop=True)
    return prof.drop(columns=["tenure_days"])


def _stages(feats: pd.DataFrame, previous: Previous | None, population: Bounds) -> pd.DataFrame:
    """The lifecycle frame with each stage's medians and suggested action (empty stages: none)."""
    frame = rfm.lifecycle(feats)
    prof = rfm.stage_profiles(feats)
    before = None
    if previous is not None and "lifecycle_stage" in previous.customers:
        pg = previous.customers.groupby("lifecycle_stage")
        before = pd.DataFrame({"customers": pg.size(), "gross_revenue": pg["monetary"].sum()})
    suggestions = dict(zip(prof.index, actions.suggest(prof, population, before), strict=True))
    medians = prof[list(rfm.STAGE_MEDIANS)]
    frame = frame.join(medians, on="stage")
    frame["action"] = [suggestions[s].advice if s in suggestions else None for s in frame["stage"]]
    frame["action_basis"] = [
        suggestions[s].basis if s in suggestions else None for s in frame["stage"]
    ]
    return frame


def k_previews(
    feats: pd.DataFrame, sel: KSelection, segments: pd.DataFrame, population: Bounds
) -> pd.DataFrame:
    """For every k scored, the clusters it gives: what an admin previews before fixing a k.

    The chosen k's rows are the published segments (`segments`, names included). Any other k's
    come from its fit on the sample (everyone up to CUSTSEG_SILHOUETTE_SAMPLE customers): the
    medians of the sample's clusters, and sizes and revenue scaled from the sample to all
    customers, so previews cost the same for any number of customers. One row per k and cluster
    (1.. by revenue): k, cluster, name, customers, share, gross_revenue and the medians
    recency_days, frequency, monetary.
    """
    n = len(feats)
    cols = ["recency_days", "frequency", "monetary"]
    sample = feats.iloc[sel.sample_index]
    values = sample[[*cols, "tenure_days"]].assign(repeat=(sample["frequency"] >= 2).astype(float))
    parts = []
    for k, labels in sorted(sel.sample_labels.items()):
        if k == sel.k:
            prof = segments[["name", "customers", "share", "gross_revenue", *cols]].copy()
        else:
            g = values.groupby(labels)
            prof = g[[*cols, "tenure_days"]].median()
            prof["repeat_rate"] = g["repeat"].mean()
            prof["share"] = g.size() / len(sample)
            prof["customers"] = _apportion(prof["share"].to_numpy(), n)
            prof["gross_revenue"] = g["monetary"].sum() * (n / len(sample))
            prof = prof.sort_values("gross_revenue", ascending=False, kind="stable")
            prof["name"] = segment_names(prof, population)
        prof = prof.sort_values("gross_revenue", ascending=False, kind="stable")
        prof["k"] = k
        prof["cluster"] = np.arange(1, len(prof) + 1)
        parts.append(prof)
    out = pd.concat(parts, ignore_index=True)
    return out[["k", "cluster", "name", "customers", "share", "gross_revenue", *cols]]


def _apportion(shares: np.ndarray, total: int) -> np.ndarray:
    """Whole numbers in proportion to `shares` that add up to `total` (largest remainders)."""
    exact = shares * total
    counts = np.floor(exact).astype(np.int64)
    short = total - int(counts.sum())
    if short > 0:
        counts[np.argsort(-(exact - counts), kind="stable")[:short]] += 1
    return counts
