"""Predictions (BG/NBD, Pareto/NBD, Gamma-Gamma) and their backtest: the CDNOW sample refitted as
of 1997-09-30 against its next 90 days, and hand-checked small cases.

The models compile on first use (pytensor): a cold cache costs ~1 minute more on this file; the
cache (analytics.predictions.default_compile_dir, under ~/.cache) is kept between runs.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from analytics.predictions import (
    BG_NBD,
    NO_POSITIVE_ORDER,
    PURCHASE_MODELS,
    BacktestUnavailable,
    PredictionSettings,
    backtest,
    compare,
    default_holdout_days,
    predict,
    prune_compile_cache,
    rfm_summary,
    run,
)
from tests.conftest import CDNOW, SAMPLE

AS_OF = date(1997, 9, 30)


def _orders(*rows: tuple[str, str, float]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["customer_id", "ordered_at", "total"])
    frame["ordered_at"] = pd.to_datetime(frame["ordered_at"], format="ISO8601")
    return frame


def _order_table(path) -> pd.DataFrame:
    lines = pd.read_csv(path, dtype={"customer_id": str, "order_id": str})
    lines["ordered_at"] = pd.to_datetime(lines["ordered_at"], format="ISO8601")
    return lines.groupby(["customer_id", "order_id"], as_index=False).agg(
        ordered_at=("ordered_at", "min"), total=("amount", "sum")
    )


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    return _order_table(CDNOW)


@pytest.fixture(scope="module")
def refit(cdnow: pd.DataFrame):
    return run(cdnow, AS_OF)


@pytest.fixture(scope="module")
def bg_nbd(cdnow: pd.DataFrame):
    return predict(cdnow, AS_OF, purchase_model=BG_NBD)


def _next_days(orders: pd.DataFrame, as_of: date, days: int) -> pd.DataFrame:
    start = pd.Timestamp(as_of + timedelta(days=1))
    window = orders[
        (orders["total"] > 0)
        & (orders["ordered_at"] >= start)
        & (orders["ordered_at"] < start + pd.Timedelta(days=days))
    ]
    g = window.groupby("customer_id")["total"]
    return pd.DataFrame({"orders": g.size(), "revenue": g.sum()}).reset_index()


def _scored_vs_next_90_days(predictions, cdnow: pd.DataFrame):
    scored = predictions.customers[predictions.customers["unscored_reason"].isna()]
    predicted = pd.DataFrame(
        {
            "customer_id": scored["customer_id"],
            "expected_orders": scored["expected_orders_90d"],
            "churn_risk": scored["churn_risk"],
            "expected_revenue": 0.0,
        }
    )
    return compare(predicted, _next_days(cdnow, AS_OF, 90))[0]


@pytest.mark.models
def test_cdnow_predicted_orders_of_the_next_90_days_are_within_30_percent(refit, cdnow) -> None:
    summary = _scored_vs_next_90_days(refit[0], cdnow)
    assert summary["actual_orders"] == 718  # positive orders 1997-10-01..12-29 of known buyers
    assert abs(summary["predicted_orders"] / summary["actual_orders"] - 1) <= 0.30


@pytest.mark.models
def test_cdnow_churn_risk_ranks_who_does_not_buy_in_the_next_90_days(refit, cdnow) -> None:
    assert _scored_vs_next_90_days(refit[0], cdnow)["auc"] >= 0.65


@pytest.mark.models
def test_the_purchase_model_serving_is_the_backtests_best_and_says_why(refit) -> None:
    predictions, bt = refit
    assert set(bt.models["model"]) == set(PURCHASE_MODELS)
    assert predictions.purchase_model == bt.best
    best_auc = bt.models.set_index("model")["auc"]
    assert best_auc[bt.best] >= best_auc.max() - 0.005
    assert "AUC" in predictions.choice
    meta = predictions.as_dict()
    assert set(meta["models"]) == {bt.best, "gamma_gamma"}
    assert all(fit["fit_seconds"] > 0 for fit in meta["models"].values())
    assert meta["models"]["gamma_gamma"]["customers"] < meta["models"][bt.best]["customers"]


@pytest.mark.models
def test_one_time_buyers_get_a_churn_risk_strictly_between_0_and_1(refit, bg_nbd) -> None:
    for predictions in (refit[0], bg_nbd):
        c = predictions.customers
        one_time = c[(c["frequency"] == 0) & c["unscored_reason"].isna()]
        assert len(one_time) > 1000
        assert one_time["churn_risk"].between(0, 1, inclusive="neither").all()
        # Not a constant (BG/NBD's P(alive) is 1 for all of them): newer ones are likelier to buy.
        assert one_time["churn_risk"].nunique() > 50


@pytest.mark.models
def test_bg_nbd_churn_risk_of_a_one_time_buyer_matches_a_simulation_of_the_model(bg_nbd) -> None:
    """A one-time buyer under BG/NBD has not dropped out (that only follows a repeat purchase):
    with purchase rate λ ~ Gamma(r, α), the first repeat purchase comes after an exponential
    time. Among simulated customers without one by T, the share still without one by T + 90."""
    p = bg_nbd.models[BG_NBD].params
    c = bg_nbd.customers.set_index("customer_id")
    customer = c[c["frequency"] == 0].iloc[0]
    rng = np.random.default_rng(7)
    rate = rng.gamma(shape=p["r"], scale=1 / p["alpha"], size=400_000)
    first_repeat = rng.exponential(size=rate.size) / rate
    none_by_T = first_repeat > customer["T"]
    simulated = float((first_repeat[none_by_T] > customer["T"] + 90).mean())
    assert customer["churn_risk"] == pytest.approx(simulated, abs=0.004)


@pytest.mark.models
def test_customers_with_only_returns_are_reported_unscored_not_dropped(refit, cdnow) -> None:
    predictions = refit[0]
    past = cdnow[cdnow["ordered_at"] < pd.Timestamp(AS_OF + timedelta(days=1))]
    buyers = set(past.loc[past["total"] > 0, "customer_id"])
    only_returns = set(past["customer_id"]) - buyers
    assert len(only_returns) == 8
    c = predictions.customers.set_index("customer_id")
    assert set(c.index) == set(past["customer_id"])
    unscored = c[c["unscored_reason"].notna()]
    assert set(unscored.index) == only_returns
    assert (unscored["unscored_reason"] == NO_POSITIVE_ORDER).all()
    assert unscored[["expected_orders_90d", "churn_risk", "clv_12m"]].isna().all().all()
    assert c.loc[list(buyers), ["expected_orders_90d", "churn_risk", "clv_12m"]].notna().all().all()
    assert predictions.unscored == {NO_POSITIVE_ORDER: 8}
    assert predictions.as_dict()["customers_scored"] == len(buyers)


@pytest.mark.models
def test_predictions_are_the_same_for_the_same_data_in_any_row_order(cdnow, bg_nbd) -> None:
    shuffled = cdnow.sample(frac=1.0, random_state=3).reset_index(drop=True)
    again = predict(shuffled, AS_OF, purchase_model=BG_NBD)
    pd.testing.assert_frame_equal(again.customers, bg_nbd.customers)
    assert again.models[BG_NBD].params == bg_nbd.models[BG_NBD].params


@pytest.mark.models
def test_clv_is_positive_discounted_and_highest_for_frequent_recent_buyers(bg_nbd) -> None:
    c = bg_nbd.customers.dropna(subset=["clv_12m"])
    assert (c["clv_12m"] > 0).all()
    top = c.nlargest(100, "clv_12m")
    assert top["frequency"].median() > c["frequency"].median()


@pytest.mark.models
def test_order_values_in_hundreds_get_a_spend_model_with_a_finite_mean() -> None:
    """Online Retail's orders are worth hundreds of pounds. With pymc-marketing's default
    priors, Gamma-Gamma's q came out at 0.99 at the backtest's cutoff (no finite mean: the
    predicted revenue of the window was negative); by maximum likelihood it matches the data."""
    orders = _order_table(SAMPLE)
    bt = backtest(orders, date(2011, 12, 9), PredictionSettings(purchase_model=BG_NBD))
    assert bt.cutoff == date(2011, 9, 10)
    gg = bt.fits["gamma_gamma"]
    assert gg.note is None and gg.params["q"] > 1
    population_mean = gg.params["p"] * gg.params["v"] / (gg.params["q"] - 1)
    observed = rfm_summary(orders, bt.cutoff).query("frequency > 0")["monetary_value"].mean()
    assert population_mean == pytest.approx(observed, rel=0.1)  # 399.8 observed
    row = bt.models.iloc[0]
    assert 0 < row["predicted_revenue"] < 2 * row["actual_revenue"]


def test_compare_scores_predictions_against_the_window_by_hand() -> None:
    predicted = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d"],
            "expected_orders": [2.0, 0.5, 0.1, 1.0],
            "churn_risk": [0.1, 0.6, 0.9, 0.3],
            "expected_revenue": [20.0, 5.0, 1.0, 10.0],
        }
    )
    # c bought nothing (absent); e was not known before the window and is ignored here.
    actual = pd.DataFrame(
        {"customer_id": ["a", "b", "d", "e"], "orders": [3, 0, 1, 5], "revenue": [30, 0, 12, 99]}
    )
    summary, deciles = compare(predicted, actual)
    assert summary["customers"] == 4
    assert summary["predicted_orders"] == pytest.approx(3.6)
    assert (summary["actual_orders"], summary["actual_revenue"]) == (4.0, 42.0)
    assert summary["predicted_revenue"] == pytest.approx(36.0)
    assert summary["mae"] == pytest.approx((1 + 0.5 + 0.1 + 0) / 4)
    assert summary["baseline_mae"] == pytest.approx(1.0)  # predicting 0 for everyone
    assert summary["correlation"] == pytest.approx(3.4 / math.sqrt(2.02 * 6))
    assert summary["auc"] == 1.0  # b and c (no order) have the two highest risks
    assert deciles["decile"].tolist() == [1, 2, 3, 4]  # fewer customers than deciles
    assert deciles["predicted_orders"].tolist() == [0.1, 0.5, 1.0, 2.0]
    assert deciles["actual_orders"].tolist() == [0.0, 0.0, 1.0, 3.0]
    assert deciles["actual_revenue"].tolist() == [0.0, 0.0, 12.0, 30.0]
    assert deciles["customers"].tolist() == [1, 1, 1, 1]


def test_compare_has_no_auc_when_everybody_bought() -> None:
    predicted = pd.DataFrame(
        {
            "customer_id": ["a", "b"],
            "expected_orders": [1.0, 2.0],
            "churn_risk": [0.5, 0.2],
            "expected_revenue": [1.0, 2.0],
        }
    )
    actual = pd.DataFrame({"customer_id": ["a", "b"], "orders": [1, 1], "revenue": [5, 5]})
    summary, _ = compare(predicted, actual)
    assert math.isnan(summary["auc"]) and math.isnan(summary["correlation"])


def test_default_holdout_is_90_days_or_a_quarter_of_a_shorter_history() -> None:
    assert default_holdout_days(date(2024, 1, 1), date(2024, 12, 31)) == 90
    assert default_holdout_days(date(2024, 1, 1), date(2024, 4, 9)) == 25  # 100 days of history
    assert default_holdout_days(date(2024, 1, 1), date(2024, 1, 3)) == 0


def test_backtest_window_figures_by_hand() -> None:
    # 120 days of history (2024-01-01 .. 04-29): the holdout is 30 days, cutoff 03-30.
    orders = _orders(
        ("a", "2024-01-01", 10.0),
        ("a", "2024-02-01", 20.0),
        ("a", "2024-03-01", 30.0),
        ("a", "2024-04-10", 40.0),  # window
        ("a", "2024-04-20", 50.0),  # window
        ("b", "2024-01-15", 15.0),
        ("b", "2024-03-30T23:00", 25.0),  # the cutoff day: history
        ("b", "2024-04-05", -25.0),  # a return in the window: not an order
        ("c", "2024-02-10", 5.0),
        ("d", "2024-03-01", -8.0),  # only a return before the cutoff: unscored there
        ("d", "2024-04-02", 12.0),  # then a purchase in the window: "new" to the models
        ("e", "2024-04-29", 7.0),  # first order in the window, on the as-of day
        ("f", "2024-04-30", 99.0),  # after the as-of day: ignored
    )
    bt = backtest(orders, date(2024, 4, 29), PredictionSettings(purchase_model=BG_NBD))
    assert (bt.holdout_days, bt.cutoff) == (30, date(2024, 3, 30))
    assert bt.models["model"].tolist() == [BG_NBD] and bt.best == BG_NBD
    row = bt.models.iloc[0]
    assert row["customers"] == 3  # a, b, c
    assert (row["actual_orders"], row["actual_revenue"]) == (2.0, 90.0)
    assert row["baseline_mae"] == pytest.approx(2 / 3)
    assert row["auc"] > 0.5  # a (5 orders before) is the likeliest of the three to buy
    assert (bt.new_customers, bt.new_customer_orders) == (2, 2)  # d and e
    assert bt.unscored == {NO_POSITIVE_ORDER: 1}
    assert bt.deciles["customers"].sum() == 3
    assert bt.deciles["predicted_orders"].sum() == pytest.approx(row["predicted_orders"])
    assert bt.deciles["actual_revenue"].sum() == 90.0
    assert bt.as_dict()["models"][0]["actual_orders"] == 2.0


def test_backtest_refuses_a_history_too_short_and_run_predicts_without_it() -> None:
    orders = _orders(("a", "2024-01-01", 10.0), ("b", "2024-01-02", 20.0))
    with pytest.raises(BacktestUnavailable, match="too short"):
        backtest(orders, date(2024, 1, 3))
    predictions, bt = run(orders, date(2024, 1, 3), PredictionSettings(purchase_model=BG_NBD))
    assert bt is None
    assert predictions.customers["churn_risk"].between(0, 1, inclusive="neither").all()


def test_rfm_summary_by_hand() -> None:
    orders = _orders(
        ("a", "2024-01-01", 10.0),  # first purchase: not in the monetary value
        ("a", "2024-01-11", 20.0),
        ("a", "2024-01-31", 40.0),
        ("a", "2024-02-01", -5.0),  # a return: not a purchase
        ("b", "2024-02-09T12:00", 30.0),  # first purchase at noon of the as-of day
        ("r", "2024-01-05", -9.0),  # only a return
        ("z", "2024-02-10", 50.0),  # after the as-of day
    )
    rfm = rfm_summary(orders, date(2024, 2, 9)).set_index("customer_id")
    assert list(rfm.index) == ["a", "b", "r"]
    a, b = rfm.loc["a"], rfm.loc["b"]
    assert (a["frequency"], a["recency"], a["T"], a["monetary_value"]) == (2, 30, 40, 30)
    assert (b["frequency"], b["recency"], b["T"], b["monetary_value"]) == (0, 0, 0.5, 0)
    assert rfm.loc["r", "unscored_reason"] == NO_POSITIVE_ORDER
    assert rfm.loc[["a", "b"], "unscored_reason"].isna().all()


def test_an_order_table_without_a_total_is_refused_by_name() -> None:
    orders = _orders(("a", "2024-01-01", 10.0)).drop(columns=["total"])
    with pytest.raises(ValueError, match="missing column.*total"):
        rfm_summary(orders, date(2024, 1, 1))


def test_importing_analytics_does_not_import_the_models_and_the_cache_goes_where_told(
    tmp_path,
) -> None:
    code = (
        "import sys\n"
        "import analytics.predictions as p\n"
        "assert 'pymc_marketing' not in sys.modules and 'pytensor' not in sys.modules\n"
        f"p.configure_compile_dir({str(tmp_path / 'cache')!r})\n"
        "import pytensor\n"
        "print(pytensor.config.base_compiledir)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTENSOR_FLAGS"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == str(tmp_path / "cache")


def test_pruning_the_compile_cache_drops_old_model_graphs_only(tmp_path) -> None:
    cache = tmp_path / "numba"
    cache.mkdir()
    names = {
        "old_graph": "string.numba_funcified_fgraph-aa_fastmath1.py312.1.nbc",
        "new_graph": "string.numba_funcified_fgraph-bb_fastmath1.py312.1.nbc",
        "old_op": "string.numba_composite-cc_fastmath1.py312.1.nbc",
    }
    for name in names.values():
        (cache / name).write_bytes(b"x")
    two_days_ago = time.time() - 2 * 86_400
    for key in ("old_graph", "old_op"):
        os.utime(cache / names[key], (two_days_ago, two_days_ago))
    assert prune_compile_cache(tmp_path) == 1
    assert sorted(p.name for p in cache.iterdir()) == sorted([names["new_graph"], names["old_op"]])
