"""Customer features, k selection by silhouette, K-Means, segment identity and names (pure).

Decisions (see docs/FEATURES.md): the model clusters on recency, frequency and monetary value,
each log1p-transformed (all three are right-skewed), clipped at the 0.1 / 99.9 percentiles
(outliers), then standardized. AOV, tenure, return rate and category breadth are computed and
profiled for every segment but not clustered on.

scikit-learn and SciPy are imported by the functions that fit and match (k selection, K-Means,
segment matching), not by the module: the web processes import it for its names, colors and
bounds and never fit (docs/ARCHITECTURE.md), and importing scikit-learn is 40% of a web
worker's start (1.1 s of 2.8 s).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

MODEL_FEATURES = ("recency_days", "frequency", "monetary")
PROFILE_FEATURES = (
    "recency_days",
    "frequency",
    "monetary",
    "aov",
    "tenure_days",
    "return_rate",
    "category_breadth",
)
CLIP_QUANTILES = (0.001, 0.999)
MATCH_MAX_DISTANCE = 1.5  # in standard deviations: farther centroids are new segments
# One colour per segment (docs/ACCESSIBILITY.md, "Colours"): each at least 3:1 against white
# (WCAG 1.4.11: bars, lines and Sankey nodes are read against the page), and any two told apart
# with deuteranopia, protanopia and tritanopia as with normal vision (CIEDE2000 distance of at
# least 9 in simulations of each, 11 among the first eight), in an order that keeps the first
# few farthest apart. tests/test_palette.py measures both.
PALETTE = (
    "#332288",  # indigo
    "#FE6100",  # orange
    "#648FFF",  # sky blue
    "#8C2D04",  # rust
    "#01665E",  # dark teal
    "#9C6B98",  # mauve
    "#009E73",  # green
    "#7E5A44",  # brown
    "#B15928",  # copper
    "#785EF0",  # violet
)
# The palette of snapshots made before it (orange and red, green and brown alike to a red-green
# colour-blind eye; none of its colours is in PALETTE): their stored colours are drawn with the
# new palette (`shown_color`).
LEGACY_PALETTE = (
    "#4C78A8",
    "#F58518",
    "#54A24B",
    "#E45756",
    "#72B7B2",
    "#B279A2",
    "#EECA3B",
    "#9D755D",
    "#FF9DA6",
    "#BAB0AC",
    "#1F77B4",
    "#2CA02C",
    "#D62728",
    "#9467BD",
    "#8C564B",
    "#17BECF",
)


def segment_color(segment_id: int) -> str:
    """A segment id's own colour: its colour unless another segment of its snapshot had it
    first (`segment_colors`)."""
    return PALETTE[(segment_id - 1) % len(PALETTE)]


def segment_colors(ids: Iterable[int], previous: Mapping[int, str] | None = None) -> dict[int, str]:
    """The colours of a snapshot's segments, so that a segment keeps its colour from snapshot to
    snapshot and no two segments of a snapshot share one (up to len(PALETTE) segments).

    A segment of the previous snapshot (`previous`: its id -> colour) keeps its colour when it is
    of this palette; any other takes its id's colour (`segment_color`) or, when a segment kept
    or coloured before it (by id) has that one, the next colour of the palette nobody has.
    """
    previous = previous or {}
    ordered = sorted({int(i) for i in ids})
    colors: dict[int, str] = {}
    for sid in ordered:
        kept = previous.get(sid)
        if kept in PALETTE and kept not in colors.values():
            colors[sid] = kept
    for sid in ordered:
        if sid in colors:
            continue
        start = PALETTE.index(segment_color(sid))
        turn = [PALETTE[(start + n) % len(PALETTE)] for n in range(len(PALETTE))]
        free = [c for c in turn if c not in colors.values()]
        colors[sid] = free[0] if free else turn[0]
    return {sid: colors[sid] for sid in ordered}


def shown_color(segment_id: int, stored: object) -> str:
    """The colour a segment is drawn with: the one stored with its snapshot, except a colour of
    `LEGACY_PALETTE` (a snapshot made before the palette changed), drawn as its id's colour."""
    if not isinstance(stored, str):
        return segment_color(segment_id)
    if stored.upper() in LEGACY_PALETTE:
        return segment_color(segment_id)
    return stored


def customer_features(
    orders: pd.DataFrame, breadth: pd.Series | None, as_of: date
) -> tuple[pd.DataFrame, dict[str, int]]:
    """One row per customer with a positive order up to `as_of`, indexed by customer_id.

    `orders`: customer_id, order_id, ordered_at, total. `breadth`: distinct categories per
    customer (may be None). Returns the features and the customers left out (and why).
    """
    asof = pd.Timestamp(as_of)
    day = orders["ordered_at"].dt.normalize()
    positive = orders["total"] > 0
    pos = orders[positive].assign(day=day[positive])
    g = pos.groupby("customer_id", sort=True)
    feats = pd.DataFrame(
        {
            "frequency": g.size(),
            "monetary": g["total"].sum(),
            "first_order_day": g["day"].min(),
            "last_order_day": g["day"].max(),
        }
    )
    all_orders = orders.groupby("customer_id").size()
    returns = orders[~positive].groupby("customer_id").size()
    feats["recency_days"] = (asof - feats["last_order_day"]).dt.days.astype(int)
    feats["tenure_days"] = (asof - feats["first_order_day"]).dt.days.astype(int)
    feats["aov"] = feats["monetary"] / feats["frequency"]
    feats["return_rate"] = (
        returns.reindex(feats.index).fillna(0) / all_orders.reindex(feats.index)
    ).astype(float)
    if breadth is not None:
        feats["category_breadth"] = breadth.reindex(feats.index).fillna(0).astype(int)
    else:
        feats["category_breadth"] = 0
    left_out = {"only_returns_or_zero_orders": int(len(all_orders) - len(feats))}
    return feats, left_out


def _logged(values: np.ndarray, ids: pd.Index | None = None) -> np.ndarray:
    """log1p in float64 of model features (negative values as 0), after refusing any value that
    is not a finite number, naming its customer (`ids`, else the row): K-Means never sees NaN or
    inf. An infinite monetary value is order totals summing beyond the largest float (1.8e308),
    which only data imported before amounts were bounded can hold."""
    x = np.asarray(values, dtype=np.float64)
    bad = ~np.isfinite(x)
    if bad.any():
        row, col = (int(i[0]) for i in np.nonzero(bad))
        who = repr(ids[row]) if ids is not None else f"in row {row}"
        raise ValueError(
            f"customer {who}: {MODEL_FEATURES[col]} is {x[row, col]}, not a finite number "
            f"(customers with such a value: {int(bad.any(axis=1).sum())}); fix or remove "
            "their orders, then refit"
        )
    return np.log1p(x.clip(min=0.0))


@dataclass
class Transform:
    """log1p, clip, standardize: fitted on one snapshot's customers.

    Every value that reaches K-Means is finite: features are logged in float64 (any finite
    amount, up to the largest float, has a finite log), a feature with no variance keeps scale 1,
    and a value that is not a finite number is refused naming its customer.
    """

    lower: np.ndarray
    upper: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    clipped: dict[str, int] = field(default_factory=dict)

    @classmethod
    def fit(cls, feats: pd.DataFrame) -> Transform:
        logged = _logged(feats[list(MODEL_FEATURES)].to_numpy(dtype=np.float64), feats.index)
        lower, upper = np.quantile(logged, CLIP_QUANTILES, axis=0)
        clipped_values = logged.clip(lower, upper)
        clipped = {
            name: int(((logged[:, i] < lower[i]) | (logged[:, i] > upper[i])).sum())
            for i, name in enumerate(MODEL_FEATURES)
        }
        scale = clipped_values.std(axis=0)
        scale[scale == 0] = 1.0
        return cls(lower, upper, clipped_values.mean(axis=0), scale, clipped)

    def apply(self, values: np.ndarray, ids: pd.Index | None = None) -> np.ndarray:
        """Original units (n x 3) -> model space; `ids` name the rows in an error."""
        return (_logged(values, ids).clip(self.lower, self.upper) - self.mean) / self.scale

    def invert(self, z: np.ndarray) -> np.ndarray:
        """Model space -> original units, within the clip bounds (finite, even at the top)."""
        return np.expm1(np.clip(z * self.scale + self.mean, self.lower, self.upper))

    def describe(self) -> dict[str, object]:
        return {
            "model_features": list(MODEL_FEATURES),
            "profile_features": list(PROFILE_FEATURES),
            "steps": ["log1p", f"clip to percentiles {CLIP_QUANTILES}", "standardize"],
            "clip_bounds_log1p": {
                n: [float(self.lower[i]), float(self.upper[i])]
                for i, n in enumerate(MODEL_FEATURES)
            },
            "mean_log1p": {n: float(self.mean[i]) for i, n in enumerate(MODEL_FEATURES)},
            "std_log1p": {n: float(self.scale[i]) for i, n in enumerate(MODEL_FEATURES)},
            "clipped_customers": self.clipped,
        }


def silhouette(x: np.ndarray, labels: np.ndarray, chunk: int = 256) -> float:
    """Mean silhouette coefficient (Euclidean), as sklearn's `silhouette_score`."""
    return silhouettes(x, [labels], chunk)[0]


def silhouettes(x: np.ndarray, label_sets: list[np.ndarray], chunk: int = 256) -> list[float]:
    """Mean silhouette coefficient (Euclidean) of each labelling of the same points.

    Distances are formed once, chunk by chunk in float32, and summed per cluster of every
    labelling with one matrix product against their stacked one-hot matrices: the pairwise
    distances, the costly part, are shared by all the k tried. Several times faster than
    sklearn's generic `silhouette_score` for low-dimensional data; `tests/test_refit.py` checks
    it against sklearn.
    """
    x = np.asarray(x, dtype=np.float32)
    n = len(x)
    codes, offsets, counts = [], [0], []
    for labels in label_sets:
        _, lab = np.unique(labels, return_inverse=True)
        codes.append(lab.reshape(-1))
        k = int(lab.max()) + 1
        offsets.append(offsets[-1] + k)
        counts.append(np.bincount(lab.reshape(-1), minlength=k).astype(np.float32))
    onehot = np.zeros((n, offsets[-1]), dtype=np.float32)
    for j, lab in enumerate(codes):
        onehot[np.arange(n), offsets[j] + lab] = 1.0
    sq = (x * x).sum(axis=1, keepdims=True)
    ones = np.ones_like(sq)
    # |a - b|^2 = |a|^2 + |b|^2 - 2 a.b as one product: [-2a, |a|^2, 1] . [b, 1, |b|^2]
    right = np.hstack([x, ones, sq]).T.copy()
    left = np.hstack([-2.0 * x, sq, ones])
    totals = np.zeros(len(label_sets), dtype=np.float64)
    for start in range(0, n, chunk):
        part = x[start : start + chunk]
        d2 = left[start : start + chunk] @ right
        np.maximum(d2, 0.0, out=d2)
        np.sqrt(d2, out=d2)
        all_sums = d2 @ onehot  # (chunk, sum of k): distance sums to each cluster
        rows = np.arange(len(part))
        for j, lab in enumerate(codes):
            sums = all_sums[:, offsets[j] : offsets[j + 1]]
            own = lab[start : start + chunk]
            own_count = counts[j][own] - 1
            a = np.where(own_count > 0, sums[rows, own] / np.maximum(own_count, 1), 0.0)
            mean_other = sums / counts[j]
            mean_other[rows, own] = np.inf
            b = mean_other.min(axis=1)
            s = (b - a) / np.maximum(a, b)
            s[own_count == 0] = 0.0  # singletons score 0, as in sklearn
            totals[j] += float(s.sum(dtype=np.float64))
    return [float(t / n) for t in totals]


# Every refit scores these k, whatever the range, so the Model page can draw the whole curve.
CURVE_K = (2, 10)
# A k whose smallest cluster (on the sample) holds fewer customers than this is not chosen: a
# segment of 1% is too small to act on, and on RFM data it is usually a handful of outliers.
MIN_SEGMENT_SHARE = 0.02
# For the previous snapshot's k, K-Means also starts from that snapshot's centroids; that start
# is kept unless the usual fit's inertia is lower by more than this (relative).
WARM_START_TOLERANCE = 0.01


@dataclass
class KSelection:
    """The clustering of the chosen k, every k's scores and sample centroids, and why this k."""

    k: int
    labels: np.ndarray
    centers: np.ndarray  # model space
    scores: pd.DataFrame  # k, silhouette, inertia, davies_bouldin, smallest_share (on the sample)
    centers_by_k: dict[int, np.ndarray] = field(default_factory=dict)  # model space, sample fits
    reason: dict[str, Any] = field(default_factory=dict)
    sample_index: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    sample_labels: dict[int, np.ndarray] = field(default_factory=dict)  # each k's, on the sample

    @classmethod
    def of(
        cls,
        made: KChoiceMade,
        fits: dict[int, SampleFit],
        labels: np.ndarray,
        centers: np.ndarray,
        sample_index: np.ndarray,
    ) -> KSelection:
        """The selection of `made.k` with every k's sample fits, whichever engine made them:
        `labels` and `centers` of all customers (the sample's when it is all of them)."""
        return cls(
            made.k,
            labels,
            centers,
            made.scores,
            {kk: f.centers for kk, f in fits.items()},
            made.reason,
            sample_index,
            {kk: f.labels for kk, f in fits.items()},
        )


@dataclass
class SampleFit:
    """One k's K-Means on the sample, from whichever engine fitted it: the sample's labels, the
    centroids (model space), the inertia (sum of squared distances) and how it started."""

    labels: np.ndarray
    centers: np.ndarray
    inertia: float
    start: str = "k-means++"


@dataclass(frozen=True)
class KGrid:
    """The k a refit scores (`ks`: the curve, widened to the range) and the range it may choose
    from (`lo`..`hi`), both narrowed to what `n` customers allow."""

    ks: list[int]
    lo: int
    hi: int


def k_grid(
    n: int, k_range: tuple[int, int], k: int | None = None, curve: tuple[int, int] = CURVE_K
) -> KGrid:
    """The k to score for `n` customers; ValueError when they are too few for `k` (or for 2)."""
    top = n - 1  # K-Means needs more points than clusters
    k_min, k_max = k_range
    if top < 2 or (k is not None and k > top):
        raise ValueError(f"too few customers ({n}) to form {k or 2} segments")
    if k is not None and k < 2:
        raise ValueError(f"k must be at least 2 (got {k})")
    lo, hi = min(k_min, top), min(k_max, top)
    first = min(curve[0], lo, k or lo)
    last = min(max(curve[1], hi, k or hi), top)
    return KGrid(list(range(first, last + 1)), lo, hi)


def sample_index(n: int, sample: int, seed: int) -> np.ndarray:
    """The positions (in customer id order) of the fixed-seed sample the k are scored on."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=sample, replace=False)) if n > sample else np.arange(n)


N_INIT = 4  # K-Means starts per k on the sample


def kmeans_seeds(xs: np.ndarray, k: int, seed: int, n_init: int = N_INIT) -> list[np.ndarray]:
    """The starting centroids of `KMeans(n_clusters=k, random_state=seed, n_init=n_init)` on
    `xs`: k-means++ on the centered points, the `n_init` starts drawn one after the other from
    one RandomState(seed), as scikit-learn's fit draws them (tests/test_k_selection.py checks
    that Lloyd's iterations from these give scikit-learn's result). Another engine that starts
    from them finds the local engine's clusters, not another local optimum."""
    from sklearn.cluster import kmeans_plusplus

    rng = np.random.RandomState(seed)
    centered = xs - xs.mean(axis=0)
    return [xs[kmeans_plusplus(centered, k, random_state=rng)[1]] for _ in range(n_init)]


def keep_warm_start(warm_inertia: float, usual_inertia: float) -> bool:
    """Whether the fit from the previous centroids is kept over the usual one."""
    return warm_inertia <= usual_inertia * (1 + WARM_START_TOLERANCE)


@dataclass
class KChoiceMade:
    """What `choose_k` decided: the k, the scores of every k (on the sample) and why."""

    k: int
    scores: pd.DataFrame
    reason: dict[str, Any]


def choose_k(
    xs: np.ndarray,
    fits: dict[int, SampleFit],
    grid: KGrid,
    k_range: tuple[int, int],
    n: int,
    k: int | None = None,
    *,
    margin: float = 0.01,
    previous_k: int | None = None,
) -> KChoiceMade:
    """Score each k's sample fit (silhouette, Euclidean; inertia; Davies-Bouldin; smallest
    share) and choose k: `k` when fixed, else the best silhouette among the k of the range
    whose smallest cluster holds MIN_SEGMENT_SHARE of the sample, unless the previous k is one
    of them and within `margin` of the best (hysteresis). Every engine's fits go through here,
    so the choice and what the Model page shows of it are the same whoever fitted them."""
    from sklearn.metrics import davies_bouldin_score
    from threadpoolctl import threadpool_limits

    ks, lo, hi = grid.ks, grid.lo, grid.hi
    k_min, k_max = k_range
    with threadpool_limits(limits=1):
        scored = [kk for kk in ks if len(np.unique(fits[kk].labels)) >= 2]
        sil = dict(zip(scored, silhouettes(xs, [fits[kk].labels for kk in scored]), strict=True))
    rows = []
    smallest: dict[int, float] = {}
    for kk in ks:
        labels = fits[kk].labels
        smallest[kk] = float(np.bincount(labels, minlength=kk).min() / len(xs))
        dbi = float(davies_bouldin_score(xs, labels)) if kk in sil else float("nan")
        rows.append(
            {
                "k": kk,
                "silhouette": sil.get(kk, -1.0),
                "inertia": float(fits[kk].inertia),
                "davies_bouldin": dbi,
                "smallest_share": smallest[kk],
            }
        )
    in_range = [kk for kk in ks if lo <= kk <= hi]
    large = [kk for kk in in_range if kk in sil and smallest[kk] >= MIN_SEGMENT_SHARE]
    candidates = large or [kk for kk in in_range if kk in sil] or in_range

    def score(kk: int) -> float:
        return sil.get(kk, -1.0)

    best = max(candidates, key=lambda kk: (score(kk), -kk))  # a tie goes to the smaller k
    if k is not None:
        chosen, rule = k, "fixed k"
    elif (
        previous_k is not None
        and previous_k != best
        and previous_k in candidates
        and score(previous_k) >= score(best) - margin
    ):
        chosen, rule = previous_k, "previous k kept"
    else:
        chosen, rule = best, "best silhouette in range"
    reason: dict[str, Any] = {
        "rule": rule,
        "k": chosen,
        "silhouette": round(score(chosen), 6),
        "best_k": best,
        "best_silhouette": round(score(best), 6),
        "range": [k_min, k_max],
        "fixed_k": k,
        "range_used": [lo, hi],
        "margin": margin,
        "previous_k": previous_k,
        "previous_silhouette": round(score(previous_k), 6) if previous_k in sil else None,
        "min_segment_share": MIN_SEGMENT_SHARE,
        "too_small": {
            str(kk): round(smallest[kk], 4) for kk in in_range if kk in sil and kk not in large
        },
        "start": fits[chosen].start,
        "curve": [ks[0], ks[-1]],
        "sample": int(len(xs)),
        "customers": int(n),
    }
    return KChoiceMade(chosen, pd.DataFrame(rows), reason)


def fit_kmeans(
    x: np.ndarray,
    k_range: tuple[int, int],
    seed: int,
    sample: int,
    k: int | None = None,
    *,
    margin: float = 0.01,
    previous_k: int | None = None,
    previous_centers: np.ndarray | None = None,
    curve: tuple[int, int] = CURVE_K,
) -> KSelection:
    """Score every k of the curve on a fixed-seed sample, choose k in `k_range`, fit it on all.

    For every k of `curve` (and of the range, if wider): K-Means (n_init=4) on a sample of
    `sample` customers and its silhouette, inertia and Davies-Bouldin there. With `k` given, that
    k is used. Otherwise the best silhouette among the k of `k_range` whose smallest cluster holds
    at least MIN_SEGMENT_SHARE of the sample wins, unless `previous_k` is one of them and scores
    within `margin` of the best: then the previous k is kept (hysteresis), so identities do not
    churn from noise. For the previous k, K-Means also starts from `previous_centers` (model
    space) and keeps that start unless it is clearly worse (WARM_START_TOLERANCE). The final
    K-Means on all customers starts from the chosen k's sample centroids (one init), so the cost
    does not grow with the number of customers beyond that one fit. `reason` records the choice.
    The sample, the grid of k and the choice are `sample_index`, `k_grid` and `choose_k`, which
    the Spark engine (db/spark_refit.py) shares.
    """
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    n = len(x)
    grid = k_grid(n, k_range, k, curve)
    idx = sample_index(n, sample, seed)
    xs = x[idx]
    warm_k = len(previous_centers) if previous_centers is not None else None
    fits: dict[int, SampleFit] = {}
    # One thread for the small sample problems: thread start-up costs more than it saves, and
    # on a busy machine OpenMP's spinning threads made these fits 10x slower (bench/README.md).
    with threadpool_limits(limits=1):
        for kk in grid.ks:
            model = KMeans(n_clusters=kk, random_state=seed, n_init=N_INIT).fit(xs)
            fit = SampleFit(model.labels_.astype(int), model.cluster_centers_, model.inertia_)
            if kk == warm_k and previous_centers is not None:
                warm = KMeans(n_clusters=kk, init=previous_centers, n_init=1, random_state=seed)
                warm.fit(xs)
                if keep_warm_start(warm.inertia_, model.inertia_):
                    fit = SampleFit(
                        warm.labels_.astype(int),
                        warm.cluster_centers_,
                        warm.inertia_,
                        "previous centroids",
                    )
            fits[kk] = fit
    made = choose_k(xs, fits, grid, k_range, n, k, margin=margin, previous_k=previous_k)
    chosen = made.k
    labels, centers = fits[chosen].labels, fits[chosen].centers
    if len(idx) < n:
        final = KMeans(n_clusters=chosen, init=centers, n_init=1, random_state=seed).fit(x)
        labels, centers = final.labels_.astype(int), final.cluster_centers_
    return KSelection.of(made, fits, labels, centers, idx)


def explain_selection(reason: dict[str, Any], source: str | None = None) -> str:
    """One or two sentences for the Model page: the k chosen, the rule that decided, the range."""
    k, rule = reason["k"], reason["rule"]
    lo, hi = reason["range_used"]
    span = f"{lo}..{hi}" if lo != hi else str(lo)
    origin = f" ({source})" if source else ""
    if rule == "fixed k":
        text = (
            f"k = {k} was fixed{origin}; its silhouette is {reason['silhouette']:.3f} (the best "
            f"in the range {span}: k = {reason['best_k']}, {reason['best_silhouette']:.3f})."
        )
    elif rule == "previous k kept":
        text = (
            f"k = {k} is kept from the previous snapshot: its silhouette "
            f"({reason['silhouette']:.3f}) is within {reason['margin']:g} of the best in the "
            f"range {span}{origin} (k = {reason['best_k']}, {reason['best_silhouette']:.3f})."
        )
    else:
        text = (
            f"k = {k} has the best silhouette ({reason['silhouette']:.3f}) in the range "
            f"{span}{origin}."
        )
        prev = reason.get("previous_k")
        if prev is not None and prev != k and reason.get("previous_silhouette") is not None:
            text += (
                f" The previous k ({prev}, {reason['previous_silhouette']:.3f}) is not within "
                f"{reason['margin']:g} of it."
            )
    if list(reason["range"]) != list(reason["range_used"]):
        lo0, hi0 = reason["range"]
        text += f" The range {lo0}..{hi0} was narrowed to {span}: {reason['customers']} customers."
    small = reason.get("too_small") or {}
    if small and rule != "fixed k":
        listed = ", ".join(f"k = {kk} ({share:.1%})" for kk, share in small.items())
        text += (
            f" Not considered, as their smallest segment holds under "
            f"{reason['min_segment_share']:.0%} of customers: {listed}."
        )
    return text


def match_segments(
    new_centers_orig: np.ndarray, previous: pd.DataFrame, transform: Transform, next_id: int
) -> tuple[list[int], dict[str, object]]:
    """Give each new cluster a stable segment id by matching it to the previous snapshot.

    Centroids (original units) are compared in this snapshot's model space; an optimal
    assignment (Hungarian) pairs them, and pairs farther apart than MATCH_MAX_DISTANCE are
    not matches. Unmatched clusters get new ids; previous segments without a match vanish.
    """
    from scipy.optimize import linear_sum_assignment

    k = len(new_centers_orig)
    if previous.empty:
        fresh = list(range(next_id, next_id + k))
        return fresh, {"matched": {}, "new": fresh, "vanished": [], "distances": {}}
    prev_orig = previous_centroids(previous)
    a = transform.apply(new_centers_orig)
    b = transform.apply(prev_orig)
    dist = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2)
    rows, cols = linear_sum_assignment(dist)
    ids: list[int | None] = [None] * k
    matched: dict[str, int] = {}
    distances: dict[str, float] = {}
    for r, c in zip(rows, cols, strict=True):
        if dist[r, c] <= MATCH_MAX_DISTANCE:
            sid = int(previous["segment_id"].iloc[c])
            ids[r] = sid
            matched[str(sid)] = sid
            distances[str(sid)] = round(float(dist[r, c]), 4)
    new_ids = []
    for i in range(k):
        if ids[i] is None:
            ids[i] = next_id
            new_ids.append(next_id)
            next_id += 1
    vanished = sorted(set(int(s) for s in previous["segment_id"]) - {i for i in ids if i})
    final = [int(i) for i in ids if i is not None]
    return final, {"matched": matched, "new": new_ids, "vanished": vanished, "distances": distances}


def previous_centroids(previous: pd.DataFrame) -> np.ndarray:
    """The previous snapshot's centroids (original units, MODEL_FEATURES order), one per row."""
    return np.array([[c[f] for f in MODEL_FEATURES] for c in previous["centroid"]], dtype=float)


# --- names --------------------------------------------------------------------------------------

# Above this share of customers with two or more orders, a segment is not called "one-time".
ONE_TIME_MAX_REPEAT_RATE = 0.2
# "new", "recent" and "active" never describe a median recency (or a new segment's tenure) above
# this, however old the rest of the shop's customers are.
ACTIVE_MAX_DAYS = 90
# A median recency of a year or more is "lapsed", however old the rest of the customers are.
LAPSED_MIN_DAYS = 365
# Words that tell apart segments whose rules give the same name: (lower value, higher value).
COMPARATIVES = {
    "recency_days": ("more recent", "less recent"),
    "frequency": ("fewer orders", "more orders"),
    "monetary": ("lower spend", "higher spend"),
}
GRADES = {
    "recency_days": ("most recent", "less recent", "least recent"),
    "frequency": ("fewest orders", "more orders", "most orders"),
    "monetary": ("lowest spend", "mid spend", "highest spend"),
}


@dataclass(frozen=True)
class Bounds:
    """What names and actions compare a segment with: figures of all customers, computed once."""

    r_lo: float  # recency terciles (days)
    r_hi: float
    m_lo: float  # spend terciles
    m_hi: float
    spend_median: float
    loyal_from: float  # median orders from which a segment is loyal: 4, or the top decile
    log_scale: tuple[float, float, float]  # std of log1p recency, frequency, monetary

    @classmethod
    def of(cls, population: pd.DataFrame) -> Bounds:
        r_lo, r_hi = (float(v) for v in population["recency_days"].quantile([0.33, 0.67]))
        m_lo, m_hi = (float(v) for v in population["monetary"].quantile([0.33, 0.67]))
        cols = ["recency_days", "frequency", "monetary"]
        scale = np.log1p(population[cols].to_numpy(dtype=float).clip(min=0)).std(axis=0)
        scale[scale == 0] = 1.0
        return cls(
            r_lo,
            r_hi,
            m_lo,
            m_hi,
            float(population["monetary"].median()),
            max(4.0, float(population["frequency"].quantile(0.9))),
            (float(scale[0]), float(scale[1]), float(scale[2])),
        )


def bounds(population: pd.DataFrame | Bounds) -> Bounds:
    return population if isinstance(population, Bounds) else Bounds.of(population)


def _level(value: float, low: float, high: float, words: tuple[str, str, str]) -> str:
    return words[0] if value <= low else (words[2] if value >= high else words[1])


def recency_level(recency_days: float, population: pd.DataFrame | Bounds) -> str:
    """The level "recent", "middle" or "lapsed": all customers' terciles, within fixed bounds."""
    b = bounds(population)
    if recency_days >= b.r_hi or recency_days >= LAPSED_MIN_DAYS:
        return "lapsed"
    if recency_days <= b.r_lo and recency_days <= ACTIVE_MAX_DAYS:
        return "recent"
    return "middle"


def name_segment(profile: pd.Series, population: pd.DataFrame | Bounds) -> str:
    """A plain-language name from the segment's medians relative to all customers.

    Recency and spend are low, mid or high against all customers' terciles; "recent" and
    "active" also need a median recency of at most ACTIVE_MAX_DAYS, and a median of a year or more
    is always "lapsed", so a name never calls long-gone customers active.
    """
    b = bounds(population)
    rec, freq, mon = profile["recency_days"], profile["frequency"], profile["monetary"]
    recency = recency_level(rec, b)
    value = _level(mon, b.m_lo, b.m_hi, ("low-value", "mid-value", "high-value"))
    if freq <= 1.0:
        new_max = min(max(b.r_lo, 30.0), ACTIVE_MAX_DAYS)
        if recency == "recent" and profile.get("tenure_days", rec) <= new_max:
            return "new customers"
        # A median of one order can hide many repeat buyers (with k = 2, nearly half of them).
        one_time = profile.get("repeat_rate", 0.0) <= ONE_TIME_MAX_REPEAT_RATE
        kind = "one-time buyers" if one_time else "occasional buyers"
        return {"lapsed": f"lapsed {kind}", "recent": f"recent {kind}"}.get(recency, kind)
    if recency == "lapsed":
        return f"lapsed {value} customers"
    if freq >= b.loyal_from:
        loyal = "high-value loyal" if value == "high-value" else f"{value} loyal customers"
        return loyal if recency == "recent" else f"at-risk {loyal}"
    if recency == "recent":
        return f"active {value} repeat buyers"
    return f"at-risk {value} repeat buyers"


def name_contradictions(
    name: str, profile: pd.Series, population: pd.DataFrame | Bounds
) -> list[str]:
    """What in `name` the profile contradicts (an empty list: the name still fits).

    A matched segment keeps its previous name while this is empty, so names do not change with
    every small move of a median across a tercile, yet never say what the profile does not.
    """
    b = bounds(population)
    rec, freq, mon = profile["recency_days"], profile["frequency"], profile["monetary"]
    recency = recency_level(rec, b)
    words = name.lower()
    found = []
    if any(w in words for w in ("new ", "recent ", "active ")) and recency != "recent":
        found.append(f"recent: median recency {rec:g} days")
    if "new " in words and profile.get("tenure_days", rec) > ACTIVE_MAX_DAYS:
        found.append(f"new: median tenure {profile.get('tenure_days', rec):g} days")
    if "lapsed" in words and recency != "lapsed":
        found.append(f"lapsed: median recency {rec:g} days")
    if "at-risk" in words and recency != "middle":
        found.append(f"at-risk: median recency {rec:g} days")
    if "one-time" in words and profile.get("repeat_rate", 0.0) > ONE_TIME_MAX_REPEAT_RATE:
        found.append(f"one-time: repeat rate {profile.get('repeat_rate', 0.0):.0%}")
    if ("one-time" in words or "occasional" in words) and freq > 1:
        found.append(f"one order: median {freq:g} orders")
    if ("repeat" in words or "loyal" in words) and freq < 2:
        found.append(f"repeat: median {freq:g} orders")
    if "loyal" in words and freq < b.loyal_from:
        found.append(f"loyal: median {freq:g} orders")
    if "high-value" in words and mon <= b.m_lo:
        found.append(f"high-value: median spend {mon:,.2f}")
    if "low-value" in words and mon >= b.m_hi:
        found.append(f"low-value: median spend {mon:,.2f}")
    if "(" in name or "," in name:  # old "(2)" suffixes, and comparatives to other segments
        found.append("relative to other segments")
    return found


def segment_names(
    profiles: pd.DataFrame,
    population: pd.DataFrame | Bounds,
    previous: dict[Any, str] | None = None,
) -> list[str]:
    """Distinct names for the segments of one snapshot, in `profiles` order.

    `profiles`: one row per segment (medians recency_days, frequency, monetary, tenure_days and
    repeat_rate), indexed by segment id. Segments whose rules give the same name are told apart
    by what separates them most (e.g. "lapsed one-time buyers, higher spend"). A segment in
    `previous` (id -> name) keeps that name while the profile does not contradict it and no
    other segment has it.
    """
    b = bounds(population)
    bases = [name_segment(row, b) for _, row in profiles.iterrows()]
    names = _distinguish(bases, profiles, b)
    if not previous:
        return names
    fresh = list(names)
    for i, (sid, row) in enumerate(profiles.iterrows()):
        old = previous.get(sid)
        if old and not name_contradictions(old, row, b):
            names[i] = old
    while True:  # a kept name another segment also has gives way to the generated one
        seen: dict[str, list[int]] = {}
        for i, name in enumerate(names):
            seen.setdefault(name, []).append(i)
        clashes = [i for group in seen.values() if len(group) > 1 for i in group]
        reverted = [i for i in clashes if names[i] != fresh[i]]
        if not reverted:
            return names
        for i in reverted:
            names[i] = fresh[i]


def _distinguish(bases: list[str], profiles: pd.DataFrame, b: Bounds) -> list[str]:
    """`bases` made distinct with comparatives between the segments that share one."""
    cols = list(COMPARATIVES)
    z = np.log1p(profiles[cols].to_numpy(dtype=float).clip(min=0)) / np.array(b.log_scale)
    names = list(bases)
    groups: dict[str, list[int]] = {}
    for i, base in enumerate(bases):
        groups.setdefault(base, []).append(i)
    for base, members in groups.items():
        if len(members) == 1:
            continue
        for i, words in _comparatives(members, z, cols).items():
            names[i] = ", ".join([base, *words])
    # Segments equal in every median (only ever seen on a handful of customers) are numbered.
    count: dict[str, int] = {}
    for name in names:
        count[name] = count.get(name, 0) + 1
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if count[name] > 1:
            seen[name] = seen.get(name, 0) + 1
            names[i] = f"{name}, group {seen[name]}"
    return names


def _comparatives(
    members: list[int], z: np.ndarray, cols: list[str], used: frozenset[int] = frozenset()
) -> dict[int, list[str]]:
    """Words that tell `members` apart, from the median that differs most among them.

    Two segments: "lower spend" / "higher spend". Three spread evenly along it: "lowest spend" /
    "mid spend" / "highest spend". Otherwise: split at the widest gap of that median, and tell
    each side apart by the other medians (each median is used once).
    """
    if len(members) == 1:
        return {members[0]: []}
    free = [d for d in range(len(cols)) if d not in used]
    if not free:
        return {m: [] for m in members}
    spread = {d: float(z[members, d].max() - z[members, d].min()) for d in free}
    d = max(free, key=lambda i: (spread[i], -i))
    if spread[d] <= 1e-9:
        return {m: [] for m in members}
    order = sorted(members, key=lambda m: (z[m, d], m))
    gaps = np.diff(z[order, d])
    if len(order) == 2:
        return {m: [w] for m, w in zip(order, COMPARATIVES[cols[d]], strict=True)}
    if len(order) == 3 and gaps.min() >= 0.25 * spread[d]:
        return {m: [w] for m, w in zip(order, GRADES[cols[d]], strict=True)}
    cut = int(np.argmax(gaps)) + 1
    out: dict[int, list[str]] = {}
    for part, word in zip((order[:cut], order[cut:]), COMPARATIVES[cols[d]], strict=True):
        for m, words in _comparatives(part, z, cols, used | {d}).items():
            out[m] = [word, *words]
    return out


def describe_segment(profile: pd.Series, total_revenue: float) -> str:
    share = profile["gross_revenue"] / total_revenue if total_revenue else 0.0
    orders = profile["frequency"]
    return (
        f"{int(profile['customers']):,} customers ({profile['share']:.0%}) who last ordered a "
        f"median {profile['recency_days']:.0f} days ago, placed {orders:g} "
        f"order{'s' if orders != 1 else ''} and spent {profile['monetary']:,.2f} in total; "
        f"{share:.0%} of revenue."
    )
