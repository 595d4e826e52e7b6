"""Figure builders: an export frame in, a Plotly figure out. Pure; the pages call them.

Each builder draws exactly the frame it is given, so a chart's download (the same frame from
`db.snapshots.export_frame`) holds exactly what the chart shows. Segments keep their colour
(`snapshot_segments.color`, fixed per segment id) in every chart.
"""

from __future__ import annotations

import html
import math

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from analytics.aggregates import GONE

OTHER_COLOR = "#9AA0A6"  # customers without a segment, new or gone customers
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"
FEATURE_LABELS = {
    "recency_days": "Recency (days)",
    "frequency": "Orders",
    "monetary": "Spend",
    "aov": "AOV",
    "tenure_days": "Tenure (days)",
    "return_rate": "Return rate",
    "category_breadth": "Categories",
}


# A small template in the spirit of "plotly_white": the stock templates style every trace type
# and cost ~10 ms to build per figure, more than the rest of a callback at any data size.
_AXIS = {
    "gridcolor": "#EBF0F8",
    "zerolinecolor": "#EBF0F8",
    "linecolor": "#EBF0F8",
    "zerolinewidth": 2,
    "automargin": True,
    "title": {"standoff": 12},
}
pio.templates["custseg"] = go.layout.Template(
    layout={
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        "xaxis": _AXIS,
        "yaxis": _AXIS,
        "hoverlabel": {"align": "left"},
        "colorway": ["#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#B279A2"],
    }
)
pio.templates.default = "custseg"


class Palette:
    """Names and colours of a snapshot's segments (analysts' names included)."""

    def __init__(self, segments: pd.DataFrame) -> None:
        ids = [int(i) for i in segments.get("segment_id", [])]
        self.names: dict[int, str] = dict(zip(ids, segments.get("name", []), strict=True))
        self.colors: dict[int, str] = dict(zip(ids, segments.get("color", []), strict=True))
        self.order: list[int] = ids  # by revenue, largest first

    def name(self, segment_id: int) -> str:
        if segment_id in self.names:
            return self.names[segment_id]
        return "No segment (returns only)" if segment_id == 0 else f"Segment {segment_id}"

    def text(self, segment_id: int) -> str:
        """The name for a figure: Plotly reads some HTML in labels (links, styles), so names an
        analyst typed are escaped."""
        return html.escape(self.name(segment_id), quote=False)

    def color(self, segment_id: int) -> str:
        return self.colors.get(segment_id, OTHER_COLOR)

    def ordered(self, ids: object) -> list[int]:
        present = {int(i) for i in ids}  # type: ignore[attr-defined]
        known = [i for i in self.order if i in present]
        return known + sorted(present - set(known))


def _base(fig: go.Figure, height: int = 360, **layout: object) -> go.Figure:
    layout.setdefault("margin", {"l": 10, "r": 10, "t": 30, "b": 10})
    fig.update_layout(
        height=height,
        font={"family": FONT, "size": 12},
        legend={"orientation": "h", "y": -0.15, "x": 0},
        hoverlabel={"namelength": -1},
        **layout,
    )
    return fig


def empty_figure(message: str, height: int = 360) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(
        text=message,
        showarrow=False,
        x=0.5,
        y=0.5,
        xref="paper",
        yref="paper",
        font={"size": 14, "color": "#6c757d"},
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _base(fig, height)


def _drawn(sales: pd.DataFrame) -> pd.DataFrame:
    """Segment 0 holds the returns of customers without a positive order: it has no gross
    revenue or orders to draw (its net revenue is in the download)."""
    zero = sales["segment_id"] == 0
    if zero.any() and not sales.loc[zero, "orders"].any():
        return sales[~zero]
    return sales


def revenue_trend(sales: pd.DataFrame, pal: Palette, granularity: str) -> go.Figure:
    """Gross revenue per period, stacked by segment (the `sales` export)."""
    sales = _drawn(sales)
    if sales.empty:
        return empty_figure("No orders match the filters.")
    fig = go.Figure()
    for sid in pal.ordered(sales["segment_id"].unique()):
        part = sales[sales["segment_id"] == sid]
        fig.add_trace(
            go.Scatter(
                x=part["period"],
                y=part["gross_revenue"],
                name=pal.text(sid),
                mode="lines",
                stackgroup="revenue",
                line={"color": pal.color(sid), "width": 1},
                hovertemplate="%{x|%Y-%m-%d}: %{y:,.2f}<extra>%{fullData.name}</extra>",
            )
        )
    return _base(fig, yaxis_title=f"Gross revenue per {granularity}", yaxis_tickformat=",.0f")


def segment_shares(segments: pd.DataFrame, pal: Palette) -> go.Figure:
    """Share of customers and of revenue per segment; a click on a bar selects the segment."""
    if segments.empty:
        return empty_figure("No segments match the filters.")
    seg = segments.iloc[::-1]  # largest revenue at the top
    names = [pal.text(int(i)) for i in seg["segment_id"]]
    ids = [int(i) for i in seg["segment_id"]]
    fig = go.Figure()
    for column, label, opacity in (
        ("share", "Customers", 0.55),
        ("revenue_share", "Revenue", 1.0),
    ):
        fig.add_trace(
            go.Bar(
                y=names,
                x=seg[column],
                name=label,
                orientation="h",
                marker={"color": [pal.color(i) for i in ids], "opacity": opacity},
                customdata=ids,
                text=[f"{v:.0%}" for v in seg[column]],
                textposition="outside",
                cliponaxis=False,
                hovertemplate=f"%{{y}}<br>{label}: %{{x:.1%}}<extra></extra>",
            )
        )
    return _base(
        fig,
        height=max(260, 70 * len(seg) + 60),
        barmode="group",
        xaxis_tickformat=".0%",
        xaxis_range=[0, min(1.0, float(seg[["share", "revenue_share"]].max().max()) * 1.18)],
        xaxis_title="Share of customers (light) and of gross revenue (dark)",
        showlegend=False,
        clickmode="event",
    )


def profile_heatmap(profiles: pd.DataFrame, pal: Palette) -> go.Figure:
    """How each segment's mean differs from the average customer's, feature by feature."""
    if profiles.empty:
        return empty_figure("No segments match the filters.")
    ids = pal.ordered(profiles["segment_id"].unique())
    features = list(dict.fromkeys(profiles["feature"]))
    table = profiles.pivot_table(
        index="segment_id", columns="feature", values="ratio_to_average", aggfunc="first"
    ).reindex(index=ids, columns=features)
    features = [f for f in features if table[f].notna().any()]  # e.g. no categories imported
    table = table[features]
    means = profiles.pivot_table(
        index="segment_id", columns="feature", values="segment_mean", aggfunc="first"
    ).reindex(index=ids, columns=features)
    z = [[math.log2(v) if v and v > 0 else None for v in row] for row in table.to_numpy()]
    text = [[f"{v:.2g}×" if pd.notna(v) else "–" for v in row] for row in table.to_numpy().tolist()]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[FEATURE_LABELS.get(f, f) for f in features],
            y=[pal.text(i) for i in ids],
            text=text,
            texttemplate="%{text}",
            customdata=means.to_numpy(),
            colorscale="RdBu",
            zmid=0,
            zmin=-3,
            zmax=3,
            colorbar={
                "title": "× average",
                "tickvals": [-3, -1, 0, 1, 3],
                "ticktext": ["⅛×", "½×", "1×", "2×", "8×"],
            },
            hovertemplate="%{y}<br>%{x}: %{text} the average (mean %{customdata:,.2f})"
            "<extra></extra>",
        )
    )
    return _base(fig, height=max(240, 48 * len(ids) + 90), yaxis_autorange="reversed")


def customer_scatter(sample: pd.DataFrame, pal: Palette) -> go.Figure:
    """Sampled customers in recency / frequency / monetary space, one colour per segment.

    SVG markers, not WebGL: a few thousand points draw fast enough, and WebGL is missing in
    some browsers (virtual machines, remote desktops, headless ones).
    """
    if sample.empty:
        return empty_figure("No customers match the filters.")
    pairs = (
        ("recency_days", "frequency"),
        ("recency_days", "monetary"),
        ("frequency", "monetary"),
    )
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.07)
    traces, cols = [], []
    for sid in pal.ordered(sample["segment_id"].unique()):
        part = sample[sample["segment_id"] == sid]
        for col, (x, y) in enumerate(pairs, start=1):
            traces.append(
                go.Scatter(
                    x=part[x].to_numpy(),
                    y=part[y].to_numpy(),
                    mode="markers",
                    name=pal.text(sid),
                    legendgroup=str(sid),
                    showlegend=col == 1,
                    marker={"color": pal.color(sid), "size": 5, "opacity": 0.6},
                    text=[html.escape(str(c), quote=False) for c in part["customer_id"]],
                    hovertemplate=f"customer %{{text}}<br>{FEATURE_LABELS[x]}: %{{x:,}}"
                    f"<br>{FEATURE_LABELS[y]}: %{{y:,.2f}}<extra>%{{fullData.name}}</extra>",
                )
            )
            cols.append(col)
    fig.add_traces(traces, rows=[1] * len(traces), cols=cols)
    for col, (x, y) in enumerate(pairs, start=1):
        log_x = {"type": "log", "dtick": 1} if x != "recency_days" else {}
        fig.update_xaxes(title_text=FEATURE_LABELS[x], row=1, col=col, **log_x)
        fig.update_yaxes(title_text=FEATURE_LABELS[y], type="log", dtick=1, row=1, col=col)
    return _base(fig, height=380)


def retention_heatmap(retention: pd.DataFrame) -> go.Figure:
    """Cohort month x months since first order: share of the cohort that ordered again."""
    if retention.empty:
        return empty_figure("No cohorts in the selected range.")
    table = retention.pivot_table(
        index="cohort", columns="months_since_first", values="retention", aggfunc="sum"
    ).sort_index()
    sizes = retention.drop_duplicates("cohort").set_index("cohort")["cohort_size"]
    labels = [f"{pd.Timestamp(c):%Y-%m} ({int(sizes[c]):,})" for c in table.index]
    z = table.to_numpy()
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[int(m) for m in table.columns],
            y=labels,
            text=[[f"{v:.0%}" if pd.notna(v) else "" for v in row] for row in z.tolist()],
            texttemplate="%{text}",
            colorscale="Blues",
            zmin=0,
            zmax=max(0.5, float(pd.Series(z[:, 1:].ravel()).max()) if z.shape[1] > 1 else 1.0),
            colorbar={"title": "Retention", "tickformat": ".0%"},
            hovertemplate="Cohort %{y}<br>month %{x}: %{z:.1%}<extra></extra>",
        )
    )
    return _base(
        fig,
        height=max(300, 24 * len(labels) + 100),
        xaxis_title="Months since first order",
        yaxis_title="Cohort (size)",
        yaxis_autorange="reversed",
        xaxis_dtick=1,
    )


def retention_trend(trend: pd.DataFrame, pal: Palette, month: int) -> go.Figure:
    """Month-m retention of each cohort, one line per segment."""
    if trend.empty:
        return empty_figure(f"No cohort is old enough for month {month} in the selected range.")
    fig = go.Figure()
    for sid in pal.ordered(trend["segment_id"].unique()):
        part = trend[trend["segment_id"] == sid]
        fig.add_trace(
            go.Scatter(
                x=part["cohort"],
                y=part["retention"],
                name=pal.text(sid),
                mode="lines+markers",
                line={"color": pal.color(sid)},
                customdata=part["cohort_size"],
                hovertemplate="cohort %{x|%Y-%m} (%{customdata:,} customers): %{y:.1%}"
                "<extra>%{fullData.name}</extra>",
            )
        )
    return _base(
        fig, yaxis_tickformat=".0%", yaxis_title=f"Month-{month} retention", xaxis_title="Cohort"
    )


def repeat_rate_bars(rates: pd.DataFrame, pal: Palette) -> go.Figure:
    if rates.empty:
        return empty_figure("No orders match the filters.")
    ids = pal.ordered(rates["segment_id"])
    r = rates.set_index("segment_id").loc[ids]
    fig = go.Figure(
        go.Bar(
            x=[pal.text(i) for i in ids],
            y=r["repeat_rate"],
            marker_color=[pal.color(i) for i in ids],
            text=[f"{v:.0%}" for v in r["repeat_rate"]],
            textposition="outside",
            customdata=r[["repeat_customers", "customers"]].to_numpy(),
            hovertemplate="%{x}: %{y:.1%} (%{customdata[0]:,} of %{customdata[1]:,})"
            "<extra></extra>",
        )
    )
    return _base(fig, yaxis_tickformat=".0%", yaxis_title="Repeat purchase rate", showlegend=False)


def sales_over_time(sales: pd.DataFrame, pal: Palette, granularity: str) -> go.Figure:
    """Revenue, orders and AOV per period, one line per segment, sharing the time axis."""
    sales = _drawn(sales)
    if sales.empty:
        return empty_figure("No orders match the filters.", height=620)
    rows = (
        ("gross_revenue", "Gross revenue", ",.0f"),
        ("orders", "Orders", ",d"),
        ("aov", "AOV", ",.2f"),
    )
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.05)
    traces, at = [], []
    for sid in pal.ordered(sales["segment_id"].unique()):
        part = sales[sales["segment_id"] == sid]
        for r, (col, label, fmt) in enumerate(rows, start=1):
            traces.append(
                go.Scatter(
                    x=part["period"].to_numpy(),
                    y=part[col].to_numpy(),
                    name=pal.text(sid),
                    legendgroup=str(sid),
                    showlegend=r == 1,
                    mode="lines",
                    line={"color": pal.color(sid)},
                    hovertemplate=f"%{{x|%Y-%m-%d}} {label}: %{{y:{fmt}}}"
                    "<extra>%{fullData.name}</extra>",
                )
            )
            at.append(r)
    fig.add_traces(traces, rows=at, cols=[1] * len(at))
    for r, (_, label, fmt) in enumerate(rows, start=1):
        fig.update_yaxes(title_text=label, tickformat=fmt.replace("d", ""), row=r, col=1)
    fig.update_xaxes(title_text=f"Period ({granularity})", row=3, col=1)
    return _base(fig, height=620)


def revenue_share(sales: pd.DataFrame, pal: Palette) -> go.Figure:
    """Each segment's share of each period's gross revenue."""
    sales = _drawn(sales)
    if sales.empty:
        return empty_figure("No orders match the filters.")
    fig = go.Figure()
    for sid in pal.ordered(sales["segment_id"].unique()):
        part = sales[sales["segment_id"] == sid]
        fig.add_trace(
            go.Scatter(
                x=part["period"],
                y=part["revenue_share"],
                name=pal.text(sid),
                mode="lines",
                stackgroup="share",
                line={"color": pal.color(sid), "width": 1},
                hovertemplate="%{x|%Y-%m-%d}: %{y:.1%}<extra>%{fullData.name}</extra>",
            )
        )
    return _base(fig, yaxis_tickformat=".0%", yaxis_title="Share of gross revenue")


def aov_boxes(dist: pd.DataFrame, pal: Palette) -> go.Figure:
    """Order values per segment: box from the quartiles, whiskers at the 5th/95th percentile."""
    if dist.empty:
        return empty_figure("No orders match the filters.")
    fig = go.Figure()
    for sid in pal.ordered(dist["segment_id"]):
        row = dist[dist["segment_id"] == sid].iloc[0]
        fig.add_trace(
            go.Box(
                name=pal.text(sid),
                x=[pal.text(sid)],
                q1=[row["q1"]],
                median=[row["median"]],
                q3=[row["q3"]],
                lowerfence=[row["p05"]],
                upperfence=[row["p95"]],
                mean=[row["mean"]],
                marker_color=pal.color(sid),
                boxpoints=False,
            )
        )
    return _base(
        fig,
        yaxis_title="Order value (whiskers: 5th–95th percentile)",
        yaxis_tickformat=",.0f",
        showlegend=False,
    )


def _flow_label(pal: Palette, sid: int, side: str) -> str:
    if sid == GONE:
        return "New customers" if side == "from" else "Gone (no longer a customer)"
    return pal.text(sid)


def migration_sankey(
    moves: pd.DataFrame, source: Palette, target: Palette, value: str = "customers"
) -> go.Figure:
    """Flows from the earlier snapshot's segments (left) to the later one's (right)."""
    moves = moves[moves[value] > 0]
    if moves.empty:
        return empty_figure("Nothing moved between these snapshots.", height=460)
    left = source.ordered(moves["from_segment"].unique())
    right = target.ordered(moves["to_segment"].unique())
    labels = [_flow_label(source, i, "from") for i in left] + [
        _flow_label(target, i, "to") for i in right
    ]
    colors = [source.color(i) for i in left] + [target.color(i) for i in right]
    index_l = {sid: n for n, sid in enumerate(left)}
    index_r = {sid: len(left) + n for n, sid in enumerate(right)}
    fmt = ",.0f" if value == "customers" else ",.2f"
    fig = go.Figure(
        go.Sankey(
            arrangement="snap",
            node={"label": labels, "color": colors, "pad": 14, "thickness": 16},
            link={
                "source": [index_l[int(i)] for i in moves["from_segment"]],
                "target": [index_r[int(i)] for i in moves["to_segment"]],
                "value": moves[value].tolist(),
                "color": [_fade(source.color(int(i))) for i in moves["from_segment"]],
                "hovertemplate": f"%{{source.label}} → %{{target.label}}: %{{value:{fmt}}}"
                "<extra></extra>",
            },
            valueformat=fmt,
        )
    )
    return _base(fig, height=460)


def _fade(color: str) -> str:
    c = color.lstrip("#")
    if len(c) != 6:
        return "rgba(154,160,166,0.35)"
    r, g, b = (int(c[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},0.35)"


def migration_matrix(
    moves: pd.DataFrame, source: Palette, target: Palette, value: str = "customers"
) -> go.Figure:
    """From-segment rows x to-segment columns, the number of customers (or revenue) moving."""
    if moves.empty:
        return empty_figure("Nothing moved between these snapshots.")
    left = source.ordered(moves["from_segment"].unique())
    right = target.ordered(moves["to_segment"].unique())
    table = moves.pivot_table(
        index="from_segment", columns="to_segment", values=value, aggfunc="sum", fill_value=0
    ).reindex(index=left, columns=right, fill_value=0)
    z = table.to_numpy()
    fmt = "{:,.0f}" if value == "customers" else "{:,.2f}"
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[_flow_label(target, i, "to") for i in right],
            y=[_flow_label(source, i, "from") for i in left],
            text=[[fmt.format(v) for v in row] for row in z.tolist()],
            texttemplate="%{text}",
            colorscale="Purples",
            colorbar={"title": "Customers" if value == "customers" else "Revenue"},
            hovertemplate="%{y} → %{x}: %{text}<extra></extra>",
        )
    )
    return _base(
        fig,
        height=max(300, 45 * len(left) + 140),
        xaxis_title="To (later snapshot)",
        yaxis_title="From (earlier snapshot)",
        yaxis_autorange="reversed",
    )


def model_scores(scores: pd.DataFrame) -> go.Figure:
    """Silhouette (higher is better) and inertia (the elbow) against k; the chosen k marked."""
    if scores.empty:
        return empty_figure("This snapshot was fitted with a fixed k: no scores to compare.")
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=("Silhouette (higher is better)", "Inertia (elbow)")
    )
    for col, metric in ((1, "silhouette"), (2, "inertia")):
        fig.add_trace(
            go.Scatter(
                x=scores["k"],
                y=scores[metric],
                mode="lines+markers",
                name=metric,
                line={"color": "#4C78A8"},
                showlegend=False,
                hovertemplate=f"k=%{{x}}: {metric} %{{y:,.4f}}<extra></extra>",
            ),
            row=1,
            col=col,
        )
        chosen = scores[scores["chosen"]]
        if not chosen.empty:
            fig.add_trace(
                go.Scatter(
                    x=chosen["k"],
                    y=chosen[metric],
                    mode="markers+text",
                    marker={"color": "#E45756", "size": 13, "symbol": "star"},
                    text=[f"chosen k={int(k)}" for k in chosen["k"]],
                    textposition="top right",
                    cliponaxis=False,
                    name="chosen k",
                    showlegend=False,
                    hoverinfo="skip",
                ),
                row=1,
                col=col,
            )
        fig.update_xaxes(title_text="k (number of segments)", dtick=1, row=1, col=col)
    return _base(fig, height=360, margin={"l": 10, "r": 10, "t": 60, "b": 10})
