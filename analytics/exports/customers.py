"""Exports of segments and their customers: sizes and values, profiles, members, a sample."""

from __future__ import annotations

import pandas as pd

from analytics.actions import explain
from analytics.exports.predictions import (
    PREDICTION_COLUMNS,
    high_value_high_risk,
    per_segment,
    rounded,
)
from analytics.exports.registry import Sources, export, in_segments
from analytics.exports.spec import Filters
from analytics.segmentation import PROFILE_FEATURES

SEGMENT_COLUMNS = (
    "segment_id",
    "name",
    "customers",
    "share",
    "gross_revenue",
    "revenue_share",
    "aov",
    "recency_days",
    "frequency",
    "monetary",
    "repeat_rate",
    "description",
    "action",
    "action_why",
    "clv_12m_total",
    "clv_12m_mean",
    "high_risk_share",
)
MEMBER_COLUMNS = (
    "customer_id",
    "segment_id",
    "recency_days",
    "frequency",
    "monetary",
    "aov",
    "tenure_days",
    "return_rate",
    "first_order_day",
    "last_order_day",
    "r_score",
    "f_score",
    "m_score",
    "lifecycle_stage",
    *PREDICTION_COLUMNS,
)
PROFILE_COLUMNS = (
    "segment_id",
    "name",
    "feature",
    "segment_mean",
    "segment_median",
    "centroid",
    "average",
    "ratio_to_average",
)
SAMPLE_COLUMNS = ("customer_id", "segment_id", "recency_days", "frequency", "monetary")
SAMPLE_PER_SEGMENT = 400


@export(
    "segments",
    reads=("segments", "predictions", "snapshot"),
    columns=SEGMENT_COLUMNS,
    row="segment",
)
def segments(src: Sources, f: Filters) -> pd.DataFrame:
    """Each segment's size, value, profile medians and suggested action (analysts' names over
    generated ones; `action_why`: the numbers that triggered the action), and its predicted
    12-month value and share at high churn risk (empty while predictions are pending)."""
    profiles = src.segments.merge(
        per_segment(src.predictions, src.snapshot), on="segment_id", how="left"
    )
    seg = in_segments(profiles, f.segments)
    bases = seg["action_basis"] if "action_basis" in seg else [None] * len(seg)
    seg = seg.assign(
        action=seg["action"] if "action" in seg else None,  # None: a snapshot before actions
        action_why=[explain(b) if isinstance(b, dict) else None for b in bases],
    )
    out = seg[list(SEGMENT_COLUMNS)].reset_index(drop=True)
    # Sums of cents and ratios, rounded as the other exports round them.
    out[["gross_revenue", "monetary"]] = out[["gross_revenue", "monetary"]].astype(float).round(2)
    ratios = ["share", "revenue_share", "repeat_rate"]
    out[ratios] = out[ratios].astype(float).round(6)
    out["aov"] = out["aov"].astype(float).round(4)
    out.attrs["provenance"] = {"predictions_status": src.snapshot.predictions_status}
    return out


def profile_table(customers: pd.DataFrame, segment_names: pd.DataFrame) -> pd.DataFrame:
    """Per segment × feature: the segment's mean and median against every customer's mean.

    `ratio_to_average` = segment mean / mean of all customers (2.0: twice the average).
    customers: one row per customer with the PROFILE_FEATURES; segment_names: segment_id, name,
    centroid (the K-Means centre in original units, for the model features).
    """
    features = [c for c in PROFILE_FEATURES if c in customers.columns]
    overall = customers[features].mean()
    g = customers.groupby("segment_id")[features]
    means, medians = g.mean(), g.median()
    rows = []
    for seg in segment_names.itertuples():
        if seg.segment_id not in means.index:
            continue
        centroid = seg.centroid if isinstance(seg.centroid, dict) else {}
        for feat in features:
            avg = float(overall[feat])
            mean = float(means.at[seg.segment_id, feat])
            rows.append(
                {
                    "segment_id": int(seg.segment_id),
                    "name": seg.name,
                    "feature": feat,
                    "segment_mean": round(mean, 4),
                    "segment_median": round(float(medians.at[seg.segment_id, feat]), 4),
                    "centroid": centroid.get(feat),
                    "average": round(avg, 4),
                    "ratio_to_average": round(mean / avg, 4) if avg else None,
                }
            )
    return pd.DataFrame(rows, columns=list(PROFILE_COLUMNS))


@export(
    "profiles", reads=("profiles", "segments"), columns=PROFILE_COLUMNS, row="segment × feature"
)
def profiles(src: Sources, f: Filters) -> pd.DataFrame:
    """Each segment's mean and median of every feature against the average customer."""
    out = in_segments(src.profiles, f.segments).copy()
    names = dict(zip(src.segments["segment_id"], src.segments["name"], strict=True))
    out["name"] = out["segment_id"].map(names)  # today's names: analysts may have renamed
    return out.reset_index(drop=True)


def sample_customers(
    customers: pd.DataFrame, per_segment: int = SAMPLE_PER_SEGMENT, seed: int = 0
) -> pd.DataFrame:
    """A fixed-seed sample of up to `per_segment` customers of each segment, for a scatter."""
    c = customers.sort_values("customer_id")
    parts = [
        grp.sample(n=min(per_segment, len(grp)), random_state=seed)
        for _, grp in c.groupby("segment_id", sort=True)
    ]
    if not parts:
        return pd.DataFrame(columns=list(SAMPLE_COLUMNS))
    cols = list(SAMPLE_COLUMNS)
    return pd.concat(parts)[cols].sort_values(["segment_id", "customer_id"]).reset_index(drop=True)


@export(
    "customer_sample",
    reads=("customer_sample",),
    columns=SAMPLE_COLUMNS,
    row=f"customer (≤ {SAMPLE_PER_SEGMENT} per segment, fixed seed)",
    role="analyst",
)
def customer_sample(src: Sources, f: Filters) -> pd.DataFrame:
    """A fixed sample of each segment's customers in recency, frequency and spend."""
    return in_segments(src.customer_sample, f.segments).reset_index(drop=True)


@export(
    "members",
    reads=("customers", "predictions", "snapshot"),
    columns=MEMBER_COLUMNS,
    row="customer",
    role="analyst",
    options=("stages", "high_value_high_risk"),
)
def members(src: Sources, f: Filters) -> pd.DataFrame:
    """Every customer of the segments (and stages) with their features, RFM scores and
    lifecycle stage as of the snapshot, and their predictions (empty while pending); with
    --high-value-high-risk only those at high churn risk among the most valuable."""
    customers = in_segments(src.customers, f.segments)
    if f.stages:
        customers = customers[customers["lifecycle_stage"].isin(f.stages)]
    if f.high_value_high_risk:
        preds = src.predictions
        chosen = preds.loc[high_value_high_risk(preds, src.snapshot), "customer_id"]
        customers = customers[customers["customer_id"].isin(chosen)]
    out = member_rows(customers, src.predictions)
    out.attrs["provenance"] = {"predictions_status": src.snapshot.predictions_status}
    return out


def member_rows(customers: pd.DataFrame, predictions: pd.DataFrame) -> pd.DataFrame:
    """The `members` columns of some customers (with their predictions), by customer id."""
    features = [c for c in MEMBER_COLUMNS if c not in PREDICTION_COLUMNS]
    out = customers[features]
    if not out["customer_id"].is_monotonic_increasing:
        out = out.sort_values("customer_id")
    preds = predictions[["customer_id", *PREDICTION_COLUMNS]]
    if len(out) * 20 < len(preds):  # a page of the member list: its own rows only, not a
        # join against (and rounding of) every customer's predictions on each page turn
        preds = preds[preds["customer_id"].isin(out["customer_id"])]
    out = out.merge(rounded(preds), on="customer_id", how="left")
    for day in ("first_order_day", "last_order_day"):  # kept as Arrow dates: `datetime.date`
        if isinstance(out[day].dtype, pd.ArrowDtype):
            out[day] = out[day].astype(object)
    return out.reset_index(drop=True)
