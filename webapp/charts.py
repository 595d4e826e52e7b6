"""Figure builders: an export frame in, a Plotly figure out. Pure; the pages call them.

Each builder draws exactly the frame it is given, so a chart's download (the same frame from
`db/exporter.py`) holds exactly what the chart shows. Segments keep their colour
(`snapshot_segments.color`, fixed per segment id) in every chart.
"""

from __future__ import annotations

import copy
import functools
import html
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.colors as pcolors
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from analytics.aggregates import GONE
from analytics.rfm import GONE as STAGE_GONE
from analytics.rfm import NEW as STAGE_NEW
from analytics.rfm import STAGES
from analytics.segmentation import PALETTE, shown_color

# Customers without a segment, new or gone customers: 3.3:1 against white, and apart from every
# segment colour in the colour-blind simulations (tests/test_palette.py).
OTHER_COLOR = "#8A8E92"
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
        "colorway": list(PALETTE[:6]),
    }
)
pio.templates.default = "custseg"


class Palette:
    """Names and colours of a snapshot's segments (analysts' names included)."""

    def __init__(self, segments: pd.DataFrame) -> None:
        ids = [int(i) for i in segments.get("segment_id", [])]
        self.names: dict[int, str] = dict(zip(ids, segments.get("name", []), strict=True))
        stored = segments.get("color", [])
        # Snapshots made before the colour-blind safe palette are drawn with it too.
        self.colors: dict[int, str] = {
            sid: shown_color(sid, color) for sid, color in zip(ids, stored, strict=True)
        }
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


def _grid(
    frame: pd.DataFrame,
    index: str,
    columns: str,
    values: str,
    rows: Sequence[Any],
    cols: Sequence[Any],
    fill: float = 0,
) -> np.ndarray:
    """The sum of `values` per (`index`, `columns`) pair, as a `rows` x `cols` array (`fill`
    where no row of `frame` has the pair): what `pivot_table(..., aggfunc="sum")` and
    `reindex` give, in numpy. Those cost ~10 ms per grid, on every filter change."""
    r = pd.Index(rows).get_indexer(frame[index])
    c = pd.Index(cols).get_indexer(frame[columns])
    keep = (r >= 0) & (c >= 0)
    vals = frame[values].to_numpy()
    keep &= ~pd.isna(vals)
    r, c = r[keep], c[keep]
    out = np.zeros((len(rows), len(cols)), dtype=float)
    np.add.at(out, (r, c), vals[keep].astype(float))
    seen = np.zeros_like(out, dtype=bool)
    seen[r, c] = True
    out[~seen] = fill
    if pd.api.types.is_integer_dtype(frame[values].dtype) and float(fill).is_integer():
        return out.astype(frame[values].dtype)
    return out


def _axis_title(text: str) -> dict[str, object]:
    return {"title": {"text": text}}


def _fig(data: list[dict[str, object]], height: int = 360, **layout: object) -> go.Figure:
    """A figure from plain trace and layout dicts, as `_base` lays it out, not validated.

    Plotly's validation of every property took most of a filter change (a Sales callback built
    its three figures in ~60 ms at any data size); the dicts here are the ones the validated
    builders produced, so the browser gets the same JSON.
    """
    spec: dict[str, object] = {
        "margin": {"l": 10, "r": 10, "t": 30, "b": 10},
        "height": height,
        "font": {"family": FONT, "size": 12},
        "legend": {"orientation": "h", "y": -0.15, "x": 0},
        "hoverlabel": {"namelength": -1},
    }
    spec.update(layout)
    return go.Figure({"data": data, "layout": spec}, _validate=False)


def _dates(values: pd.Series) -> list[str]:
    """Days as the ISO strings plotly's JSON encoder writes for them. Date objects in a figure
    cost a deepcopy each when Dash serializes it (`Figure.to_dict`): ~3 µs a value, most of a
    Sales response with two years of days."""
    return [d.isoformat() if hasattr(d, "isoformat") else str(d) for d in values]


def _colorscale(name: str) -> list[list[object]]:
    """A named colorscale as the list plotly's validation turned it into (a new list each time:
    the figure owns it)."""
    return [[stop, color] for stop, color in _named_colorscale(name)]


@functools.cache
def _named_colorscale(name: str) -> tuple[tuple[float, str], ...]:
    """Plotly's lookup builds its table of every named scale on each call (~0.5 ms, on every
    heat map of every filter change); the scales do not change while the process runs."""
    return tuple((stop, color) for stop, color in pcolors.get_colorscale(name))


def _subplot_layout(**kwargs: Any) -> dict[str, Any]:
    """The axes (and subplot titles) make_subplots lays out, computed once at import."""
    layout: dict[str, Any] = make_subplots(**kwargs).layout.to_plotly_json()
    layout.pop("template", None)
    return layout


_SALES_AXES = _subplot_layout(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.05)
_MODEL_AXES = _subplot_layout(
    rows=1, cols=2, subplot_titles=("Silhouette (higher is better)", "Inertia (elbow)")
)


def empty_figure(message: str, height: int = 360) -> go.Figure:
    note = {
        "text": message,
        "showarrow": False,
        "x": 0.5,
        "y": 0.5,
        "xref": "paper",
        "yref": "paper",
        "font": {"size": 14, "color": "#6c757d"},
    }
    hidden = {"visible": False}
    return _fig([], height, annotations=[note], xaxis=hidden, yaxis=hidden)


def _drawn(sales: pd.DataFrame) -> pd.DataFrame:
    """Segment 0 holds the returns of customers without a positive order: it has no gross
    revenue or orders to draw (its net revenue is in the download)."""
    zero = sales["segment_id"] == 0
    if zero.any() and not sales.loc[zero, "orders"].any():
        return sales[~zero]
    return sales


def _stacked_areas(
    sales: pd.DataFrame, pal: Palette, column: str, stack: str, fmt: str
) -> list[dict[str, Any]]:
    """One area a segment of `column` per period, stacked (group `stack`); hover in `fmt`."""
    traces = []
    for sid in pal.ordered(sales["segment_id"].unique()):
        part = sales[sales["segment_id"] == sid]
        traces.append(
            {
                "type": "scatter",
                "x": _dates(part["period"]),
                "y": part[column].to_numpy(),
                "name": pal.text(sid),
                "mode": "lines",
                "stackgroup": stack,
                "line": {"color": pal.color(sid), "width": 1},
                "hovertemplate": f"%{{x|%Y-%m-%d}}: %{{y:{fmt}}}<extra>%{{fullData.name}}</extra>",
            }
        )
    return traces


def revenue_trend(sales: pd.DataFrame, pal: Palette, granularity: str) -> go.Figure:
    """Gross revenue per period, stacked by segment (the `sales` export)."""
    sales = _drawn(sales)
    if sales.empty:
        return empty_figure("No orders match the filters.")
    traces = _stacked_areas(sales, pal, "gross_revenue", "revenue", ",.2f")
    return _fig(
        traces,
        yaxis={**_axis_title(f"Gross revenue per {granularity}"), "tickformat": ",.0f"},
    )


def segment_shares(segments: pd.DataFrame, pal: Palette) -> go.Figure:
    """Share of customers and of revenue per segment; a click on a bar selects the segment."""
    if segments.empty:
        return empty_figure("No segments match the filters.")
    seg = segments.iloc[::-1]  # largest revenue at the top
    names = [pal.text(int(i)) for i in seg["segment_id"]]
    ids = [int(i) for i in seg["segment_id"]]
    traces = [
        {
            "type": "bar",
            "y": names,
            "x": seg[column].to_numpy(),
            "name": label,
            "orientation": "h",
            "marker": {"color": [pal.color(i) for i in ids], "opacity": opacity},
            "customdata": ids,
            "text": [f"{v:.0%}" for v in seg[column]],
            "textposition": "outside",
            "cliponaxis": False,
            "hovertemplate": f"%{{y}}<br>{label}: %{{x:.1%}}<extra></extra>",
        }
        for column, label, opacity in (
            ("share", "Customers", 0.55),
            ("revenue_share", "Revenue", 1.0),
        )
    ]
    top = min(1.0, float(seg[["share", "revenue_share"]].max().max()) * 1.18)
    return _fig(
        traces,
        height=max(260, 70 * len(seg) + 60),
        barmode="group",
        xaxis={
            "tickformat": ".0%",
            "range": [0, top],
            **_axis_title("Share of customers (light) and of gross revenue (dark)"),
        },
        showlegend=False,
        clickmode="event",
    )


def profile_heatmap(profiles: pd.DataFrame, pal: Palette) -> go.Figure:
    """How each segment's mean differs from the average customer's, feature by feature."""
    if profiles.empty:
        return empty_figure("No segments match the filters.")
    ids = pal.ordered(profiles["segment_id"].unique())
    # segment × feature grids of the ratio and the mean (the first row of each pair), in plain
    # lists: a few dozen cells, where two pivot tables cost ~10 ms of every filter change.
    cells: dict[tuple[int, str], tuple[float, float]] = {}
    for sid, feature, ratio, mean in zip(
        profiles["segment_id"].tolist(),
        profiles["feature"].tolist(),
        profiles["ratio_to_average"].astype(float).tolist(),
        profiles["segment_mean"].astype(float).tolist(),
        strict=True,
    ):
        cells.setdefault((sid, feature), (ratio, mean))
    missing = (math.nan, math.nan)
    features = [  # e.g. no categories imported: a feature without a ratio is left out
        f
        for f in dict.fromkeys(profiles["feature"].tolist())
        if any(not math.isnan(cells.get((i, f), missing)[0]) for i in ids)
    ]
    table = [[cells.get((i, f), missing)[0] for f in features] for i in ids]
    means = [[cells.get((i, f), missing)[1] for f in features] for i in ids]
    z = [[math.log2(v) if v and v > 0 else None for v in row] for row in table]
    text = [[f"{v:.2g}×" if not math.isnan(v) else "–" for v in row] for row in table]
    trace = {
        "type": "heatmap",
        "z": z,
        "x": [FEATURE_LABELS.get(f, f) for f in features],
        "y": [pal.text(i) for i in ids],
        "text": text,
        "texttemplate": "%{text}",
        "customdata": np.asarray(means, dtype=float),
        "colorscale": _colorscale("RdBu"),
        "zmid": 0,
        "zmin": -3,
        "zmax": 3,
        "colorbar": {
            "title": {"text": "× average"},
            "tickvals": [-3, -1, 0, 1, 3],
            "ticktext": ["⅛×", "½×", "1×", "2×", "8×"],
        },
        "hovertemplate": "%{y}<br>%{x}: %{text} the average (mean %{customdata:,.2f})"
        "<extra></extra>",
    }
    return _fig([trace], height=max(240, 48 * len(ids) + 90), yaxis={"autorange": "reversed"})


def customer_scatter(sample: pd.DataFrame, pal: Palette) -> go.Figure:
    """Sampled customers in recency / frequency / monetary space, one colour per segment."""
    if sample.empty:
        return empty_figure("No customers match the filters.")
    pairs = (
        ("recency_days", "frequency"),
        ("recency_days", "monetary"),
        ("frequency", "monetary"),
    )
    traces = []
    for sid in pal.ordered(sample["segment_id"].unique()):
        part = sample[sample["segment_id"] == sid]
        # Once per segment, as a list: iterating Arrow-backed text boxes every value.
        text = [html.escape(str(c), quote=False) for c in part["customer_id"].tolist()]
        for col, (x, y) in enumerate(pairs, start=1):
            traces.append(
                {
                    "type": "scatter",  # SVG: WebGL is missing in some browsers
                    "x": part[x].to_numpy(),
                    "y": part[y].to_numpy(),
                    "mode": "markers",
                    "name": pal.text(sid),
                    "legendgroup": str(sid),
                    "showlegend": col == 1,
                    "marker": {"color": pal.color(sid), "size": 5, "opacity": 0.6},
                    "text": text,
                    "hovertemplate": f"customer %{{text}}<br>{FEATURE_LABELS[x]}: %{{x:,}}"
                    f"<br>{FEATURE_LABELS[y]}: %{{y:,.2f}}<extra>%{{fullData.name}}</extra>",
                    "xaxis": f"x{col if col > 1 else ''}",
                    "yaxis": f"y{col if col > 1 else ''}",
                }
            )
    # The axes make_subplots(rows=1, cols=3, horizontal_spacing=0.07) lays out.
    axes: dict[str, object] = {}
    for col, (x, y) in enumerate(pairs, start=1):
        n = str(col) if col > 1 else ""
        left = (col - 1) * (0.86 / 3 + 0.07)
        log_x = {"type": "log", "dtick": 1} if x != "recency_days" else {}
        axes[f"xaxis{n}"] = {
            "anchor": f"y{n}",
            "domain": [left, left + 0.86 / 3],
            **_axis_title(FEATURE_LABELS[x]),
            **log_x,
        }
        axes[f"yaxis{n}"] = {
            "anchor": f"x{n}",
            "domain": [0.0, 1.0],
            **_axis_title(FEATURE_LABELS[y]),
            "type": "log",
            "dtick": 1,
        }
    return _fig(traces, height=380, **axes)


def retention_heatmap(retention: pd.DataFrame) -> go.Figure:
    """Cohort month x months since first order: share of the cohort that ordered again."""
    if retention.empty:
        return empty_figure("No cohorts in the selected range.")
    cohorts = sorted(retention["cohort"].unique())
    months = sorted(retention["months_since_first"].unique())
    z = _grid(retention, "cohort", "months_since_first", "retention", cohorts, months, np.nan)
    sizes = retention.drop_duplicates("cohort").set_index("cohort")["cohort_size"]
    labels = [f"{pd.Timestamp(c):%Y-%m} ({int(sizes[c]):,})" for c in cohorts]
    trace = {
        "type": "heatmap",
        "z": z,
        "x": [int(m) for m in months],
        "y": labels,
        "text": [[f"{v:.0%}" if pd.notna(v) else "" for v in row] for row in z.tolist()],
        "texttemplate": "%{text}",
        "colorscale": _colorscale("Blues"),
        "zmin": 0,
        "zmax": max(0.5, float(pd.Series(z[:, 1:].ravel()).max()) if z.shape[1] > 1 else 1.0),
        "colorbar": {"title": {"text": "Retention"}, "tickformat": ".0%"},
        "hovertemplate": "Cohort %{y}<br>month %{x}: %{z:.1%}<extra></extra>",
    }
    return _fig(
        [trace],
        height=max(300, 24 * len(labels) + 100),
        xaxis={**_axis_title("Months since first order"), "dtick": 1},
        yaxis={**_axis_title("Cohort (size)"), "autorange": "reversed"},
    )


def retention_trend(trend: pd.DataFrame, pal: Palette, month: int) -> go.Figure:
    """Month-m retention of each cohort, one line per segment."""
    if trend.empty:
        return empty_figure(f"No cohort is old enough for month {month} in the selected range.")
    traces = []
    for sid in pal.ordered(trend["segment_id"].unique()):
        part = trend[trend["segment_id"] == sid]
        traces.append(
            {
                "type": "scatter",
                "x": _dates(part["cohort"]),
                "y": part["retention"].to_numpy(),
                "name": pal.text(sid),
                "mode": "lines+markers",
                "line": {"color": pal.color(sid)},
                "customdata": part["cohort_size"].to_numpy(),
                "hovertemplate": "cohort %{x|%Y-%m} (%{customdata:,} customers): %{y:.1%}"
                "<extra>%{fullData.name}</extra>",
            }
        )
    return _fig(
        traces,
        yaxis={"tickformat": ".0%", **_axis_title(f"Month-{month} retention")},
        xaxis=_axis_title("Cohort"),
    )


def repeat_rate_bars(rates: pd.DataFrame, pal: Palette) -> go.Figure:
    if rates.empty:
        return empty_figure("No orders match the filters.")
    ids = pal.ordered(rates["segment_id"])
    r = rates.set_index("segment_id").loc[ids]
    trace = {
        "type": "bar",
        "x": [pal.text(i) for i in ids],
        "y": r["repeat_rate"].to_numpy(),
        "marker": {"color": [pal.color(i) for i in ids]},
        "text": [f"{v:.0%}" for v in r["repeat_rate"]],
        "textposition": "outside",
        "customdata": r[["repeat_customers", "customers"]].to_numpy(),
        "hovertemplate": "%{x}: %{y:.1%} (%{customdata[0]:,} of %{customdata[1]:,})<extra></extra>",
    }
    return _fig(
        [trace],
        yaxis={"tickformat": ".0%", **_axis_title("Repeat purchase rate")},
        showlegend=False,
    )


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
    traces = []
    for sid in pal.ordered(sales["segment_id"].unique()):
        part = sales[sales["segment_id"] == sid]
        periods = _dates(part["period"])
        for r, (col, label, fmt) in enumerate(rows, start=1):
            n = str(r) if r > 1 else ""
            traces.append(
                {
                    "type": "scatter",
                    "x": periods,
                    "y": part[col].to_numpy(),
                    "name": pal.text(sid),
                    "legendgroup": str(sid),
                    "showlegend": r == 1,
                    "mode": "lines",
                    "line": {"color": pal.color(sid)},
                    "hovertemplate": f"%{{x|%Y-%m-%d}} {label}: %{{y:{fmt}}}"
                    "<extra>%{fullData.name}</extra>",
                    "xaxis": f"x{n}",
                    "yaxis": f"y{n}",
                }
            )
    axes: dict[str, Any] = copy.deepcopy(_SALES_AXES)
    for r, (_, label, fmt) in enumerate(rows, start=1):
        n = str(r) if r > 1 else ""
        axes[f"yaxis{n}"].update(_axis_title(label), tickformat=fmt.replace("d", ""))
    axes["xaxis3"].update(_axis_title(f"Period ({granularity})"))
    return _fig(traces, height=620, **axes)


def revenue_share(sales: pd.DataFrame, pal: Palette) -> go.Figure:
    """Each segment's share of each period's gross revenue."""
    sales = _drawn(sales)
    if sales.empty:
        return empty_figure("No orders match the filters.")
    traces = _stacked_areas(sales, pal, "revenue_share", "share", ".1%")
    return _fig(traces, yaxis={"tickformat": ".0%", **_axis_title("Share of gross revenue")})


def aov_boxes(dist: pd.DataFrame, pal: Palette) -> go.Figure:
    """Order values per segment: box from the quartiles, whiskers at the 5th/95th percentile."""
    if dist.empty:
        return empty_figure("No orders match the filters.")
    rows = dist.set_index("segment_id")
    traces = []
    for sid in pal.ordered(dist["segment_id"]):
        row = rows.loc[sid]
        if isinstance(row, pd.DataFrame):
            row = row.iloc[0]
        traces.append(
            {
                "type": "box",
                "name": pal.text(sid),
                "x": [pal.text(sid)],
                "q1": [row["q1"]],
                "median": [row["median"]],
                "q3": [row["q3"]],
                "lowerfence": [row["p05"]],
                "upperfence": [row["p95"]],
                "mean": [row["mean"]],
                "marker": {"color": pal.color(sid)},
                "boxpoints": False,
            }
        )
    return _fig(
        traces,
        yaxis={
            **_axis_title("Order value (whiskers: 5th–95th percentile)"),
            "tickformat": ",.0f",
        },
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
                "color": [link_color(source.color(int(i))) for i in moves["from_segment"]],
                "hovertemplate": f"%{{source.label}} → %{{target.label}}: %{{value:{fmt}}}"
                "<extra></extra>",
            },
            valueformat=fmt,
        )
    )
    return _base(fig, height=460)


def _rgb(color: str) -> tuple[int, int, int] | None:
    c = color.lstrip("#")
    if len(c) != 6:
        return None
    try:
        r, g, b = (int(c[i : i + 2], 16) for i in (0, 2, 4))
    except ValueError:
        return None
    return r, g, b


def contrast_ratio(rgb: tuple[float, float, float], other: tuple[float, float, float]) -> float:
    """WCAG 2 contrast ratio of two sRGB colours (0-255 channels), from 1 to 21."""

    def luminance(color: tuple[float, float, float]) -> float:
        lin = [
            v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4
            for v in (x / 255 for x in color)
        ]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    high, low = sorted((luminance(rgb), luminance(other)), reverse=True)
    return (high + 0.05) / (low + 0.05)


WHITE = (255, 255, 255)
LINK_CONTRAST = 3.0  # WCAG 1.4.11: graphical objects against what is next to them


def link_color(color: str) -> str:
    """A Sankey link's colour: its node's, as transparent as it may be while the link keeps 3:1
    against the white page (it was 35% opaque, barely visible). Nodes' colours are all at least
    3:1 themselves (analytics/segmentation.py, STAGE_COLORS)."""
    rgb = _rgb(color) or _rgb(OTHER_COLOR)
    assert rgb is not None
    alpha = 0.45
    while alpha < 1.0:
        over_white = tuple(alpha * v + (1 - alpha) * 255 for v in rgb)
        if contrast_ratio(over_white, WHITE) >= LINK_CONTRAST:  # type: ignore[arg-type]
            break
        alpha = round(alpha + 0.05, 2)
    return f"rgba({rgb[0]},{rgb[1]},{rgb[2]},{min(alpha, 1.0):.2f})"


def migration_matrix(
    moves: pd.DataFrame, source: Palette, target: Palette, value: str = "customers"
) -> go.Figure:
    """From-segment rows x to-segment columns, the number of customers (or revenue) moving."""
    if moves.empty:
        return empty_figure("Nothing moved between these snapshots.")
    left = source.ordered(moves["from_segment"].unique())
    right = target.ordered(moves["to_segment"].unique())
    z = _grid(moves, "from_segment", "to_segment", value, left, right)
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


def _chosen_k(
    chosen: pd.DataFrame, metric: str, on: dict[str, str], label: str, position: str
) -> dict[str, Any]:
    """The star on the chosen k of a k curve (the Model page's scores and k selection)."""
    return {
        "type": "scatter",
        "x": chosen["k"].to_numpy(),
        "y": chosen[metric].to_numpy(),
        "mode": "markers+text",
        "marker": {"color": "#E45756", "size": 13, "symbol": "star"},
        "text": [label.format(int(k)) for k in chosen["k"]],
        "textposition": position,
        "cliponaxis": False,
        "name": "chosen k",
        "showlegend": False,
        "hoverinfo": "skip",
        **on,
    }


def _score_curve(
    scores: pd.DataFrame, metric: str, on: dict[str, str], hover: str
) -> dict[str, Any]:
    """`metric` (silhouette or inertia) against k, one line in the k charts' panel `on`."""
    return {
        "type": "scatter",
        "x": scores["k"].to_numpy(),
        "y": scores[metric].to_numpy(),
        "mode": "lines+markers",
        "name": metric,
        "line": {"color": "#4C78A8"},
        "showlegend": False,
        "hovertemplate": hover,
        **on,
    }


def model_scores(scores: pd.DataFrame) -> go.Figure:
    """Silhouette (higher is better) and inertia (the elbow) against k; the chosen k marked."""
    if scores.empty:
        return empty_figure("This snapshot was fitted with a fixed k: no scores to compare.")
    traces = []
    axes: dict[str, Any] = {k: copy.deepcopy(v) for k, v in _MODEL_AXES.items()}
    chosen = scores[scores["chosen"]]
    for col, metric in ((1, "silhouette"), (2, "inertia")):
        n = str(col) if col > 1 else ""
        on = {"xaxis": f"x{n}", "yaxis": f"y{n}"}
        traces.append(
            _score_curve(scores, metric, on, f"k=%{{x}}: {metric} %{{y:,.4f}}<extra></extra>")
        )
        if not chosen.empty:
            traces.append(_chosen_k(chosen, metric, on, "chosen k={}", "top right"))
        axes[f"xaxis{n}"].update(_axis_title("k (number of segments)"), dtick=1)
    return _fig(traces, height=360, margin={"l": 10, "r": 10, "t": 60, "b": 10}, **axes)


# --- lifecycle stages and the choice of k ----------------------------------------------------

# One colour per lifecycle stage: blues for the best, teals for the new, browns and reds for the
# slipping, purple and grey for the gone; each at least 3:1 against white (Sankey nodes and links,
# the stage grid's borders), no red-green pair doing the telling (tests/test_palette.py).
STAGE_COLORS: dict[str, str] = {
    "Champions": "#08519C",
    "Loyal": "#2171B5",
    "Potential loyalists": "#4292C6",
    "New customers": "#01665E",
    "Promising": "#35978F",
    "Need attention": "#8C510A",
    "About to sleep": "#B35806",
    "At risk": "#D6604D",
    "Can't lose them": "#B2182B",
    "Hibernating": "#8073AC",
    "Lost": "#6C757D",
}
# Clusters of a k preview, by revenue rank (1 = most revenue): the segment palette's colours.
RANK_COLORS = PALETTE


def stage_color(stage: str) -> str:
    return STAGE_COLORS.get(stage, OTHER_COLOR)


def _stage_flow_label(stage: str, side: str) -> str:
    if stage == STAGE_NEW:
        return "Joined since (new to the shop)"
    if stage == STAGE_GONE:
        return "Gone (no longer a customer)"
    return html.escape(stage, quote=False)


def _stage_sides(moves: pd.DataFrame) -> tuple[list[str], list[str]]:
    """The from and to stages present, (new) first and (gone) last, stages in map order."""
    order = [STAGE_NEW, *STAGES, STAGE_GONE]
    left = [s for s in order if s in set(moves["from_stage"])]
    right = [s for s in order if s in set(moves["to_stage"])]
    return left, right


def stage_migration_sankey(moves: pd.DataFrame, value: str = "customers") -> go.Figure:
    """Flows from the earlier snapshot's lifecycle stages (left) to the later one's (right)."""
    moves = moves[moves[value] > 0]
    if moves.empty:
        return empty_figure("Nothing moved between the stages of these snapshots.", height=460)
    left, right = _stage_sides(moves)
    labels = [_stage_flow_label(s, "from") for s in left] + [
        _stage_flow_label(s, "to") for s in right
    ]
    colors = [stage_color(s) for s in left] + [stage_color(s) for s in right]
    index_l = {s: n for n, s in enumerate(left)}
    index_r = {s: len(left) + n for n, s in enumerate(right)}
    fmt = ",.0f" if value == "customers" else ",.2f"
    # Nodes in the stage map's order on both sides (Plotly would otherwise order them by flow):
    # each node's centre, from the flows through it, with a gap between nodes.
    out_of = moves.groupby("from_stage")[value].sum()
    into = moves.groupby("to_stage")[value].sum()
    ys = _stacked_centres([float(out_of[s]) for s in left]) + _stacked_centres(
        [float(into[s]) for s in right]
    )
    trace: dict[str, Any] = {
        "type": "sankey",
        "arrangement": "fixed",
        "node": {
            "label": labels,
            "color": colors,
            "pad": 12,
            "thickness": 16,
            "x": [0.001] * len(left) + [0.999] * len(right),
            "y": ys,
        },
        "link": {
            "source": [index_l[s] for s in moves["from_stage"]],
            "target": [index_r[s] for s in moves["to_stage"]],
            "value": moves[value].tolist(),
            "color": [link_color(stage_color(s)) for s in moves["from_stage"]],
            "hovertemplate": f"%{{source.label}} → %{{target.label}}: %{{value:{fmt}}}"
            "<extra></extra>",
        },
        "valueformat": fmt,
    }
    return _fig([trace], height=max(460, 30 * max(len(left), len(right)) + 80))


def _stacked_centres(sizes: list[float], gap: float = 0.02) -> list[float]:
    """The centres (0 at the top, 1 at the bottom) of nodes of these sizes stacked in order,
    `gap` apart: where Plotly puts a column of Sankey nodes whose order it may not change."""
    total = sum(sizes)
    scale = (1 - gap * (len(sizes) - 1)) / total if total else 0.0
    centres, top = [], 0.0
    for size in sizes:
        centres.append(min(0.999, max(0.001, top + size * scale / 2)))
        top += size * scale + gap
    return centres


def stage_migration_matrix(moves: pd.DataFrame, value: str = "customers") -> go.Figure:
    """From-stage rows x to-stage columns: the customers (or revenue) moving."""
    if moves.empty:
        return empty_figure("Nothing moved between the stages of these snapshots.")
    left, right = _stage_sides(moves)
    z = _grid(moves, "from_stage", "to_stage", value, left, right)
    fmt = "{:,.0f}" if value == "customers" else "{:,.2f}"
    trace: dict[str, Any] = {
        "type": "heatmap",
        "z": z,
        "x": [_stage_flow_label(s, "to") for s in right],
        "y": [_stage_flow_label(s, "from") for s in left],
        "text": [[fmt.format(v) if v else "" for v in row] for row in z.tolist()],
        "texttemplate": "%{text}",
        "colorscale": _colorscale("Purples"),
        "colorbar": {"title": {"text": "Customers" if value == "customers" else "Revenue"}},
        "hovertemplate": "%{y} → %{x}: %{z:" + fmt[2:-1] + "}<extra></extra>",
    }
    return _fig(
        [trace],
        height=max(320, 34 * len(left) + 170),
        xaxis={**_axis_title("To (later snapshot)"), "tickangle": -30},
        yaxis={**_axis_title("From (earlier snapshot)"), "autorange": "reversed"},
    )


def stage_matrix_heatmap(matrix: pd.DataFrame, pal: Palette, value: str = "customers") -> go.Figure:
    """Segments (rows) x lifecycle stages (columns), the `stage_matrix` export: each cell's
    colour is its share of the segment's customers (or revenue), its text the count (or sum)."""
    if matrix.empty:
        return empty_figure("No lifecycle stages for these segments.")
    ids = pal.ordered(matrix["segment_id"].unique())
    columns = list(STAGES)

    def grid(column: str) -> Any:
        return _grid(matrix, "segment_id", "stage", column, ids, columns).astype(float)

    customers, revenue = grid("customers"), grid("gross_revenue")
    share, revenue_share = grid("share_of_segment"), grid("revenue_share_of_segment")
    z = share if value == "customers" else revenue_share
    shown = customers if value == "customers" else revenue
    text = [[f"{v:,.0f}" if v else "" for v in row] for row in shown.tolist()]
    trace: dict[str, Any] = {
        "type": "heatmap",
        "z": z,
        "x": [html.escape(s, quote=False) for s in columns],
        "y": [pal.text(i) for i in ids],
        "text": text,
        "texttemplate": "%{text}",
        "customdata": np.dstack([customers, share, revenue, revenue_share]),
        "colorscale": _colorscale("Blues"),
        "zmin": 0,
        "zmax": max(0.05, float(np.nanmax(z))) if z.size else 1,
        "xgap": 2,
        "ygap": 2,
        "colorbar": {
            "title": {
                "text": "Share of the segment's "
                + ("customers" if value == "customers" else "revenue")
            },
            "tickformat": ".0%",
        },
        "hovertemplate": "%{y} · %{x}<br>%{customdata[0]:,.0f} customers (%{customdata[1]:.1%} "
        "of the segment)<br>revenue %{customdata[2]:,.2f} (%{customdata[3]:.1%} of the "
        "segment's)<extra></extra>",
    }
    return _fig(
        [trace],
        height=max(260, 46 * len(ids) + 150),
        xaxis={"side": "top", "tickangle": -30},
        yaxis={"autorange": "reversed"},
        margin={"l": 10, "r": 10, "t": 90, "b": 10},
    )


def k_selection_curve(scores: pd.DataFrame, reason: dict[str, Any] | None) -> go.Figure:
    """Silhouette (left) and inertia (right) for every k scored (the `scores` export), the k
    range the choice was made in shaded, the chosen k starred, the best k of the range (when
    the previous k was kept instead) and the k passed over for a too small segment marked."""
    if scores.empty:
        return empty_figure("No scores for this snapshot.")
    reason = reason or {}
    axes: dict[str, Any] = {k: copy.deepcopy(v) for k, v in _MODEL_AXES.items()}
    chosen = scores[scores["chosen"]]
    span = reason.get("range_used") or reason.get("range")
    small = {int(k): float(v) for k, v in (reason.get("too_small") or {}).items()}
    best = reason.get("best_k")
    traces: list[dict[str, Any]] = []
    shapes: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []
    for col, metric in ((1, "silhouette"), (2, "inertia")):
        n = str(col) if col > 1 else ""
        on = {"xaxis": f"x{n}", "yaxis": f"y{n}"}
        fmt = ",.3f" if metric == "silhouette" else ",.1f"
        traces.append(
            _score_curve(scores, metric, on, f"k = %{{x}}: {metric} %{{y:{fmt}}}<extra></extra>")
        )
        if span:
            lo, hi = int(span[0]), int(span[1])
            shapes.append(
                {
                    "type": "rect",
                    "xref": f"x{n}",
                    "yref": f"y{n} domain",
                    "x0": lo - 0.5,
                    "x1": hi + 0.5,
                    "y0": 0,
                    "y1": 1,
                    "fillcolor": "rgba(76,120,168,0.10)",
                    "line": {"width": 0},
                    "layer": "below",
                }
            )
            if col == 1:
                notes.append(
                    {
                        "text": f"range {lo}–{hi}" if lo != hi else f"k = {lo}",
                        "xref": "x",
                        "yref": "y domain",
                        "x": (lo + hi) / 2,
                        "y": 0.02,
                        "yanchor": "bottom",
                        "showarrow": False,
                        "font": {"size": 11, "color": "#4C78A8"},
                    }
                )
        passed = scores[scores["k"].isin(list(small))]
        if col == 1 and not passed.empty:
            traces.append(
                {
                    "type": "scatter",
                    "x": passed["k"].to_numpy(),
                    "y": passed[metric].to_numpy(),
                    "mode": "markers",
                    "marker": {"symbol": "x", "size": 10, "color": OTHER_COLOR},
                    "name": "passed over",
                    "showlegend": False,
                    "customdata": [small[int(k)] for k in passed["k"]],
                    "hovertemplate": "k = %{x}: passed over, its smallest segment holds "
                    "%{customdata:.1%} of customers<extra></extra>",
                    **on,
                }
            )
        other_best = scores[(scores["k"] == best) & ~scores["chosen"]] if best else scores[0:0]
        if col == 1 and not other_best.empty:
            traces.append(
                {
                    "type": "scatter",
                    "x": other_best["k"].to_numpy(),
                    "y": other_best[metric].to_numpy(),
                    "mode": "markers+text",
                    "marker": {"symbol": "diamond-open", "size": 12, "color": "#B35806"},
                    "text": ["best in range"],
                    "textposition": "bottom center",
                    "name": "best in range",
                    "showlegend": False,
                    "hoverinfo": "skip",
                    **on,
                }
            )
        if not chosen.empty:
            traces.append(_chosen_k(chosen, metric, on, "chosen k = {}", "top center"))
        axes[f"xaxis{n}"].update(_axis_title("k (number of segments)"), dtick=1)
    axes.setdefault("annotations", [])
    axes["annotations"] = list(axes["annotations"]) + notes
    return _fig(
        traces, height=360, margin={"l": 10, "r": 10, "t": 60, "b": 10}, shapes=shapes, **axes
    )


def k_preview_bars(previews: pd.DataFrame, selected: int | None = None) -> go.Figure:
    """For every k fitted (the `k_previews` export), how its clusters split the customers:
    one stacked bar per k, clusters by revenue (1 = most) from the bottom; the selected k in
    full colour, the published one labelled. A click on a bar selects its k."""
    if previews.empty:
        return empty_figure("No previews: this snapshot was made before they were stored.")
    ks = sorted(int(k) for k in previews["k"].unique())
    published = [int(k) for k in previews.loc[previews["chosen"], "k"].unique()]

    def pick(k: int) -> str:
        return "white" if selected is None or k == selected else "#495057"

    traces = []
    for rank in range(1, int(previews["cluster"].max()) + 1):
        part = previews[previews["cluster"] == rank].set_index("k").reindex(ks)
        present = part["customers"].notna().to_numpy()
        traces.append(
            {
                "type": "bar",
                "x": ks,
                "y": part["share"].to_numpy(),
                "name": f"cluster {rank}",
                "marker": {
                    "color": RANK_COLORS[(rank - 1) % len(RANK_COLORS)],
                    "opacity": [1.0 if selected is None or k == selected else 0.35 for k in ks],
                    "line": {"color": "white", "width": 1},
                },
                "text": [
                    f"{v:.0%}" if ok and v >= 0.06 else ""
                    for v, ok in zip(part["share"].fillna(0), present, strict=True)
                ],
                "textposition": "inside",
                "insidetextanchor": "middle",
                # Plotly picks the text colour from the bar's, not its opacity: dark on faded.
                "textfont": {"color": [pick(k) for k in ks]},
                "customdata": [
                    [
                        html.escape(str(r.name), quote=False) if ok else "",
                        r.customers if ok else 0,
                        r.gross_revenue if ok else 0,
                        r.recency_days if ok else 0,
                        r.frequency if ok else 0,
                        r.monetary if ok else 0,
                    ]
                    for r, ok in zip(part.itertuples(), present, strict=True)
                ],
                "hovertemplate": f"k = %{{x}}, cluster {rank}: %{{customdata[0]}}<br>"
                "%{customdata[1]:,} customers (%{y:.1%}), revenue %{customdata[2]:,.0f}<br>"
                "medians: %{customdata[3]:,.0f} days, %{customdata[4]:,.0f} orders, spend "
                "%{customdata[5]:,.2f}<extra></extra>",
                "showlegend": False,
            }
        )
    notes = [
        {
            "text": "published",
            "x": k,
            "y": 1.0,
            "yanchor": "bottom",
            "showarrow": False,
            "font": {"size": 11, "color": "#B2182B"},
        }
        for k in published
    ]
    return _fig(
        traces,
        height=320,
        barmode="stack",
        xaxis={**_axis_title("k (number of segments)"), "dtick": 1},
        yaxis={**_axis_title("Share of customers"), "tickformat": ".0%", "range": [0, 1.08]},
        annotations=notes,
        clickmode="event",
    )


CAMPAIGN_COLORS = {"treatment": PALETTE[0], "holdout": OTHER_COLOR}


def campaign_cumulative(daily: pd.DataFrame, start: Any) -> go.Figure:
    """Cumulative revenue per customer of a campaign's treatment and holdout, by day since its
    start (`daily`: analytics.campaigns.DAILY_COLUMNS)."""
    if daily.empty:
        return empty_figure("No results yet: they appear once orders after the start arrive.")
    first = pd.Timestamp(start)
    traces: list[dict[str, object]] = []
    for group in ("treatment", "holdout"):
        part = daily[daily["group"] == group].sort_values("day")
        days = part["day"].astype(int)
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": group.capitalize(),
                "x": days.tolist(),
                "y": part["revenue_per_customer"].astype(float).round(4).tolist(),
                "customdata": [(first + pd.Timedelta(days=d)).strftime("%Y-%m-%d") for d in days],
                "line": {
                    "color": CAMPAIGN_COLORS[group],
                    "width": 2.5 if group == "treatment" else 2,
                },
                "hovertemplate": "%{customdata} (day %{x}): %{y:,.2f} per customer"
                f"<extra>{group.capitalize()}</extra>",
            }
        )
    return _fig(
        traces,
        320,
        xaxis={**_axis_title("Days since the start"), "rangemode": "tozero"},
        yaxis={**_axis_title("Revenue per customer, cumulative"), "rangemode": "tozero"},
        hovermode="x unified",
    )


# The backtest of the predictions (the `calibration` export): predicted against actual.
PREDICTED_COLOR, ACTUAL_COLOR = "#9ECAE9", "#4C78A8"


def backtest_deciles(deciles: pd.DataFrame, measure: str = "orders") -> go.Figure:
    """Predicted and actual orders (or revenue) in the backtest window, summed per decile of
    predicted orders (1 = the customers predicted to buy least)."""
    if deciles.empty:
        return empty_figure("No backtest for this snapshot.")
    money = measure == "revenue"
    fmt = ",.2f" if money else ",.1f"
    x = [str(int(d)) for d in deciles["decile"]]
    traces = [
        {
            "type": "bar",
            "name": f"{which.capitalize()} {measure}",
            "x": x,
            "y": deciles[f"{which}_{measure}"].astype(float).round(2).to_numpy(),
            "marker": {"color": color},
            "customdata": deciles["customers"].to_numpy(),
            "hovertemplate": f"Decile %{{x}} (%{{customdata:,}} customers): {which} "
            f"%{{y:{fmt}}}<extra></extra>",
        }
        for which, color in (("predicted", PREDICTED_COLOR), ("actual", ACTUAL_COLOR))
    ]
    return _fig(
        traces,
        320,
        barmode="group",
        xaxis={"type": "category", **_axis_title("Decile of predicted orders (10 = most)")},
        yaxis={**_axis_title(f"{measure.capitalize()} in the window"), "rangemode": "tozero"},
    )


def calibration_curve(deciles: pd.DataFrame, measure: str = "orders") -> go.Figure:
    """Mean predicted against mean actual orders (or revenue) per customer of each decile, with
    the diagonal of a perfectly calibrated model: points below it were over-predicted."""
    if deciles.empty:
        return empty_figure("No backtest for this snapshot.")
    n = deciles["customers"].astype(float).where(deciles["customers"] > 0)
    predicted = (deciles[f"predicted_{measure}"].astype(float) / n).round(4)
    actual = (deciles[f"actual_{measure}"].astype(float) / n).round(4)
    top = float(np.nanmax([predicted.max(), actual.max(), 0.0])) * 1.05 or 1.0
    fmt = ",.2f"
    traces = [
        {
            "type": "scatter",
            "mode": "lines",
            "name": "Perfect calibration",
            "x": [0, top],
            "y": [0, top],
            "line": {"color": "#B0B7C3", "dash": "dash", "width": 1.5},
            "hoverinfo": "skip",
        },
        {
            "type": "scatter",
            "mode": "lines+markers+text",
            "name": "Deciles",
            "x": predicted.to_numpy(),
            "y": actual.to_numpy(),
            "text": [str(int(d)) for d in deciles["decile"]],
            "textposition": "top left",
            "textfont": {"size": 10, "color": "#6c757d"},
            "marker": {"color": ACTUAL_COLOR, "size": 8},
            "line": {"color": ACTUAL_COLOR, "width": 1.5},
            "hovertemplate": f"Decile %{{text}}: predicted %{{x:{fmt}}}, actual %{{y:{fmt}}} "
            f"{measure} per customer<extra></extra>",
        },
    ]
    unit = "Revenue" if measure == "revenue" else "Orders"
    return _fig(
        traces,
        320,
        xaxis={**_axis_title(f"Predicted {unit.lower()} per customer"), "rangemode": "tozero"},
        yaxis={**_axis_title(f"Actual {unit.lower()} per customer"), "rangemode": "tozero"},
    )
