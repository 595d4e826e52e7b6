"""Customer features, k selection by silhouette, K-Means, segment identity and names (pure).

Decisions (see docs/FEATURES.md): the model clusters on recency, frequency and monetary value,
each log1p-transformed (all three are right-skewed), clipped at the 0.1 / 99.9 percentiles
(outliers), then standardized. AOV, tenure, return rate and category breadth are computed and
profiled for every segment but not clustered on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.metrics import davies_bouldin_score
from threadpoolctl import threadpool_limits

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
PALETTE = (
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
    """One colour per segment id, the same in every chart and every snapshot."""
    return PALETTE[(segment_id - 1) % len(PALETTE)]


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


@dataclass
class KSelection:
    k: int
    labels: np.ndarray
    centers: np.ndarray  # model space
    scores: pd.DataFrame  # k, silhouette, inertia, davies_bouldin (on the sample)


def fit_kmeans(
    x: np.ndarray, k_range: tuple[int, int], seed: int, sample: int, k: int | None = None
) -> KSelection:
    """Choose k on a fixed-seed sample, then fit the chosen k on every customer.

    For every k in range (or just `k`): K-Means (n_init=4) on a sample of `sample` customers
    and its silhouette, inertia and Davies-Bouldin there. The best silhouette wins; the final
    K-Means on all customers starts from that k's sample centroids (one init), so the cost of
    trying nine k does not grow with the number of customers. With no more customers than
    `sample`, the sample is everyone and the sample fit is the final one.
    """
    n = len(x)
    k_min, k_max = (k, k) if k else k_range
    k_max = min(k_max, n - 1)
    if k_max < 2 or k_min > k_max:
        raise ValueError(f"too few customers ({n}) to form {k_min} segments")
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(n, size=sample, replace=False)) if n > sample else np.arange(n)
    xs = x[idx]
    ks = list(range(k_min, k_max + 1))
    # One thread for the small sample problems: thread start-up costs more than it saves, and
    # on a busy machine OpenMP's spinning threads made these fits 10x slower (bench/README.md).
    with threadpool_limits(limits=1):
        models = [KMeans(n_clusters=kk, random_state=seed, n_init=4).fit(xs) for kk in ks]
        scored = [m.labels_ for m in models if len(np.unique(m.labels_)) >= 2]
        sils = iter(silhouettes(xs, scored)) if scored else iter(())
    rows = []
    best: tuple[float, int] | None = None
    for i, (kk, model) in enumerate(zip(ks, models, strict=True)):
        two_or_more = len(np.unique(model.labels_)) >= 2
        sil = next(sils) if two_or_more else -1.0
        dbi = float(davies_bouldin_score(xs, model.labels_)) if two_or_more else float("nan")
        rows.append(
            {"k": kk, "silhouette": sil, "inertia": float(model.inertia_), "davies_bouldin": dbi}
        )
        if best is None or sil > best[0] + 1e-12:
            best = (sil, i)
    assert best is not None
    chosen = models[best[1]]
    if len(idx) < n:
        chosen = KMeans(
            n_clusters=ks[best[1]], init=chosen.cluster_centers_, n_init=1, random_state=seed
        ).fit(x)
    return KSelection(
        ks[best[1]], chosen.labels_.astype(int), chosen.cluster_centers_, pd.DataFrame(rows)
    )


def match_segments(
    new_centers_orig: np.ndarray, previous: pd.DataFrame, transform: Transform, next_id: int
) -> tuple[list[int], dict[str, object]]:
    """Give each new cluster a stable segment id by matching it to the previous snapshot.

    Centroids (original units) are compared in this snapshot's model space; an optimal
    assignment (Hungarian) pairs them, and pairs farther apart than MATCH_MAX_DISTANCE are
    not matches. Unmatched clusters get new ids; previous segments without a match vanish.
    """
    k = len(new_centers_orig)
    if previous.empty:
        fresh = list(range(next_id, next_id + k))
        return fresh, {"matched": {}, "new": fresh, "vanished": [], "distances": {}}
    prev_orig = np.array([[c[f] for f in MODEL_FEATURES] for c in previous["centroid"]])
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


def _level(value: float, low: float, high: float, words: tuple[str, str, str]) -> str:
    return words[0] if value <= low else (words[2] if value >= high else words[1])


# Above this share of customers with two or more orders, a segment is not called "one-time".
ONE_TIME_MAX_REPEAT_RATE = 0.2


def name_segment(profile: pd.Series, population: pd.DataFrame) -> str:
    """A plain-language name from the segment's medians relative to all customers."""
    r_lo, r_hi = population["recency_days"].quantile([0.33, 0.67])
    m_lo, m_hi = population["monetary"].quantile([0.33, 0.67])
    rec, freq, mon = profile["recency_days"], profile["frequency"], profile["monetary"]
    value = _level(mon, m_lo, m_hi, ("low-value", "mid-value", "high-value"))
    if freq <= 1.0:
        if rec <= r_lo and profile.get("tenure_days", rec) <= max(r_lo, 30):
            return "new customers"
        # A median of one order can hide many repeat buyers (with k = 2, nearly half of them).
        one_time = profile.get("repeat_rate", 0.0) <= ONE_TIME_MAX_REPEAT_RATE
        kind = "one-time buyers" if one_time else "occasional buyers"
        return f"lapsed {kind}" if rec >= r_hi else kind
    if rec >= r_hi:
        return f"lapsed {value} customers"
    if freq >= max(4.0, population["frequency"].quantile(0.9)):
        return f"{value} loyal customers" if value != "high-value" else "high-value loyal"
    if rec <= r_lo:
        return f"active {value} repeat buyers"
    return f"at-risk {value} repeat buyers"


def describe_segment(profile: pd.Series, total_revenue: float) -> str:
    share = profile["gross_revenue"] / total_revenue if total_revenue else 0.0
    orders = profile["frequency"]
    return (
        f"{int(profile['customers']):,} customers ({profile['share']:.0%}) who last ordered a "
        f"median {profile['recency_days']:.0f} days ago, placed {orders:g} "
        f"order{'s' if orders != 1 else ''} and spent {profile['monetary']:,.2f} in total; "
        f"{share:.0%} of revenue."
    )


def unique_names(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n} ({seen[n]})")
    return out
