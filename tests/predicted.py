"""Predictions for page tests, written straight into a snapshot's tables (no model is fitted).

Pages only read `snapshot_predictions` and the snapshot's `predictions` metadata, so a page test
needs neither pymc-marketing nor the minute of compiling a fit takes (tests/test_prediction_stage
fits the real models). The numbers are simple functions of each customer's features, not a
model: churn risk grows with recency, the 12-month CLV is half the customer's spend so far (so
lapsed big spenders are both of high value and at high risk), and the backtest's figures are
fixed ones of the shape `analytics.predictions` stores.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, delete, update

from db import snapshots
from db.bulk import bulk_insert
from db.models import PredictionStatus, Snapshot, SnapshotPrediction

NO_POSITIVE_ORDER = "no positive order (only returns or zero-total orders)"


def fake_predictions(customers: pd.DataFrame, unscored: Sequence[str] = ()) -> pd.DataFrame:
    """customer_id, expected_orders_90d, churn_risk, clv_12m, unscored_reason of `customers`
    (a snapshot's), and of `unscored` customer ids as the models leave them."""
    recency = customers["recency_days"].to_numpy(float)
    churn = np.clip(recency / (recency + 45.0), 0.01, 0.99)
    tenure = np.maximum(customers["tenure_days"].to_numpy(float), 30.0)
    orders = customers["frequency"].to_numpy(float) / tenure * 90.0 * (1 - churn)
    scored = pd.DataFrame(
        {
            "customer_id": customers["customer_id"].astype(str),
            "expected_orders_90d": orders,
            "churn_risk": churn,
            "clv_12m": customers["monetary"].to_numpy(float) * 0.5,
            "unscored_reason": None,
        }
    )
    rest = pd.DataFrame(
        {
            "customer_id": list(unscored),
            "expected_orders_90d": np.nan,
            "churn_risk": np.nan,
            "clv_12m": np.nan,
            "unscored_reason": NO_POSITIVE_ORDER,
        }
    )
    return pd.concat([scored, rest], ignore_index=True) if len(rest) else scored


DECILES = [
    # decile, customers, predicted_orders, actual_orders, predicted_revenue, actual_revenue
    (1, 22, 3.1, 10.0, 1251.63, 3282.10),
    (2, 22, 4.2, 9.0, 1694.68, 2667.09),
    (3, 22, 6.3, 14.0, 2550.63, 6070.40),
    (4, 22, 9.9, 25.0, 3665.20, 10321.27),
    (5, 22, 12.7, 17.0, 4684.17, 5677.80),
    (6, 22, 17.0, 27.0, 5590.68, 8348.29),
    (7, 22, 22.0, 23.0, 7033.28, 6842.82),
    (8, 22, 30.4, 28.0, 9986.29, 8808.85),
    (9, 22, 42.3, 59.0, 22007.00, 45985.11),
    (10, 22, 110.6, 149.0, 76365.88, 188586.70),
]
DECILE_KEYS = (
    "decile",
    "customers",
    "predicted_orders",
    "actual_orders",
    "predicted_revenue",
    "actual_revenue",
)


def _fit(name: str, customers: int, seconds: float, **params: float) -> dict[str, Any]:
    return {
        "name": name,
        "params": params,
        "fit_seconds": seconds,
        "customers": customers,
        "note": None,
    }


def fake_meta(scored: int, unscored: int) -> dict[str, Any]:
    """The snapshot's `predictions` metadata, as `db.predictions.attach_predictions` writes it."""
    models = [
        {
            "model": model,
            "fit_seconds": seconds,
            "customers": 220,
            "predicted_orders": predicted,
            "actual_orders": 361.0,
            "predicted_revenue": revenue,
            "actual_revenue": 286590.43,
            "correlation": corr,
            "mae": mae,
            "baseline_mae": 1.6409,
            "auc": auc,
        }
        for model, seconds, predicted, revenue, corr, mae, auc in (
            ("bg_nbd", 5.281, 258.61, 134829.44, 0.8374, 1.2193, 0.7294),
            ("pareto_nbd", 13.768, 256.40, 134014.27, 0.8381, 1.2177, 0.7330),
        )
    ]
    return {
        "predictions": {
            "as_of": None,
            "purchase_model": "bg_nbd",
            "choice": "best churn ranking in the backtest (AUC bg_nbd 0.729, pareto_nbd 0.733)",
            "customers_scored": scored,
            "customers_unscored": {NO_POSITIVE_ORDER: unscored} if unscored else {},
            "models": {
                "bg_nbd": _fit("bg_nbd", scored, 5.817, a=0.024, b=0.976, alpha=30.63, r=0.534),
                "gamma_gamma": _fit("gamma_gamma", 192, 3.133, p=2.185, q=3.271, v=396.1),
            },
            "settings": {"horizon_days": 90, "clv_months": 12, "annual_discount_rate": 0.1},
            "timings": {"fit": 8.95, "predict": 0.515},
        },
        "backtest": {
            "cutoff": "2011-09-10",
            "holdout_days": 90,
            "best": "bg_nbd",
            "models": models,
            "deciles": [dict(zip(DECILE_KEYS, row, strict=True)) for row in DECILES],
            "customers_known": 220,
            "new_customers": 77,
            "new_customer_orders": 131,
            "fits": {
                "bg_nbd": _fit("bg_nbd", 220, 5.281, a=0.0, b=1.0, alpha=28.46, r=0.441),
                "pareto_nbd": _fit("pareto_nbd", 220, 13.768, r=0.45, alpha=28.58, s=0.0098),
                "gamma_gamma": _fit("gamma_gamma", 129, 3.075, p=2.491, q=2.777, v=288.0),
            },
        },
        "timings": {"load": 0.048, "total": 32.161},
    }


def attach_test_predictions(
    engine: Engine, snapshot_id: int, unscored: Sequence[str] = ()
) -> pd.DataFrame:
    """Write fake predictions for every customer of snapshot `snapshot_id` (and `unscored`
    ids), mark them done, and return what was written."""
    rows = fake_predictions(snapshots.customers(engine, snapshot_id), unscored)
    meta = fake_meta(int(rows["unscored_reason"].isna().sum()), len(unscored))
    table: Any = SnapshotPrediction.__table__
    with engine.begin() as conn:
        conn.execute(delete(table).where(table.c.snapshot_id == snapshot_id))
        bulk_insert(conn, table, rows.assign(snapshot_id=snapshot_id))
        conn.execute(
            update(Snapshot)
            .where(Snapshot.id == snapshot_id)
            .values(predictions_status=PredictionStatus.DONE, predictions=meta)
        )
    return rows


def set_predictions_status(
    engine: Engine, snapshot_id: int, status: PredictionStatus, error: str | None = None
) -> None:
    """Mark a snapshot's predictions pending, running, failed (with `error`) or off."""
    meta = {"error": error} if error else None
    with engine.begin() as conn:
        conn.execute(
            update(Snapshot)
            .where(Snapshot.id == snapshot_id)
            .values(predictions_status=status, predictions=meta)
        )
