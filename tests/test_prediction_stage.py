"""The prediction stage of a refit: attached after the publish, never in the way of segments.

A refit publishes its snapshot with predictions `pending`; the `predict` job (or `custseg refit`
right after publishing) attaches every customer's expected orders, churn risk and 12-month CLV
with the models and the backtest; the exports carry them; a failure leaves the snapshot and its
segments published and says why.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from analytics.exports import Filters
from db import jobs, snapshots
from db.importer import import_file
from db.models import JobStatus, PredictionStatus, SnapshotPrediction, Trigger
from db.predictions import attach_predictions
from db.scheduler import Scheduler
from tests.conftest import CDNOW, export_frame, make_settings
from tests.refitting import refit

# Each test fits the prediction models (pymc-marketing compiles them): `make test-models`.
pytestmark = pytest.mark.models


@pytest.fixture(scope="module")
def compile_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One instance folder for the module: pytensor's compile cache is kept in it."""
    return tmp_path_factory.mktemp("instance")


def settings_for(tmp_path: Path, engine: Engine, compile_home: Path) -> Any:
    url = engine.url.render_as_string(hide_password=False)
    return make_settings(tmp_path, url, predictions=True, instance_dir=compile_home)


def test_a_snapshot_is_published_first_and_its_predictions_attached_after(
    sqlite_engine: Engine, tmp_path: Path, compile_home: Path
) -> None:
    import_file(sqlite_engine, CDNOW)
    outcome = refit(sqlite_engine, k=4, predictions=True)
    snap = snapshots.get_snapshot(sqlite_engine, outcome.snapshot_id)
    assert snap.predictions_status == PredictionStatus.PENDING
    pending, prov = export_frame(sqlite_engine, "predictions")
    assert pending.empty and prov["predictions_status"] == "pending"
    segs, _ = export_frame(sqlite_engine, "segments")
    assert segs["clv_12m_total"].isna().all()  # segments do not wait for predictions

    settings = settings_for(tmp_path, sqlite_engine, compile_home)
    done = attach_predictions(sqlite_engine, settings, outcome.snapshot_id)
    snap = snapshots.get_snapshot(sqlite_engine, outcome.snapshot_id)
    assert snap.predictions_status == PredictionStatus.DONE
    meta = snap.predictions or {}
    assert meta["predictions"]["purchase_model"] in ("bg_nbd", "pareto_nbd")
    assert meta["backtest"]["holdout_days"] == 90 and meta["timings"]["total"] > 0

    preds, prov = export_frame(sqlite_engine, "predictions", role="analyst")
    assert prov["predictions_status"] == "done"
    customers = snapshots.customers(sqlite_engine, outcome.snapshot_id)
    scored = preds[preds["unscored_reason"].isna()]
    assert set(scored["customer_id"]) == set(customers["customer_id"])
    assert len(scored) == done.scored and sum(done.unscored.values()) == len(preds) - len(scored)
    unscored = preds[preds["unscored_reason"].notna()]
    assert len(unscored) == 8 and (unscored["segment_id"] == 0).all()  # shown, not dropped
    assert unscored["churn_risk"].isna().all()
    assert scored["churn_risk"].between(0, 1).all(), scored["churn_risk"].describe()
    one_order = customers.loc[customers["frequency"] == 1, "customer_id"]
    single = scored[scored["customer_id"].isin(one_order)]["churn_risk"]
    assert len(single) > 100 and single.between(0, 1, inclusive="neither").all()
    assert (scored["clv_12m"] >= 0).all() and (scored["expected_orders_90d"] >= 0).all()

    members, _ = export_frame(sqlite_engine, "members")
    joined = members.set_index("customer_id")["churn_risk"]
    assert joined.loc[scored["customer_id"].iloc[0]] == scored["churn_risk"].iloc[0]
    segs, _ = export_frame(sqlite_engine, "segments")
    cents = 0.005 * len(scored)  # each customer's CLV is rounded to cents
    assert segs["clv_12m_total"].sum() == pytest.approx(scored["clv_12m"].sum(), abs=cents)
    high = scored["churn_risk"] >= 0.7
    risk, _ = export_frame(sqlite_engine, "revenue_at_risk")
    row = risk.iloc[0]
    assert row["high_risk_customers"] == int(high.sum())
    assert row["revenue_at_risk"] == pytest.approx(scored.loc[high, "clv_12m"].sum(), abs=cents)
    share = (segs["high_risk_share"] * segs["customers"]).sum() / segs["customers"].sum()
    assert share == pytest.approx(high.mean(), abs=1e-4)
    backtest, _ = export_frame(sqlite_engine, "backtest")
    assert set(backtest["model"]) == {"bg_nbd", "pareto_nbd"} and backtest["serves"].sum() == 1
    deciles, _ = export_frame(sqlite_engine, "calibration")
    assert list(deciles["decile"]) == list(range(1, 11))
    assert deciles["actual_orders"].sum() > 0
    with pytest.raises(PermissionError):  # single customers: not for viewers
        export_frame(sqlite_engine, "predictions", role="viewer")
    assert export_frame(sqlite_engine, "revenue_at_risk", role="viewer")[0].shape[0] == 1


def test_a_failed_prediction_stage_keeps_the_snapshot_and_says_why(
    sqlite_engine: Engine, tmp_path: Path, compile_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import analytics.predictions

    import_file(sqlite_engine, CDNOW)
    outcome = refit(sqlite_engine, k=4, predictions=True)

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("the models did not converge")

    monkeypatch.setattr(analytics.predictions, "run", broken)
    settings = settings_for(tmp_path, sqlite_engine, compile_home)
    jobs.enqueue(
        sqlite_engine, "predict", {"snapshot_id": outcome.snapshot_id}, trigger=Trigger.CLI
    )
    Scheduler(sqlite_engine, settings).drain()
    [job] = jobs.recent(sqlite_engine)
    assert job.status == JobStatus.FAILED and "did not converge" in (job.error or "")
    snap = snapshots.get_snapshot(sqlite_engine)  # still the published snapshot
    assert snap.id == outcome.snapshot_id and snap.predictions_status == PredictionStatus.FAILED
    assert "did not converge" in (snap.predictions or {})["error"]
    assert len(export_frame(sqlite_engine, "segments")[0]) == 4
    with sqlite_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(SnapshotPrediction)).scalar() == 0


def test_a_refit_job_queues_the_prediction_job_of_its_snapshot(
    sqlite_engine: Engine, tmp_path: Path, compile_home: Path
) -> None:
    import_file(sqlite_engine, CDNOW)
    settings = settings_for(tmp_path, sqlite_engine, compile_home)
    jobs.enqueue(sqlite_engine, "refit", {"k": 3}, trigger=Trigger.WEB)
    Scheduler(sqlite_engine, settings).drain()
    done = {j.kind: j for j in jobs.recent(sqlite_engine)}
    assert done["refit"].status == JobStatus.DONE and done["predict"].status == JobStatus.DONE
    assert done["predict"].snapshot_id == done["refit"].snapshot_id
    snap = snapshots.get_snapshot(sqlite_engine)
    assert snap.predictions_status == PredictionStatus.DONE
    assert not export_frame(sqlite_engine, "predictions", Filters())[0].empty
    # The snapshot's files after the refit, then once more with its predictions.
    files = [j.message for j in reversed(jobs.recent(sqlite_engine)) if j.kind == "files"]
    ready = f"snapshot {snap.id}: files of orders, customers, profiles, customer_sample"
    assert files == [f"{ready} ready", f"{ready}, predictions ready"]
