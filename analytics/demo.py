"""A synthetic shop with planted behavioural segments, for demos, tests and benchmarks.

Deterministic for a seed. Customers are generated in fixed blocks, so memory stays bounded at
any size (1M customers / ~10M lines are written in a few minutes). The planted segment of each
customer is returned (and written beside the CSV) so tests can check that segmentation finds it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

BLOCK = 100_000
WINDOW_DAYS = 730


@dataclass(frozen=True)
class PlantedSegment:
    name: str
    share: float
    orders: tuple[int, int]  # inclusive range of positive orders
    recency: tuple[int, int]  # days between the last order and the end of the history
    tenure: tuple[int, int]  # days between the first and the last order (when orders > 1)
    aov: float  # median order value
    return_rate: float  # share of orders later partly returned


PLANTED = (
    PlantedSegment("loyal high spenders", 0.06, (12, 30), (0, 20), (400, 700), 300.0, 0.05),
    PlantedSegment("regulars", 0.22, (4, 9), (5, 60), (200, 600), 70.0, 0.04),
    PlantedSegment("one-time buyers", 0.32, (1, 1), (150, 600), (0, 0), 40.0, 0.06),
    PlantedSegment("lapsed", 0.25, (2, 5), (300, 650), (30, 79), 90.0, 0.06),
    PlantedSegment("new", 0.15, (1, 2), (0, 30), (0, 14), 55.0, 0.03),
)
CATEGORIES = ("home", "kitchen", "garden", "toys", "fashion", "beauty", "books", "electronics")
COUNTRIES = (
    "United Kingdom",
    "Germany",
    "France",
    "Netherlands",
    "Spain",
    "Ireland",
    "Belgium",
    "Sweden",
    "Italy",
    "Poland",
)
COUNTRY_WEIGHTS = np.array([0.55, 0.1, 0.09, 0.06, 0.05, 0.04, 0.03, 0.03, 0.03, 0.02])


def _season_cdf(end: date) -> np.ndarray:
    """Cumulative weight of each day offset (0 = end day) with a Nov/Dec peak and quiet Sundays."""
    days = pd.date_range(end=pd.Timestamp(end), periods=WINDOW_DAYS, freq="D")[::-1]
    weight = 1.0 + 0.6 * days.month.isin([11, 12]) - 0.3 * (days.dayofweek == 6)
    return np.cumsum(np.asarray(weight, dtype=float))


def _sample_offsets(
    rng: np.random.Generator, cdf: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    """Day offsets in [lo, hi] drawn with the seasonal weights."""
    base = np.where(lo > 0, cdf[np.maximum(lo - 1, 0)], 0.0)
    top = cdf[hi]
    u = base + rng.random(len(lo)) * (top - base)
    return np.clip(np.searchsorted(cdf, u), lo, hi)


def generate_block(
    index: int, n: int, seed: int, end: date, first_id: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Lines and planted segments of `n` customers, block `index` of the shop."""
    rng = np.random.default_rng([seed, index])
    cdf = _season_cdf(end)
    shares = np.array([s.share for s in PLANTED])
    seg = rng.choice(len(PLANTED), size=n, p=shares / shares.sum())
    pick = lambda attr, k: np.array([getattr(s, attr)[k] for s in PLANTED])[seg]  # noqa: E731
    n_orders = rng.integers(pick("orders", 0), pick("orders", 1) + 1)
    recency = rng.integers(pick("recency", 0), pick("recency", 1) + 1)
    tenure = rng.integers(pick("tenure", 0), pick("tenure", 1) + 1)
    tenure = np.where(n_orders > 1, tenure, 0)
    first_off = np.minimum(recency + tenure, WINDOW_DAYS - 1)
    aov = np.array([s.aov for s in PLANTED])[seg] * rng.lognormal(0, 0.25, n)
    ret_rate = np.array([s.return_rate for s in PLANTED])[seg]
    home = rng.choice(len(COUNTRIES), size=n, p=COUNTRY_WEIGHTS)
    fav = rng.integers(0, len(CATEGORIES), n)
    ids = np.char.add("C", np.char.zfill(np.arange(first_id, first_id + n).astype(str), 7))

    # Orders: first at first_off, last at recency, the rest in between (seasonal).
    cust = np.repeat(np.arange(n), n_orders)
    rank = np.arange(len(cust)) - np.repeat(np.cumsum(n_orders) - n_orders, n_orders)
    last_rank = n_orders[cust] - 1
    offset = _sample_offsets(rng, cdf, recency[cust], first_off[cust])
    offset = np.where(rank == 0, first_off[cust], offset)
    offset = np.where((rank == last_rank) & (last_rank > 0), recency[cust], offset)
    value = np.round(aov[cust] * rng.lognormal(0, 0.35, len(cust)), 2) + 1.0
    seconds = rng.integers(8 * 3600, 22 * 3600, len(cust))
    when = (np.datetime64(end) - offset.astype("timedelta64[D]")).astype("datetime64[s]")
    when = when + seconds.astype("timedelta64[s]")
    order_no = np.char.add(
        f"D{seed % 1000:03d}", np.char.zfill((np.arange(len(cust)) + first_id * 40).astype(str), 10)
    )

    # Lines: 1 + Poisson(1.8) per order, the order value split at random.
    n_lines = 1 + rng.poisson(1.8, len(cust))
    line_order = np.repeat(np.arange(len(cust)), n_lines)
    w = rng.exponential(1.0, len(line_order))
    w_sum = np.bincount(line_order, weights=w)
    amount = np.round(value[line_order] * w / w_sum[line_order], 2)
    amount = np.maximum(amount, 0.01)
    lc = cust[line_order]
    category = np.where(
        rng.random(len(lc)) < 0.6, fav[lc], rng.integers(0, len(CATEGORIES), len(lc))
    )
    lines = pd.DataFrame(
        {
            "customer_id": ids[lc],
            "order_id": order_no[line_order],
            "ordered_at": when[line_order],
            "amount": amount,
            "category": np.array(CATEGORIES)[category],
            "country": np.array(COUNTRIES)[home[lc]],
        }
    )

    # Returns: some orders get one line returned a few days later (a negative order).
    returned = rng.random(len(cust)) < ret_rate[cust]
    first_line = np.cumsum(n_lines) - n_lines
    r_idx = np.flatnonzero(returned)
    if len(r_idx):
        ret_when = when[r_idx] + rng.integers(1, 20, len(r_idx)).astype("timedelta64[D]")
        ret_when = np.minimum(ret_when, np.datetime64(end) + np.timedelta64(22 * 3600, "s"))
        returns = pd.DataFrame(
            {
                "customer_id": ids[cust[r_idx]],
                "order_id": np.char.add("R", order_no[r_idx]),
                "ordered_at": ret_when,
                "amount": -amount[first_line[r_idx]],
                "category": np.array(CATEGORIES)[category[first_line[r_idx]]],
                "country": np.array(COUNTRIES)[home[cust[r_idx]]],
            }
        )
        lines = pd.concat([lines, returns], ignore_index=True)
    planted = pd.DataFrame(
        {"customer_id": ids, "planted_segment": np.array([s.name for s in PLANTED])[seg]}
    )
    return lines, planted


def iter_blocks(
    customers: int, seed: int, end: date
) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    for index, first in enumerate(range(0, customers, BLOCK)):
        yield generate_block(index, min(BLOCK, customers - first), seed, end, first + 1)


def generate(
    customers: int, seed: int = 42, end: date = date(2025, 12, 31)
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The whole shop in memory (for tests and small demos): (lines, planted segments)."""
    parts = list(iter_blocks(customers, seed, end))
    return (
        pd.concat([p[0] for p in parts], ignore_index=True),
        pd.concat([p[1] for p in parts], ignore_index=True),
    )


def write_demo_csv(
    path: Path,
    customers: int,
    seed: int = 42,
    end: date = date(2025, 12, 31),
    progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Write the shop as a normalized CSV and its planted segments as PATH.segments.csv."""
    path = Path(path)
    seg_path = path.with_name(path.stem + ".segments.csv")
    stats = {"customers": 0, "orders": 0, "lines": 0}
    for i, (lines, planted) in enumerate(iter_blocks(customers, seed, end)):
        mode = "w" if i == 0 else "a"
        lines.to_csv(path, mode=mode, header=i == 0, index=False, date_format="%Y-%m-%dT%H:%M:%S")
        planted.to_csv(seg_path, mode=mode, header=i == 0, index=False)
        stats["customers"] += len(planted)
        stats["orders"] += int(lines["order_id"].nunique())
        stats["lines"] += len(lines)
        if progress:
            progress(len(planted))
    return stats
