"""The predictions in the pages: revenue at risk on the Overview, predicted value and high-risk
share per segment, churn risk and CLV in the Customers page's member list (sorted over the
whole list on the server, the high value, high risk filter, its download) and lookup, and the
backtest on the Model page; "pending", "failed" and "off" said where predictions are missing.

Callbacks are called directly as a logged-in user. The `dashboard` fixture (Online Retail
sample, two snapshots) gets predictions written straight into its tables (tests/predicted.py):
pages only read them, and a real fit is tests/test_prediction_stage.py's.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine
from werkzeug.exceptions import Forbidden

from analytics.exports import Filters
from analytics.exports.spec import parse_sort
from db.exporter import Exporter
from db.models import PredictionStatus
from db.snapshot_cache import SnapshotCache
from tests.conftest import as_user, export_frame, frame, page, view
from tests.helpers import text_of, walk
from tests.predicted import attach_test_predictions, set_predictions_status
from webapp.downloads import build_download
from webapp.filters import FilterError, parse_view

ADMIN, ANALYST, VIEWER = (f"{r}@example.com" for r in ("admin", "analyst", "viewer"))
LATEST = 2
UNSCORED = ("99901", "99902")  # customers with only returns: predicted, never scored


@pytest.fixture
def predicted(dashboard: Any, sqlite_engine: Engine) -> pd.DataFrame:
    """The dashboard with predictions attached to its latest snapshot (two unscored)."""
    return attach_test_predictions(sqlite_engine, LATEST, UNSCORED)


def expected_at_risk(preds: pd.DataFrame, high_risk: float = 0.7, share: float = 0.2) -> set[str]:
    """The high value, high risk customers, computed here from what was written."""
    scored = preds[preds["unscored_reason"].isna()]
    threshold = np.quantile(scored["clv_12m"].to_numpy(float), 1 - share)
    chosen = scored[(scored["churn_risk"] >= high_risk) & (scored["clv_12m"] >= threshold)]
    return set(chosen["customer_id"])


# --- Exports and the member list's reads -------------------------------------------------------


def test_members_export_keeps_the_high_value_high_risk_customers(
    predicted: pd.DataFrame, sqlite_engine: Engine
) -> None:
    chosen = frame(sqlite_engine, "members", role="analyst", high_value_high_risk=True)
    expected = expected_at_risk(predicted)
    assert 0 < len(expected) < 60
    assert set(chosen["customer_id"]) == expected
    assert list(chosen["customer_id"]) == sorted(expected)  # by customer id, as the export is
    assert (chosen["churn_risk"] >= 0.7).all()
    _, prov = export_frame(sqlite_engine, "members", Filters(high_value_high_risk=True))
    assert prov["filter_high_value_high_risk"] == "true" and prov["predictions_status"] == "done"
    # With a segment too: the value threshold stays the one of every scored customer.
    seg = int(chosen["segment_id"].iloc[0])
    both = frame(
        sqlite_engine, "members", role="analyst", high_value_high_risk=True, segments=(seg,)
    )
    assert set(both["customer_id"]) == set(chosen.loc[chosen["segment_id"] == seg, "customer_id"])


def test_the_filter_chooses_nobody_while_predictions_are_pending(
    dashboard: Any, sqlite_engine: Engine
) -> None:
    set_predictions_status(sqlite_engine, LATEST, PredictionStatus.PENDING)
    assert frame(sqlite_engine, "members", role="analyst", high_value_high_risk=True).empty
    assert len(frame(sqlite_engine, "members", role="analyst")) == 297


def test_member_pages_sort_the_whole_list_on_the_server(
    predicted: pd.DataFrame, sqlite_engine: Engine
) -> None:
    exporter = Exporter(sqlite_engine, SnapshotCache())
    src = exporter.sources()
    every = frame(sqlite_engine, "members", role="analyst")  # by customer id
    for column, descending in (("churn_risk", True), ("clv_12m", False), ("recency_days", True)):
        expected = every.sort_values(
            column, ascending=not descending, kind="stable", na_position="last"
        )["customer_id"]
        shown: list[str] = []
        for n in range(13):  # every page of 25
            part, total = exporter.members_page(
                src, (), n, 25, role="analyst", sort=(column, descending)
            )
            shown += list(part["customer_id"])
        assert total == 297 and shown == list(expected), column
    # The page's rows carry the same figures as the export's.
    part, _ = exporter.members_page(src, (), 0, 25, sort=("churn_risk", True))
    by_id = every.set_index("customer_id")
    assert list(part["churn_risk"]) == list(by_id.loc[part["customer_id"], "churn_risk"])
    assert list(part.columns) == list(every.columns)
    # Sorted and filtered: the filter's customers, by churn risk.
    part, total = exporter.members_page(
        src, (), 0, 100, high_value_high_risk=True, sort=("churn_risk", True)
    )
    assert total == len(expected_at_risk(predicted)) and part["churn_risk"].is_monotonic_decreasing
    with pytest.raises(FilterError, match="sort column"):
        exporter.members_page(src, (), 0, 25, sort=("password_hash", True))


def test_an_unscored_or_pending_value_sorts_last(dashboard: Any, sqlite_engine: Engine) -> None:
    set_predictions_status(sqlite_engine, LATEST, PredictionStatus.PENDING)
    exporter = Exporter(sqlite_engine, SnapshotCache())
    part, total = exporter.members_page(exporter.sources(), (), 0, 25, sort=("churn_risk", True))
    every = frame(sqlite_engine, "members", role="analyst")
    assert total == 297 and part["churn_risk"].isna().all()
    assert list(part["customer_id"]) == list(every["customer_id"].iloc[:25])  # ties: by id


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([{"column_id": "nope", "direction": "asc"}], "sort column"),
        ([{"column_id": "churn_risk", "direction": "up"}], "direction"),
        ([{"column_id": "churn_risk"}] * 2, "sort order"),
        ("churn_risk", "sort order"),
        ([["churn_risk", "asc"]], "sort order"),
    ],
)
def test_a_sort_order_is_checked(value: Any, message: str) -> None:
    with pytest.raises(FilterError, match=message):
        parse_sort(value, ("churn_risk", "clv_12m"))
    assert parse_sort([], ("churn_risk",)) is None
    assert parse_sort([{"column_id": "clv_12m", "direction": "desc"}], ("clv_12m",)) == (
        "clv_12m",
        True,
    )


def test_predictions_export_gives_one_customer(
    predicted: pd.DataFrame, sqlite_engine: Engine
) -> None:
    customer = str(predicted["customer_id"].iloc[5])
    one = frame(sqlite_engine, "predictions", role="analyst", customer=customer)
    assert list(one["customer_id"]) == [customer]
    assert one["churn_risk"].iloc[0] == pytest.approx(predicted["churn_risk"].iloc[5], abs=1e-6)
    assert len(frame(sqlite_engine, "predictions", role="analyst")) == 297 + len(UNSCORED)


def test_prediction_models_export_lists_every_fit(predicted: Any, sqlite_engine: Engine) -> None:
    models = frame(sqlite_engine, "prediction_models", role="viewer")
    assert list(zip(models["run"], models["model"], strict=True)) == [
        ("predictions", "bg_nbd"),
        ("predictions", "gamma_gamma"),
        ("backtest", "bg_nbd"),
        ("backtest", "pareto_nbd"),
        ("backtest", "gamma_gamma"),
    ]
    assert list(models["serves"]) == [True, True, False, False, False]
    assert list(models["predicts"]) == ["orders", "order value", "orders", "orders", "order value"]
    assert models["fit_seconds"].iloc[0] == 5.817 and "alpha=30.63" in models["params"].iloc[0]


def test_the_member_download_follows_the_filter(app: Any, predicted: Any) -> None:
    params = parse_view(None, None, None, None).with_(high_value_high_risk=True).params("members")
    assert params["high_value_high_risk"] is True
    with as_user(app, ANALYST):
        data, _ = build_download(params, "csv")
        with pytest.raises(FilterError, match="high value, high risk"):
            build_download({**params, "high_value_high_risk": "yes"}, "csv")
    got = pd.read_csv(io.StringIO(data.decode()), comment="#", dtype={"customer_id": str})
    assert set(got["customer_id"]) == expected_at_risk(predicted)
    assert "# filter_high_value_high_risk: true" in data.decode()


# --- Overview -----------------------------------------------------------------------------------


def test_overview_shows_revenue_at_risk_and_its_definition(
    app: Any, predicted: Any, sqlite_engine: Engine
) -> None:
    overview = page("overview")
    risk = frame(sqlite_engine, "revenue_at_risk", role="viewer").iloc[0]
    with as_user(app, VIEWER):
        out = overview.update_risk(segments=None, snapshot=None)
        layout = overview.layout()
        seg = int(frame(sqlite_engine, "segments", role="viewer")["segment_id"].iloc[0])
        one = overview.update_risk(segments=[seg], snapshot=None)
    assert out["message"] is None
    assert out["risk-revenue_at_risk"] == f"{risk['revenue_at_risk']:,.2f}"
    assert out["risk-high_risk"] == f"{int(risk['high_risk_customers']):,}"
    assert out["risk-clv"] == f"{risk['clv_12m_total']:,.2f}"
    assert f"{len(UNSCORED)} not scored" in out["risk-clv-detail"]
    assert out["risk-high_value_high_risk"] == str(len(expected_at_risk(predicted)))
    assert out["overview-risk:params"]["export"] == "revenue_at_risk"
    chosen = frame(sqlite_engine, "revenue_at_risk", role="viewer", segments=(seg,)).iloc[0]
    assert one["risk-revenue_at_risk"] == f"{chosen['revenue_at_risk']:,.2f}"
    # The definition is on the card, in words (and in the ? and the boxes' tooltips).
    definition = next(c for c in walk(layout) if getattr(c, "id", None) == "risk-definition")
    shown = text_of(definition)
    assert "12 months" in shown and "at least 70%" in shown and "no order in the next 90" in shown
    assert "top 20%" in shown and "the dates do not" in shown


# --- Segments -----------------------------------------------------------------------------------


def test_segments_table_shows_predicted_value_and_high_risk_share(
    app: Any, predicted: Any, sqlite_engine: Engine
) -> None:
    with as_user(app, VIEWER):
        out = page("segments").update_segments(**view())
    segs = frame(sqlite_engine, "segments", role="viewer")
    rows = list(walk(out["segments-table"]))
    body = [r for r in rows if type(r).__name__ == "Tr"][1:]
    assert len(body) == len(segs)
    for row, seg in zip(body, segs.itertuples(), strict=True):
        shown = text_of(row)
        assert f"{seg.clv_12m_total:,.2f}" in shown
        assert f"{seg.clv_12m_mean:,.2f} each" in shown
        assert f"{seg.high_risk_share * 100:.1f}%" in shown
    head = text_of(next(r for r in rows if type(r).__name__ == "Thead"))
    assert "12-month value" in head and "High churn" in head


# --- Customers ----------------------------------------------------------------------------------


def test_member_list_shows_sorts_and_filters_by_predictions(
    app: Any, predicted: pd.DataFrame, sqlite_engine: Engine
) -> None:
    members = page("customers").members
    by_risk = [{"column_id": "churn_risk", "direction": "desc"}]
    risk = ["high-value-high-risk"]
    with as_user(app, ANALYST):
        first = members(segments=None, snapshot=None, page=0, sort=by_risk)
        second = members(segments=None, snapshot=None, page=1, sort=by_risk)
        chosen = members(segments=None, snapshot=None, page=0, sort=by_risk, risk=risk)
        bad = members(segments=None, snapshot=None, page=0, risk=["everyone"])
        junk = members(segments=None, snapshot=None, page=0, sort=[{"column_id": "x"}])
    every = frame(sqlite_engine, "members", role="analyst")
    ranked = every.sort_values("churn_risk", ascending=False, kind="stable")["customer_id"]
    shown = [r["customer_id"] for r in first["members-table"] + second["members-table"]]
    assert shown == list(ranked.iloc[:50])  # the whole list sorted, not one page
    row = first["members-table"][0]
    top = every.set_index("customer_id").loc[row["customer_id"]]
    assert row["churn_risk"] == top["churn_risk"] and row["clv_12m"] == top["clv_12m"]
    json.dumps(first["members-table"])  # what Dash sends: no missing values of pandas
    at_risk = expected_at_risk(predicted)
    rows = chosen["members-table"]
    assert {r["customer_id"] for r in rows} == at_risk
    assert [r["churn_risk"] for r in rows] == sorted((r["churn_risk"] for r in rows), reverse=True)
    assert chosen["message"].startswith(f"{len(at_risk)} customers in all segments; high value")
    assert "churn risk ≥ 70%" in chosen["message"] and "the top 20%" in chosen["message"]
    assert chosen["customers-members:params"]["high_value_high_risk"] is True
    assert first["customers-members:params"]["high_value_high_risk"] is False
    assert "not valid" in str(bad["message"].children)
    assert "sort" in str(junk["message"].children)
    with as_user(app, VIEWER), pytest.raises(Forbidden):
        members(segments=None, snapshot=None, page=0, sort=by_risk, risk=risk)


def test_member_list_layout_sorts_on_the_server_and_keeps_the_filter_in_the_address(
    app: Any, predicted: Any
) -> None:
    from webapp.filters import page_filter_id

    customers = page("customers")
    with as_user(app, ANALYST):
        layout = customers.layout(risk="high-value-high-risk")
        plain = customers.layout()
    table = next(c for c in walk(layout) if getattr(c, "id", None) == "members-table")
    assert (table.sort_action, table.page_action, table.sort_mode) == ("custom", "custom", "single")
    columns = {c["id"]: c for c in table.columns}
    assert columns["churn_risk"]["format"].to_plotly_json()["specifier"] == ".0%"
    assert columns["clv_12m"]["format"].to_plotly_json()["specifier"] == ",.2f"
    switch = [c for c in walk(layout) if getattr(c, "id", None) == page_filter_id("risk")]
    assert switch[0].value == ["high-value-high-risk"]
    off = [c for c in walk(plain) if getattr(c, "id", None) == page_filter_id("risk")]
    assert off[0].value == []


def test_lookup_shows_the_customer_risk_and_value(
    app: Any, predicted: pd.DataFrame, sqlite_engine: Engine
) -> None:
    lookup = page("customers").lookup
    at_risk = sorted(expected_at_risk(predicted))[0]
    row = predicted.set_index("customer_id").loc[at_risk]
    safe = predicted.sort_values("churn_risk").iloc[0]
    with as_user(app, ANALYST):
        out = lookup(clicks=1, customer=at_risk, snapshot=None)
        calm = lookup(clicks=1, customer=str(safe["customer_id"]), snapshot=None)
        earlier = lookup(clicks=1, customer=at_risk, snapshot=1)
    fact = next(c for c in walk(out["message"]) if getattr(c, "id", None) == "lookup-prediction")
    shown = text_of(fact)
    assert f"Churn risk {row['churn_risk'] * 100:.0f}% (high)" in shown
    assert f"12-month CLV {row['clv_12m']:,.2f} (top 20%)" in shown
    assert f"{row['expected_orders_90d']:.2f} orders expected" in shown
    calm_text = text_of(calm["message"])
    assert "(high)" not in calm_text and "Churn risk" in calm_text
    assert "Predictions off" in text_of(earlier["message"])  # snapshot 1 has none


# --- Model --------------------------------------------------------------------------------------


def test_model_page_shows_the_backtest_models_and_deciles(
    app: Any, predicted: Any, sqlite_engine: Engine
) -> None:
    update = page("model").update_predictions
    with as_user(app, VIEWER):
        out = update(snapshot=None, measure="orders")
        revenue = update(snapshot=None, measure="revenue")
        bad = update(snapshot=None, measure="profit")
    assert out["message"] is None
    backtest = text_of(out["model-backtest"])
    assert "BG/NBD (serves)" in backtest and "Pareto/NBD" in backtest
    assert "259 / 361 (-28%)" in backtest  # orders predicted / actual
    assert "0.84" in backtest and "1.22 vs 1.64 baseline" in backtest and "0.73" in backtest
    assert "5.3 s" in backtest and "13.8 s" in backtest  # the backtest's fit times
    assert "up to 2011-09-10" in backtest and "77 customers whose first order" in backtest
    assert "BG/NBD serves the predictions: best churn ranking" in backtest
    fits = text_of(out["model-fits"])
    assert "Gamma-Gamma" in fits and "5.8 s" in fits and "not scored: 2 with no positive" in fits
    deciles = frame(sqlite_engine, "calibration", role="viewer")
    bars = out["model-deciles"].data
    assert [t.name for t in bars] == ["Predicted orders", "Actual orders"]
    assert list(bars[1].y) == list(deciles["actual_orders"])
    points = out["model-calibration"].data[1]
    per_customer = deciles["actual_orders"] / deciles["customers"]
    assert list(points.y) == pytest.approx(list(per_customer), abs=1e-4)
    assert list(revenue["model-deciles"].data[1].y) == list(deciles["actual_revenue"])
    for chart, export in (
        ("model-backtest", "backtest"),
        ("model-fits", "prediction_models"),
        ("model-deciles", "calibration"),
        ("model-calibration", "calibration"),
    ):
        assert out[f"{chart}:params"]["export"] == export
    assert "measure must be one of" in str(bad["message"].children)


def test_model_page_of_a_snapshot_whose_predictions_failed_gives_the_reason(
    app: Any, dashboard: Any, sqlite_engine: Engine
) -> None:
    set_predictions_status(
        sqlite_engine, LATEST, PredictionStatus.FAILED, error="RuntimeError: did not converge"
    )
    with as_user(app, VIEWER):
        out = page("model").update_predictions(snapshot=None, measure=None)
    note = out["message"]
    assert note.color == "danger"
    assert "Predictions failed for snapshot 2: RuntimeError: did not converge" in str(note.children)
    assert "segments are unaffected" in str(note.children)


# --- Every page ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "label", "said"),
    [
        (PredictionStatus.PENDING, "Predictions pending", "Predictions pending"),
        (PredictionStatus.RUNNING, "Predictions pending", "Predictions pending"),
        (PredictionStatus.FAILED, "Predictions failed", "reason is on the Model page"),
        (PredictionStatus.OFF, "Predictions off", "CUSTSEG_PREDICTIONS=false"),
    ],
)
def test_pages_say_when_predictions_are_missing(
    app: Any, dashboard: Any, sqlite_engine: Engine, status: Any, label: str, said: str
) -> None:
    set_predictions_status(sqlite_engine, LATEST, status, error="LinAlgError: singular matrix")
    with as_user(app, ANALYST):
        risk = page("overview").update_risk(segments=None, snapshot=None)
        segs = page("segments").update_segments(**view())
        members = page("customers").members(segments=None, snapshot=None, page=0)
        model = page("model").update_predictions(snapshot=None, measure="orders")
    assert risk["risk-revenue_at_risk"] == label and risk["risk-clv"] == "–"
    assert said in str(risk["message"].children)
    table = text_of(segs["segments-table"])
    assert said in table and label.removeprefix("Predictions ") in table
    assert members["message"] == "297 customers in all segments."
    assert said in members["members-note"]
    note = str(model["message"].children)
    if status == PredictionStatus.FAILED:
        assert "LinAlgError: singular matrix" in note  # the Model page gives the reason
    else:
        assert said in note
    assert model["model-deciles"].layout.annotations[0].text == label
    assert text_of(model["model-backtest"]) == label and model["model-backtest:params"] is None
