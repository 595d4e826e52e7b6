"""The refit's features on extreme data: K-Means only ever sees finite numbers."""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pytest

from analytics import pipeline
from analytics.pipeline import run_refit
from analytics.segmentation import Transform
from tests.refitting import refit_settings

AS_OF = date(2024, 6, 30)


def order_table(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    """customer_id, ordered_at, total: one row per order, as db.refit loads them."""
    frame = pd.DataFrame(rows, columns=["customer_id", "ordered_at", "total"])
    return frame.assign(ordered_at=pd.to_datetime(frame["ordered_at"]))


def ordinary(n: int = 12) -> list[tuple[str, str, float]]:
    """n customers with one to three orders of everyday amounts."""
    rng = np.random.default_rng(1)
    return [
        (f"c{i:02d}", f"2024-0{1 + (i + j) % 6}-1{j}", float(rng.integers(5, 500)))
        for i in range(n)
        for j in range(1 + i % 3)
    ]


@pytest.fixture
def kmeans_inputs(monkeypatch: pytest.MonkeyPatch) -> list[np.ndarray]:
    """Every matrix the refit hands to K-Means."""
    seen: list[np.ndarray] = []
    real = pipeline.fit_kmeans

    def spy(x: np.ndarray, *args: Any, **kwargs: Any) -> Any:
        seen.append(np.array(x, copy=True))
        return real(x, *args, **kwargs)

    monkeypatch.setattr(pipeline, "fit_kmeans", spy)
    return seen


EXTREMES = {
    # Amounts at the import bound, a customer summing to near the largest float (1.6e308 of
    # 1.8e308), one of 1e300 and one of 1e-300.
    "huge amounts": ordinary()
    + [
        ("bound", "2024-03-01", 999_999_999_999.99),
        ("bound", "2024-03-02", 999_999_999_999.99),
        ("near", "2024-04-01", 8e307),
        ("near", "2024-05-02", 8e307),
        ("big", "2024-03-01", 1e300),
        ("tiny", "2024-05-03", 1e-300),
    ],
    "all customers identical": [(f"c{i}", "2024-03-01 10:00", 10.0) for i in range(6)],
    # One order each on one day: frequency and recency have no variance.
    "zero-variance features": [(f"c{i}", "2024-03-01", 10.0 * (i + 1)) for i in range(6)],
}


@pytest.mark.filterwarnings("ignore:Number of distinct clusters")  # identical customers
@pytest.mark.parametrize("case", EXTREMES)
def test_extreme_but_finite_orders_reach_k_means_as_finite_numbers(
    case: str, kmeans_inputs: list[np.ndarray]
) -> None:
    orders = order_table(EXTREMES[case])
    result = run_refit(orders, AS_OF, refit_settings(k_min=2, k_max=4))
    (x,) = kmeans_inputs
    assert x.dtype == np.float64 and np.isfinite(x).all()
    assert len(x) == orders["customer_id"].nunique() == len(result.customers)
    assert result.customers["segment_id"].notna().all()
    centroids = np.array([[c[f] for f in c] for c in result.segments["centroid"]])
    assert np.isfinite(centroids).all() and np.isfinite(result.silhouette)
    bounds = result.features["clip_bounds_log1p"]
    assert all(np.isfinite(v).all() for v in bounds.values())
    numbers = result.segments.select_dtypes("number").to_numpy(dtype=np.float64)
    assert np.isfinite(numbers).all()  # profiles a snapshot can store
    if case == "huge amounts":
        assert result.customers.set_index("customer_id").loc["near", "monetary"] == 1.6e308
        assert bounds["monetary"][1] <= np.log1p(1.6e308)
    if case != "huge amounts":  # nothing to tell apart on a constant feature: it stays at 0
        assert (x[:, 1] == 0).all()


@pytest.mark.parametrize(
    "rows",
    [
        [("X-17", "2024-03-01", 1e308), ("X-17", "2024-04-01", 1e308)],  # sums beyond 1.8e308
        [("X-17", "2024-03-01", float("inf"))],
    ],
)
def test_a_customer_whose_features_are_not_finite_is_named_in_a_clear_error(
    rows: list[tuple[str, str, float]], kmeans_inputs: list[np.ndarray]
) -> None:
    orders = order_table(ordinary() + rows)
    with (
        np.errstate(over="ignore"),
        pytest.raises(ValueError, match=r"customer 'X-17': monetary is inf, not a finite number"),
    ):
        run_refit(orders, AS_OF, refit_settings(k_min=2, k_max=4))
    assert kmeans_inputs == []  # refused before K-Means


def test_the_transform_refuses_nan_naming_the_customer() -> None:
    feats = pd.DataFrame(
        {"recency_days": [1, 2, 3], "frequency": [1, 1, 2], "monetary": [5.0, np.nan, 7.0]},
        index=pd.Index(["a", "b", "c"], name="customer_id"),
    )
    with pytest.raises(ValueError, match=r"customer 'b': monetary is nan"):
        Transform.fit(feats)
    fitted = Transform.fit(feats.fillna(6.0))
    with pytest.raises(ValueError, match="customer in row 1: frequency is inf"):
        fitted.apply(np.array([[1.0, 1.0, 1.0], [1.0, np.inf, 1.0]]))
    top = fitted.invert(np.full((1, 3), 1e6))  # far beyond the clip bounds: still finite
    assert np.isfinite(top).all() and top[0, 2] == pytest.approx(np.expm1(fitted.upper[2]))
