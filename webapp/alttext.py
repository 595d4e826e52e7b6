"""Text alternatives of the charts: a sentence saying what a chart shows, and its data as a table.

Both come from the export frame the chart draws (the one its download holds), never from the
figure, so the three cannot disagree. Pure: a frame and the segments' names in, text or an HTML
table out; `webapp/pagekit.py` gives every chart of every page its alternative
(docs/ACCESSIBILITY.md, "Charts").
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
from dash import html

from analytics.aggregates import GONE

Names = Callable[[int], str]
Summary = Callable[[pd.DataFrame, Names], str]

ROW_CAP = 25  # rows of a data table; the download holds them all
# Prose columns (descriptions, actions and their reasons) stay out of the tables: the pages show
# them in full beside the charts. A segment's name is in its segment column.
PROSE = frozenset({"description", "action", "action_rule", "action_why"})
FEATURES = {
    "recency_days": "days since the last order",
    "frequency": "number of orders",
    "monetary": "spend",
    "aov": "AOV",
    "tenure_days": "tenure",
    "return_rate": "return rate",
    "category_breadth": "number of categories",
}
STAGE_SIDES = {"(new)": "new customers", "(gone)": "gone customers"}
SEGMENT_COLUMNS = frozenset({"segment_id", "from_segment", "to_segment"})
FRACTIONS = ("share", "rate", "retention", "chosen_share")
LABELS = {
    "segment_id": "Segment",
    "from_segment": "From segment",
    "to_segment": "To segment",
    "aov": "AOV",
    "months_since_first": "Months since first order",
    "p05": "5th percentile",
    "p95": "95th percentile",
    "q1": "Lower quartile",
    "q3": "Upper quartile",
    "k": "k",
}


def _pct(value: float, digits: int = 0) -> str:
    return f"{value * 100:.{digits}f}%"


def _money(value: float) -> str:
    return f"{value:,.2f}"


def _day(value: Any) -> str:
    if isinstance(value, datetime | pd.Timestamp):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _flow(name: Names, segment_id: int, side: str) -> str:
    if segment_id == GONE:
        return "new customers" if side == "from" else "gone customers"
    return name(segment_id)


# --- one sentence per export ------------------------------------------------------------------


def _sales(frame: pd.DataFrame, name: Names) -> str:
    drawn = frame[frame["segment_id"] != 0]
    total = float(drawn["gross_revenue"].sum())
    if drawn.empty or total <= 0:
        return "No orders in the chosen period and segments."
    by_segment = drawn.groupby("segment_id")["gross_revenue"].sum().sort_values(ascending=False)
    top = int(by_segment.index[0])
    periods = sorted(drawn["period"].unique())
    if len(by_segment) == 1:
        per = drawn.groupby("period")["gross_revenue"].sum()
        text = (
            f"{name(top)}: {_money(total)} gross revenue from {_day(periods[0])} to "
            f"{_day(periods[-1])}"
        )
        if len(periods) > 1:
            text += (
                f", {_money(per.iloc[-1])} in the last period against {_money(per.iloc[0])} in "
                "the first"
            )
        return text + "."
    text = (
        f"{name(top)} bring the most gross revenue: {_pct(by_segment.iloc[0] / total)} of "
        f"{_money(total)} from {_day(periods[0])} to {_day(periods[-1])}"
    )
    if len(periods) > 1 and len(by_segment) > 1:
        shares = []
        for period in (periods[0], periods[-1]):
            part = drawn[drawn["period"] == period]
            whole = float(part["gross_revenue"].sum())
            mine = float(part.loc[part["segment_id"] == top, "gross_revenue"].sum())
            shares.append(mine / whole if whole else 0.0)
        change = round((shares[1] - shares[0]) * 100)
        trend = f"up {change} points" if change > 0 else f"down {-change} points" if change else ""
        text += (
            f"; {_pct(shares[1])} in the last period, {trend} on the first"
            if trend
            else f"; {_pct(shares[1])} in the last period, as in the first"
        )
    return text + "."


def _segments(frame: pd.DataFrame, name: Names) -> str:
    if frame.empty:
        return "No segments match the filters."
    top = frame.sort_values("revenue_share", ascending=False).iloc[0]
    text = (
        f"{name(int(top['segment_id']))} hold {_pct(top['revenue_share'])} of gross revenue with "
        f"{_pct(top['share'])} of the customers"
    )
    largest = frame.sort_values("share", ascending=False).iloc[0]
    if int(largest["segment_id"]) != int(top["segment_id"]):
        text += (
            f"; {name(int(largest['segment_id']))} are the most customers "
            f"({_pct(largest['share'])}) and bring {_pct(largest['revenue_share'])} of it"
        )
    return text + f" ({len(frame)} segments)."


def _profiles(frame: pd.DataFrame, name: Names) -> str:
    ratios = frame.dropna(subset=["ratio_to_average"])
    ratios = ratios[ratios["ratio_to_average"] > 0]
    if ratios.empty:
        return "No segments match the filters."
    far = ratios.loc[ratios["ratio_to_average"].map(lambda r: abs(math.log(r))).idxmax()]
    ratio = float(far["ratio_to_average"])
    how = f"{ratio:.1f}" if ratio >= 1 else f"{ratio:.2f}"
    feature = FEATURES.get(str(far["feature"]), str(far["feature"]).replace("_", " "))
    return (
        f"Furthest from the average customer: {name(int(far['segment_id']))}, whose {feature} "
        f"is {how} times the average."
    )


def _customer_sample(frame: pd.DataFrame, name: Names) -> str:
    if frame.empty:
        return "No customers in the sample."
    medians = frame.groupby("segment_id")[["recency_days", "frequency", "monetary"]].median()
    best = int(medians["monetary"].idxmax())
    return (
        f"A sample of {len(frame):,} customers of {len(medians)} segments; {name(best)} spend the "
        f"most (median {_money(medians.loc[best, 'monetary'])}, "
        f"{medians.loc[best, 'frequency']:,.0f} orders, last order "
        f"{medians.loc[best, 'recency_days']:,.0f} days ago)."
    )


def _retention(frame: pd.DataFrame, name: Names) -> str:
    month1 = frame[frame["months_since_first"] == 1]
    if month1.empty or month1["cohort_size"].sum() == 0:
        return f"{frame['cohort'].nunique() if len(frame) else 0} cohorts; none has a month 1 yet."
    rate = month1["customers"].sum() / month1["cohort_size"].sum()
    best = month1.sort_values("retention", ascending=False).iloc[0]
    return (
        f"{_pct(rate)} of customers ordered again in the month after their first order "
        f"({month1['cohort'].nunique()} cohorts); best cohort {_day(best['cohort'])} at "
        f"{_pct(best['retention'])}."
    )


def _retention_trend(frame: pd.DataFrame, name: Names) -> str:
    if frame.empty:
        return "No cohort has reached this month yet."
    month = int(frame["months_since_first"].iloc[0])
    by_segment = frame.groupby("segment_id")[["customers", "cohort_size"]].sum()
    by_segment = by_segment[by_segment["cohort_size"] > 0]
    if by_segment.empty:
        return "No cohort has reached this month yet."
    rates = (by_segment["customers"] / by_segment["cohort_size"]).sort_values(ascending=False)
    top = name(int(rates.index[0]))
    text = f"Month-{month} retention is highest for {top} ({_pct(rates.iloc[0])})"
    if len(rates) > 1:
        text += f" and lowest for {name(int(rates.index[-1]))} ({_pct(rates.iloc[-1])})"
    return text + f", over {frame['cohort'].nunique()} cohorts."


def _repeat_rate(frame: pd.DataFrame, name: Names) -> str:
    shown = frame[frame["customers"] > 0].sort_values("repeat_rate", ascending=False)
    if shown.empty:
        return "No customers in the chosen period and segments."
    top, low = shown.iloc[0], shown.iloc[-1]
    text = (
        f"{name(int(top['segment_id']))} repeat most: {_pct(top['repeat_rate'])} of "
        f"{int(top['customers']):,} customers ordered twice or more"
    )
    if len(shown) > 1:
        text += f"; {name(int(low['segment_id']))} least, {_pct(low['repeat_rate'])}"
    return text + "."


def _aov(frame: pd.DataFrame, name: Names) -> str:
    shown = frame[frame["orders"] > 0].sort_values("median", ascending=False)
    if shown.empty:
        return "No orders in the chosen period and segments."
    top = shown.iloc[0]
    text = (
        f"{name(int(top['segment_id']))} have the highest median order value, "
        f"{_money(top['median'])} (mean {_money(top['mean'])})"
    )
    if len(shown) > 1:
        low = shown.iloc[-1]
        text += f"; {name(int(low['segment_id']))} the lowest, {_money(low['median'])}"
    return text + "."


def _migration(frame: pd.DataFrame, name: Names) -> str:
    if frame.empty:
        return "Nobody moved between these snapshots."
    earlier = frame[frame["from_segment"] != GONE]
    stayed = earlier.loc[earlier["from_segment"] == earlier["to_segment"], "customers"].sum()
    text = ""
    if earlier["customers"].sum():
        share = _pct(stayed / earlier["customers"].sum())
        text = f"{share} of earlier customers stayed in their segment"
    moves = frame[frame["from_segment"] != frame["to_segment"]]
    if not moves.empty:
        big = moves.sort_values("customers", ascending=False).iloc[0]
        move = (
            f"the largest move: {int(big['customers']):,} customers from "
            f"{_flow(name, int(big['from_segment']), 'from')} to "
            f"{_flow(name, int(big['to_segment']), 'to')}"
        )
        text = f"{text}; {move}" if text else move[0].upper() + move[1:]
    return text + "."


def _stage_migration(frame: pd.DataFrame, name: Names) -> str:
    if frame.empty:
        return "Nobody moved between the stages of these snapshots."
    known = frame[(frame["from_stage"] != "(new)") & (frame["to_stage"] != "(gone)")]
    earlier = frame.loc[frame["from_stage"] != "(new)", "customers"].sum()
    stayed = known.loc[known["from_stage"] == known["to_stage"], "customers"].sum()
    moves = frame[frame["from_stage"] != frame["to_stage"]]
    text = f"{_pct(stayed / earlier)} of earlier customers stayed in their stage" if earlier else ""
    if not moves.empty:
        big = moves.sort_values("customers", ascending=False).iloc[0]
        source = STAGE_SIDES.get(big["from_stage"], big["from_stage"])
        target = STAGE_SIDES.get(big["to_stage"], big["to_stage"])
        move = f"the largest move: {int(big['customers']):,} customers from {source} to {target}"
        text = f"{text}; {move}" if text else move[0].upper() + move[1:]
    return text + "."


def _stage_matrix(frame: pd.DataFrame, name: Names) -> str:
    if frame.empty:
        return "No lifecycle stages for these segments."
    parts = []
    sizes = frame.groupby("segment_id")["customers"].sum().sort_values(ascending=False)
    for sid in sizes.index[:3]:
        mine = frame[frame["segment_id"] == sid].sort_values("customers", ascending=False).iloc[0]
        parts.append(f"{name(int(sid))} mostly {mine['stage']} ({_pct(mine['share_of_segment'])})")
    return "Largest stage of each segment: " + "; ".join(parts) + "."


def _scores(frame: pd.DataFrame, name: Names) -> str:
    if frame.empty:
        return "This snapshot was fitted with a fixed k: no scores to compare."
    chosen = frame[frame["chosen"].astype(bool)]
    best = frame.loc[frame["silhouette"].idxmax()]
    text = f"Scores for k = {int(frame['k'].min())} to {int(frame['k'].max())}"
    if not chosen.empty:
        c = chosen.iloc[0]
        text += f"; k = {int(c['k'])} was chosen (silhouette {c['silhouette']:.3f})"
    return text + f"; the best silhouette is {best['silhouette']:.3f} at k = {int(best['k'])}."


def _k_previews(frame: pd.DataFrame, name: Names) -> str:
    if frame.empty:
        return "No previews: this snapshot was made before them."
    ks = sorted(frame["k"].unique())
    chosen = frame[frame["chosen"].astype(bool)]
    text = f"The clusters of each k from {int(ks[0])} to {int(ks[-1])}"
    if not chosen.empty:
        top = chosen.sort_values("gross_revenue", ascending=False).iloc[0]
        text += (
            f"; with the chosen k = {int(top['k'])}, {top['name']} bring the most revenue with "
            f"{_pct(top['share'])} of the customers"
        )
    return text + "."


def _campaign_daily(frame: pd.DataFrame, name: Names) -> str:
    if frame.empty:
        return "No results yet."
    last = frame[frame["day"] == frame["day"].max()].set_index("group")["revenue_per_customer"]
    if not {"treatment", "holdout"} <= set(last.index):
        return "No results yet."
    gap = float(last["treatment"] - last["holdout"])
    return (
        f"By day {int(frame['day'].max())}: {_money(last['treatment'])} revenue per customer in "
        f"the treatment group against {_money(last['holdout'])} in the holdout, a gap of "
        f"{_money(gap)}."
    )


SUMMARIES: dict[str, Summary] = {
    "sales": _sales,
    "segments": _segments,
    "profiles": _profiles,
    "customer_sample": _customer_sample,
    "retention": _retention,
    "retention_trend": _retention_trend,
    "repeat_rate": _repeat_rate,
    "aov_distribution": _aov,
    "migration": _migration,
    "stage_migration": _stage_migration,
    "stage_matrix": _stage_matrix,
    "scores": _scores,
    "k_previews": _k_previews,
    "campaign_daily": _campaign_daily,
}


def summary(kind: str, frame: pd.DataFrame, name: Names) -> str:
    """One sentence on what the chart drawn from `frame` (export or frame `kind`) shows."""
    describe = SUMMARIES.get(kind)
    if describe is None:
        return f"{len(frame):,} rows: see the data table."
    try:
        text = describe(frame, name)
        return text[:1].upper() + text[1:]
    except (KeyError, ValueError, TypeError, ZeroDivisionError, IndexError):
        # A frame of an unexpected shape (a later export version): still an honest sentence.
        return f"{len(frame):,} rows: see the data table."


# --- the data table ---------------------------------------------------------------------------


def _header(column: str) -> str:
    return LABELS.get(column, column.replace("_", " ").capitalize())


def _cell(column: str, value: Any, name: Names) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if column in SEGMENT_COLUMNS:
        side = "to" if column == "to_segment" else "from"
        return _flow(name, int(value), side)
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        number = float(value)
        if any(word in column for word in FRACTIONS):
            return _pct(number, 1)
        return f"{number:,.2f}"
    if isinstance(value, date | datetime | pd.Timestamp):
        return _day(value)
    return str(value)


def _formatter(column: str, values: pd.Series, name: Names) -> Callable[[Any], str]:
    """How the cells of `column` are written: chosen once per column from its dtype (a plain
    number column is the common case, and the tables are rebuilt on every filter change);
    `_cell` decides per value for the rest."""
    dtype = values.dtype
    if column in SEGMENT_COLUMNS or not (
        pd.api.types.is_integer_dtype(dtype) or pd.api.types.is_float_dtype(dtype)
    ):
        return lambda value: _cell(column, value, name)
    if pd.api.types.is_integer_dtype(dtype):
        return lambda value: "–" if pd.isna(value) else f"{int(value):,}"
    if any(word in column for word in FRACTIONS):
        return lambda value: "–" if pd.isna(value) else _pct(float(value), 1)
    return lambda value: "–" if pd.isna(value) else f"{float(value):,.2f}"


def table(frame: pd.DataFrame, name: Names, cap: int = ROW_CAP) -> html.Div:
    """`frame` as an HTML table with its column headers (prose and empty columns left out), at
    most `cap` rows, and a line saying how many there are."""
    shown = frame.head(cap)
    filled = frame.notna().any()
    columns = [
        c
        for c in frame.columns
        if c not in PROSE
        and not (c == "name" and "segment_id" in frame.columns)
        and filled[c]
        and not (shown[c].dtype == object and any(_nested(v) for v in shown[c].tolist()))
    ]
    head = html.Thead(html.Tr([html.Th(_header(c), scope="col") for c in columns]))
    cells = [list(map(_formatter(c, shown[c], name), shown[c].tolist())) for c in columns]
    rows = zip(*cells, strict=True) if cells else ([] for _ in range(len(shown)))
    body = html.Tbody([html.Tr([html.Td(text) for text in row]) for row in rows])
    note = (
        f"All {len(frame):,} rows."
        if len(frame) <= cap
        else f"The first {cap} of {len(frame):,} rows; the download holds them all."
    )
    return html.Div(
        [
            html.Table([head, body], className="table table-sm table-striped mb-1"),
            html.P(note, className="text-muted mb-0"),
        ]
    )


def _nested(value: Any) -> bool:
    return isinstance(value, dict | list | tuple)
