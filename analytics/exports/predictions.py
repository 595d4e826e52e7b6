"""Exports of the predictions: per customer, risk and value per segment, and the backtest.

A snapshot's predictions are attached after it is published (db/predictions.py); until then
(`predictions_status` pending or running) these exports are empty and say so in their
provenance. High risk: churn risk ≥ CUSTSEG_HIGH_RISK; high value: the top CUSTSEG_HIGH_VALUE_SHARE
of scored customers by 12-month CLV; revenue at risk: the 12-month CLV of high-risk customers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analytics.exports.registry import SnapshotInfo, Sources, export, in_segments
from analytics.exports.spec import Filters
from analytics.predictions import DECILE_COLUMNS

PREDICTION_COLUMNS = ("expected_orders_90d", "churn_risk", "clv_12m")
RISK_COLUMNS = (
    "customers",
    "customers_scored",
    "clv_12m_total",
    "clv_12m_mean",
    "high_risk_customers",
    "high_risk_share",
    "revenue_at_risk",
    "high_value_customers",
    "high_value_high_risk_customers",
    "high_value_revenue_at_risk",
    "high_risk_threshold",
    "high_value_threshold",
)
BACKTEST_COLUMNS = (
    "model",
    "serves",
    "customers",
    "predicted_orders",
    "actual_orders",
    "predicted_revenue",
    "actual_revenue",
    "correlation",
    "mae",
    "baseline_mae",
    "auc",
    "cutoff",
    "holdout_days",
)


def _status(src: Sources) -> dict[str, str]:
    return {"predictions_status": src.snapshot.predictions_status}


def rounded(frame: pd.DataFrame) -> pd.DataFrame:
    """Probabilities and expected counts to 6 decimals, money to cents."""
    out = frame.copy()
    for col in ("expected_orders_90d", "churn_risk"):
        if col in out:
            out[col] = out[col].astype(float).round(6)
    if "clv_12m" in out:
        out["clv_12m"] = out["clv_12m"].astype(float).round(2)
    return out


def high_value_threshold(scored: pd.DataFrame, info: SnapshotInfo) -> float | None:
    """The 12-month CLV from which a scored customer is in the top high-value share."""
    values = scored["clv_12m"].dropna().to_numpy(dtype=float)
    if not len(values):
        return None
    return float(np.quantile(values, 1 - info.high_value_share))


def high_value_high_risk(preds: pd.DataFrame, info: SnapshotInfo) -> pd.Series:
    """Whether each customer of `preds` (a snapshot's predictions, all of them: the value
    threshold is over every scored customer) is at high risk and of high value: the members
    export's and the member list's filter."""
    flagged = flags(preds, info)
    return flagged["high_risk"] & flagged["high_value"]


def flags(preds: pd.DataFrame, info: SnapshotInfo) -> pd.DataFrame:
    """Each customer's `high_risk` and `high_value` flags (False while unscored)."""
    threshold = high_value_threshold(preds, info)
    out = preds.assign(
        high_risk=preds["churn_risk"].fillna(-1.0) >= info.high_risk,
        high_value=(preds["clv_12m"].fillna(-np.inf) >= threshold)
        if threshold is not None
        else False,
    )
    return out


@export(
    "predictions",
    reads=("predictions", "snapshot"),
    columns=("customer_id", "segment_id", *PREDICTION_COLUMNS, "unscored_reason"),
    row="customer (empty while the snapshot's predictions are pending)",
    role="analyst",
    options=("customer",),
)
def predictions(src: Sources, f: Filters) -> pd.DataFrame:
    """Each customer's expected orders in 90 days, churn risk and 12-month CLV."""
    cols = ["customer_id", "segment_id", *PREDICTION_COLUMNS, "unscored_reason"]
    chosen = in_segments(src.predictions, f.segments)
    if f.customer is not None:  # one customer (the Customers page's lookup)
        chosen = chosen[chosen["customer_id"] == f.customer]
    out = rounded(chosen[cols]).reset_index(drop=True)
    out.attrs["provenance"] = _status(src)
    return out


def risk_figures(preds: pd.DataFrame, info: SnapshotInfo) -> dict[str, float | int | None]:
    """Value and risk of a group of customers (all scored customers' thresholds)."""
    scored = preds[preds["unscored_reason"].isna()]
    high_risk = scored["high_risk"]
    high_value = scored["high_value"]
    clv = scored["clv_12m"].astype(float)
    n = len(scored)
    return {
        "customers": len(preds),
        "customers_scored": n,
        "clv_12m_total": round(float(clv.sum()), 2),
        "clv_12m_mean": round(float(clv.mean()), 2) if n else None,
        "high_risk_customers": int(high_risk.sum()),
        "high_risk_share": round(float(high_risk.mean()), 6) if n else None,
        "revenue_at_risk": round(float(clv[high_risk].sum()), 2),
        "high_value_customers": int(high_value.sum()),
        "high_value_high_risk_customers": int((high_value & high_risk).sum()),
        "high_value_revenue_at_risk": round(float(clv[high_value & high_risk].sum()), 2),
    }


@export(
    "revenue_at_risk",
    reads=("predictions", "snapshot"),
    columns=RISK_COLUMNS,
    row="— (one row; empty while predictions are pending)",
)
def revenue_at_risk(src: Sources, f: Filters) -> pd.DataFrame:
    """Predicted 12-month value of the customers and how much of it is at high churn risk."""
    info = src.snapshot
    every = src.predictions
    if every.empty:
        out = pd.DataFrame(columns=list(RISK_COLUMNS))
    else:
        flagged = flags(every, info)
        chosen = in_segments(flagged, f.segments)
        row = risk_figures(chosen, info)
        row["high_risk_threshold"] = info.high_risk
        threshold = high_value_threshold(flagged[flagged["unscored_reason"].isna()], info)
        row["high_value_threshold"] = None if threshold is None else round(threshold, 2)
        out = pd.DataFrame([row], columns=list(RISK_COLUMNS))
    out.attrs["provenance"] = _status(src)
    return out


def per_segment(preds: pd.DataFrame, info: SnapshotInfo) -> pd.DataFrame:
    """clv_12m_total, clv_12m_mean, high_risk_share per segment_id (for the segments export)."""
    cols = ["segment_id", "clv_12m_total", "clv_12m_mean", "high_risk_share"]
    if preds.empty:
        return pd.DataFrame(columns=cols)
    flagged = flags(preds, info)
    rows = []
    for sid, group in flagged.groupby("segment_id", sort=True):
        figures = risk_figures(group, info)
        rows.append(
            {
                "segment_id": int(sid),  # type: ignore[call-overload]
                "clv_12m_total": figures["clv_12m_total"],
                "clv_12m_mean": figures["clv_12m_mean"],
                "high_risk_share": figures["high_risk_share"],
            }
        )
    return pd.DataFrame(rows, columns=cols)


def _meta(info: SnapshotInfo) -> dict:  # type: ignore[type-arg]
    """What the snapshot stores of its predictions and their backtest ({} while none)."""
    return info.predictions if isinstance(info.predictions, dict) else {}


def _serving(info: SnapshotInfo) -> str | None:
    """The purchase model the snapshot's predictions come from."""
    return (_meta(info).get("predictions") or {}).get("purchase_model")


def _backtest(info: SnapshotInfo) -> dict | None:  # type: ignore[type-arg]
    return _meta(info).get("backtest")


@export(
    "backtest",
    reads=("snapshot",),
    columns=BACKTEST_COLUMNS,
    row="purchase model (empty without a backtest)",
)
def backtest(src: Sources, f: Filters) -> pd.DataFrame:
    """Each purchase model fitted before the holdout window against what happened in it."""
    bt = _backtest(src.snapshot)
    if not bt:
        out = pd.DataFrame(columns=list(BACKTEST_COLUMNS))
    else:
        out = pd.DataFrame(bt.get("models", []))
        out["serves"] = out["model"] == _serving(src.snapshot)
        out["cutoff"] = bt.get("cutoff")
        out["holdout_days"] = bt.get("holdout_days")
        out = out.reindex(columns=list(BACKTEST_COLUMNS))
    out.attrs["provenance"] = _status(src)
    return out


MODEL_COLUMNS = ("run", "model", "predicts", "serves", "customers", "fit_seconds", "params", "note")
PREDICTS = {"bg_nbd": "orders", "pareto_nbd": "orders", "gamma_gamma": "order value"}


@export(
    "prediction_models",
    reads=("snapshot",),
    columns=MODEL_COLUMNS,
    row="model fitted for the predictions or their backtest (empty while pending)",
)
def prediction_models(src: Sources, f: Filters) -> pd.DataFrame:
    """The models the predictions and their backtest fitted: what each predicts, on how many
    customers, how long its fit took and its parameters."""
    meta = _meta(src.snapshot)
    serving = _serving(src.snapshot)
    rows = []
    for run, fits in (
        ("predictions", (meta.get("predictions") or {}).get("models") or {}),
        ("backtest", (meta.get("backtest") or {}).get("fits") or {}),
    ):
        for name, fit in fits.items():
            params = fit.get("params") or {}
            rows.append(
                {
                    "run": run,
                    "model": name,
                    "predicts": PREDICTS.get(name, ""),
                    # Gamma-Gamma serves the CLV unless its note says why not.
                    "serves": run == "predictions"
                    and (name == serving or (name == "gamma_gamma" and not fit.get("note"))),
                    "customers": fit.get("customers"),
                    "fit_seconds": fit.get("fit_seconds"),
                    "params": ", ".join(f"{k}={float(v):.4g}" for k, v in params.items()),
                    "note": fit.get("note"),
                }
            )
    out = pd.DataFrame(rows, columns=list(MODEL_COLUMNS))
    out.attrs["provenance"] = _status(src)
    return out


@export(
    "calibration",
    reads=("snapshot",),
    columns=DECILE_COLUMNS,
    row="decile of predicted orders in the backtest (1 = lowest)",
)
def calibration(src: Sources, f: Filters) -> pd.DataFrame:
    """Predicted against actual orders and revenue in the backtest window, by decile."""
    bt = _backtest(src.snapshot)
    rows = bt.get("deciles", []) if bt else []
    out = pd.DataFrame(rows).reindex(columns=list(DECILE_COLUMNS))
    out.attrs["provenance"] = _status(src)
    return out
