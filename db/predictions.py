"""The prediction stage of a refit: per-customer predictions attached to a published snapshot.

A refit publishes its segments first; then a `predict` job (db/scheduler.py) loads the orders up
to the snapshot's as-of date (with CUSTSEG_REFIT_ENGINE=spark: reads them in Spark and brings
only per-customer summaries to this process, `db.spark_refit.SparkHistory`), runs
`analytics.predictions.run` (the backtest, then expected
orders in 90 days, churn risk and 12-month CLV from the model the backtest ranks best) and
writes them to `snapshot_predictions`, with the models, fit times and backtest in
`snapshots.predictions`, in one transaction. Until then the snapshot's `predictions_status` is
`pending` and pages say so; a failure sets it to `failed` with the reason and leaves the
snapshot and its segments as they were. pymc-marketing is imported only here, in the job
process, never in a web worker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, delete, update

from config import Settings
from db import jobs
from db.bulk import bulk_insert
from db.jobs import JobResult
from db.models import Job, JobStatus, PredictionStatus, Snapshot, SnapshotPrediction
from db.queries import load_orders
from db.snapshots import latest_published

log = logging.getLogger("custseg.predictions")
COLUMNS = ("expected_orders_90d", "churn_risk", "clv_12m", "unscored_reason")


class PredictionsSkipped(RuntimeError):
    """Nothing to predict (the snapshot is gone or its predictions are done)."""


@dataclass
class PredictionOutcome:
    snapshot_id: int
    purchase_model: str
    scored: int
    unscored: dict[str, int]
    duration_s: float
    backtest: dict[str, Any] | None


def _set(engine: Engine, snapshot_id: int, status: PredictionStatus, meta: Any = None) -> None:
    values: dict[str, Any] = {"predictions_status": status}
    if meta is not None:
        values["predictions"] = meta
    with engine.begin() as conn:
        conn.execute(update(Snapshot).where(Snapshot.id == snapshot_id).values(**values))


def prediction_settings(settings: Settings) -> Any:
    """The prediction run's settings from the app's (its compile cache under the instance dir:
    writable by the app's own user, in a container too)."""
    from analytics.predictions import PredictionSettings

    return PredictionSettings(
        annual_discount_rate=settings.clv_discount_rate,
        seed=settings.random_seed,
        compile_dir=str(settings.instance_dir / "pytensor"),
    )


def attach_predictions(
    engine: Engine,
    settings: Settings,
    snapshot_id: int,
    on_stage: Callable[[str], None] | None = None,
) -> PredictionOutcome:
    """Predict for published snapshot `snapshot_id` and attach the result to it.

    Raises PredictionsSkipped when the snapshot is no longer published; any other failure
    marks the snapshot's predictions failed (with the reason) and re-raises.
    """
    from analytics import predictions

    tell = on_stage or (lambda _stage: None)
    snap = latest_published(engine, snapshot_id)
    if snap is None or snap.as_of is None:
        raise PredictionsSkipped(f"snapshot {snapshot_id} is not published (pruned?)")
    started = time.perf_counter()
    _set(engine, snap.id, PredictionStatus.RUNNING)
    try:
        tell("loading")
        if settings.refit_engine == "spark":  # the summaries in Spark, no orders in memory
            from analytics.pipeline import RefitSettings
            from db.spark_refit import spark_history

            options = RefitSettings.from_settings(settings).engine
            start = snap.data_start or snap.as_of
            with spark_history(engine, options, start, snap.as_of) as history:
                load_s = time.perf_counter() - started
                tell("predicting")
                preds, bt = predictions.run_history(
                    history, snap.as_of, prediction_settings(settings)
                )
        else:
            orders = load_orders(engine, end=snap.as_of, with_order_id=False)
            load_s = time.perf_counter() - started
            tell("predicting")
            preds, bt = predictions.run(orders, snap.as_of, prediction_settings(settings))
        tell("writing")
        rows = preds.customers[["customer_id", *COLUMNS]].copy()
        for col in ("expected_orders_90d", "churn_risk", "clv_12m"):
            values = rows[col].astype(float)
            rows[col] = values.where(np.isfinite(values), None)
        duration = time.perf_counter() - started
        meta = {
            "predictions": preds.as_dict(),
            "backtest": bt.as_dict() if bt is not None else None,
            "timings": {"load": round(load_s, 3), "total": round(duration, 3)},
        }
        table: Any = SnapshotPrediction.__table__
        with engine.begin() as conn:
            conn.execute(delete(table).where(table.c.snapshot_id == snap.id))
            bulk_insert(conn, table, rows.assign(snapshot_id=snap.id))
            conn.execute(
                update(Snapshot)
                .where(Snapshot.id == snap.id)
                .values(predictions_status=PredictionStatus.DONE, predictions=meta)
            )
    except Exception as exc:
        message = f"{type(exc).__name__}: {exc}"[:2000]
        _set(engine, snap.id, PredictionStatus.FAILED, {"error": message})
        log.error("predictions failed", extra={"snapshot_id": snap.id, "error": message})
        raise
    log.info(
        "predictions attached",
        extra={"snapshot_id": snap.id, "seconds": round(duration, 2), "customers": len(rows)},
    )
    return PredictionOutcome(
        snap.id,
        preds.purchase_model,
        int(preds.customers["unscored_reason"].isna().sum()),
        preds.unscored,
        duration,
        meta["backtest"],
    )


def predict_job(
    engine: Engine, settings: Settings, job: Job, on_stage: Callable[[str], None]
) -> JobResult:
    """The `predict` job kind: params snapshot_id."""
    snapshot_id = job.params.get("snapshot_id") if isinstance(job.params, dict) else None
    if not isinstance(snapshot_id, int) or isinstance(snapshot_id, bool):
        return JobResult(JobStatus.FAILED, error=f"job parameter snapshot_id={snapshot_id!r}")
    try:
        o = attach_predictions(engine, settings, snapshot_id, on_stage)
    except PredictionsSkipped as exc:
        return JobResult(JobStatus.SKIPPED, message=str(exc), snapshot_id=snapshot_id)
    except Exception as exc:  # noqa: BLE001 - recorded on the snapshot and the job
        return JobResult(JobStatus.FAILED, error=str(exc)[:2000], snapshot_id=snapshot_id)
    # The predictions' file for the web workers (the Customers page's sort and filters).
    jobs.enqueue(engine, "files", {"snapshot_id": o.snapshot_id}, trigger=job.trigger)
    return JobResult(
        JobStatus.DONE,
        message=f"predictions attached to snapshot {o.snapshot_id} ({o.purchase_model})",
        snapshot_id=o.snapshot_id,
        details={"scored": o.scored, "duration_s": round(o.duration_s, 3)},
    )


def read(engine: Engine, snapshot_id: int) -> pd.DataFrame:
    """The snapshot's predictions: customer_id and the prediction columns."""
    from sqlalchemy import select

    from db.queries import read_frame

    p = SnapshotPrediction
    return read_frame(
        engine,
        select(p.customer_id, p.expected_orders_90d, p.churn_risk, p.clv_12m, p.unscored_reason)
        .where(p.snapshot_id == snapshot_id)
        .order_by(p.customer_id),
        {
            "customer_id": str,
            "expected_orders_90d": "float64",
            "churn_risk": "float64",
            "clv_12m": "float64",
            "unscored_reason": object,
        },
    )
