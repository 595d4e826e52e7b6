"""The digest: what changed since the last one, from the same export frames as the pages.

`build_digest` takes the frames (`kpi_comparison` for the period, `segments` of this snapshot and
of the one compared with, `migration` between them, `lifecycle` of both when that export exists)
and returns a `Digest`: the headline KPIs with their change against the previous period, segment
sizes and their change, the largest migrations, lifecycle stages that moved, links to the pages
with the filters in the URL. `render_digest` and `render_alert` turn one into the text and the
HTML of an e-mail (Jinja templates under analytics/templates/, HTML escaped). Nothing here reads
the database or sends anything (`db/notify.py`, `db/delivery.py`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import urlencode

import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from analytics.alerts import KPI_LABELS, SnapshotRef, figure
from analytics.metrics import KPI_ORDER

NO_SEGMENT = -1  # the migration export's "new customers" / "gone" side
TOP_MOVES = 3
TOP_STAGES = 5
HEADLINE_MIN_CHANGE = 0.05  # a segment change below this is not headline news
COLOR = re.compile(r"#[0-9a-fA-F]{3,8}")
NEUTRAL = "#8c8c8c"
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

_templates = Environment(
    loader=PackageLoader("analytics", "templates"),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


def page_url(base: str | None, path: str, query: Iterable[tuple[str, Any]] = ()) -> str | None:
    """A link to a page of the app with the filters in its query, as the filter bar writes them
    (`start`, `end`, `segment` repeated, `snapshot`); None without a public URL."""
    if not base:
        return None
    pairs = [(k, v) for k, v in query if v is not None]
    return f"{base.rstrip('/')}{path}" + (f"?{urlencode(pairs)}" if pairs else "")


def change_text(change: float | None, difference: float | None, metric: str) -> str:
    """'▲ 12.3%' against the previous period ('▲ 2.1 pts' for rates), '–' when undefined (as the
    Overview's cards say it)."""
    if metric in ("repeat_rate", "share"):
        if difference is None:
            return "–"
        arrow = "▲" if difference > 0 else "▼" if difference < 0 else "="
        return f"{arrow} {abs(difference) * 100:.1f} pts"
    if change is None:
        return "–"
    arrow = "▲" if change > 0 else "▼" if change < 0 else "="
    return f"{arrow} {abs(change) * 100:.1f}%"


def _num(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


@dataclass(frozen=True)
class KpiFigure:
    metric: str
    label: str
    current: float | None
    previous: float | None
    change: float | None
    difference: float | None

    @property
    def value_text(self) -> str:
        return figure(self.metric, self.current)

    @property
    def previous_text(self) -> str:
        return figure(self.metric, self.previous)

    @property
    def change_text(self) -> str:
        return change_text(self.change, self.difference, self.metric)

    @property
    def tone(self) -> str:
        """good, bad or none: up is good except for returns."""
        if not self.difference:
            return "none"
        up = self.difference > 0
        return "good" if up != (self.metric == "returns") else "bad"


@dataclass(frozen=True)
class SegmentFigure:
    segment_id: int
    name: str
    color: str
    customers: int
    previous: int | None  # None: not in the snapshot compared with (a new segment)
    share: float
    previous_share: float | None

    @property
    def change(self) -> float | None:
        if self.previous is None or not self.previous:
            return None
        return (self.customers - self.previous) / self.previous

    @property
    def difference(self) -> int | None:
        return None if self.previous is None else self.customers - self.previous

    @property
    def change_text(self) -> str:
        if self.previous is None:
            return "new"
        if self.difference == 0:
            return "="
        diff = self.difference or 0
        pct = f" ({change_text(self.change, None, 'customers')})" if self.change is not None else ""
        return f"{diff:+,}{pct}"

    @property
    def tone(self) -> str:
        """A segment growing is neither good nor bad in itself (a lapsed one shrinking is)."""
        return "none"


@dataclass(frozen=True)
class Move:
    from_id: int
    from_name: str
    to_id: int
    to_name: str
    customers: int
    revenue: float

    @property
    def sentence(self) -> str:
        who = "1 customer" if self.customers == 1 else f"{self.customers:,} customers"
        return (
            f"{who} moved from “{self.from_name}” to “{self.to_name}”, "
            f"{self.revenue:,.0f} of their revenue"
        )


@dataclass(frozen=True)
class StageFigure:
    stage: str
    customers: int
    previous: int

    @property
    def change_text(self) -> str:
        diff = self.customers - self.previous
        pct = f" ({change_text(diff / self.previous, None, 'customers')})" if self.previous else ""
        return f"{diff:+,}{pct}"


@dataclass(frozen=True)
class Digest:
    snapshot: SnapshotRef
    compare: SnapshotRef | None  # the snapshot segments and moves are compared with
    period: tuple[date, date, date, date]  # start, end, previous start, previous end
    kpis: tuple[KpiFigure, ...]
    segments: tuple[SegmentFigure, ...]
    moves: tuple[Move, ...]
    new_customers: int
    gone_customers: int
    stages: tuple[StageFigure, ...]
    links: Mapping[str, str | None]

    @property
    def period_days(self) -> int:
        return (self.period[1] - self.period[0]).days + 1

    @property
    def largest(self) -> int:
        """The largest segment in either snapshot (the bars' full width)."""
        sizes = [max(s.customers, s.previous or 0) for s in self.segments]
        return max([1, *sizes])

    def kpi(self, metric: str) -> KpiFigure:
        return next(k for k in self.kpis if k.metric == metric)

    def biggest_segment_change(self) -> SegmentFigure | None:
        moved = [s for s in self.segments if s.change is not None and s.change != 0]
        return max(moved, key=lambda s: abs(s.change or 0), default=None)

    def segment_news(self) -> tuple[SegmentFigure, ...]:
        """The segment that shrank most and the one that grew most (by at least 5%)."""
        moved = [s for s in self.segments if abs(s.change or 0) >= HEADLINE_MIN_CHANGE]
        shrank = min(
            (s for s in moved if (s.change or 0) < 0), key=lambda s: s.change or 0, default=None
        )
        grew = max(
            (s for s in moved if (s.change or 0) > 0), key=lambda s: s.change or 0, default=None
        )
        return tuple(s for s in (shrank, grew) if s is not None)

    @property
    def headline(self) -> tuple[str, ...]:
        """A few sentences: the segments that shrank and grew most, the largest move, revenue."""
        lines = []
        if self.compare is not None:
            for seg in self.segment_news():
                verb = "grew" if (seg.change or 0) > 0 else "shrank"
                lines.append(
                    f"“{seg.name}” {verb} {abs(seg.change or 0) * 100:.0f}% since snapshot "
                    f"{self.compare.id} ({seg.previous:,} → {seg.customers:,} customers)."
                )
        if self.moves:
            lines.append(self.moves[0].sentence + ".")
        revenue = self.kpi("gross_revenue")
        if revenue.change is not None:
            lines.append(
                f"Gross revenue {'rose' if revenue.change > 0 else 'fell'} "
                f"{abs(revenue.change) * 100:.1f}% in the last {self.period_days} days against "
                f"the {self.period_days} days before."
            )
        return tuple(lines)

    @property
    def name_width(self) -> int:
        """The width of the plain-text part's name column."""
        names = [s.name for s in self.segments] + [s.stage for s in self.stages]
        return min(40, max([18, *map(len, names)]))

    @property
    def subject(self) -> str:
        parts = []
        revenue = self.kpi("gross_revenue")
        if revenue.change is not None:
            parts.append(f"gross revenue {revenue.change_text}")
        seg = self.biggest_segment_change()
        if seg is not None and abs(seg.change or 0) >= HEADLINE_MIN_CHANGE:
            parts.append(f"“{seg.name}” {change_text(seg.change, None, 'customers')}")
        tail = f": {', '.join(parts)}" if parts else ""
        return f"Customer digest as of {self.snapshot.as_of}{tail}"


def _color(value: object) -> str:
    return value if isinstance(value, str) and COLOR.fullmatch(value) else NEUTRAL


def segment_figures(
    now: pd.DataFrame, before: pd.DataFrame | None, colors: Mapping[int, str]
) -> tuple[SegmentFigure, ...]:
    """Each segment of this snapshot (in the export's order), then those gone since `before`."""
    earlier = {} if before is None else {int(r.segment_id): r for r in before.itertuples()}
    out = []
    for r in now.itertuples():
        sid = int(r.segment_id)
        prev = earlier.get(sid)
        out.append(
            SegmentFigure(
                sid,
                str(r.name),
                _color(colors.get(sid)),
                int(r.customers),
                None if prev is None else int(prev.customers),
                float(r.share),
                None if prev is None else float(prev.share),
            )
        )
    present = {s.segment_id for s in out}
    for sid, prev in earlier.items():
        if sid not in present:
            out.append(
                SegmentFigure(
                    sid,
                    str(prev.name),
                    _color(colors.get(sid)),
                    0,
                    int(prev.customers),
                    0.0,
                    float(prev.share),
                )
            )
    return tuple(out)


def largest_moves(
    moves: pd.DataFrame, names: Mapping[int, str], top: int = TOP_MOVES
) -> tuple[tuple[Move, ...], int, int]:
    """The largest moves between two different segments (by customers), and the customers who
    are new and gone (the migration export's segment -1)."""
    if moves.empty:
        return (), 0, 0
    new = int(moves.loc[moves["from_segment"] == NO_SEGMENT, "customers"].sum())
    gone = int(moves.loc[moves["to_segment"] == NO_SEGMENT, "customers"].sum())
    between = moves[
        (moves["from_segment"] != moves["to_segment"])
        & (moves["from_segment"] != NO_SEGMENT)
        & (moves["to_segment"] != NO_SEGMENT)
        & (moves["customers"] > 0)
    ]
    ranked = between.sort_values(
        ["customers", "gross_revenue", "from_segment", "to_segment"],
        ascending=[False, False, True, True],
    ).head(top)
    found = tuple(
        Move(
            int(r.from_segment),
            names.get(int(r.from_segment), f"segment {int(r.from_segment)}"),
            int(r.to_segment),
            names.get(int(r.to_segment), f"segment {int(r.to_segment)}"),
            int(r.customers),
            float(r.gross_revenue),
        )
        for r in ranked.itertuples()
    )
    return found, new, gone


def stage_figures(
    now: pd.DataFrame | None, before: pd.DataFrame | None, top: int = TOP_STAGES
) -> tuple[StageFigure, ...]:
    """The lifecycle stages whose customers changed most (none without both frames)."""
    if now is None or before is None or now.empty or before.empty:
        return ()
    earlier = dict(zip(before["stage"], before["customers"], strict=True))
    rows = [
        StageFigure(str(s), int(c), int(earlier.get(s, 0) or 0))
        for s, c in zip(now["stage"], now["customers"], strict=True)
    ]
    moved = [r for r in rows if r.customers != r.previous]
    moved.sort(key=lambda r: -abs(r.customers - r.previous))
    return tuple(moved[:top])


def kpi_figures(comparison: pd.DataFrame) -> tuple[KpiFigure, ...]:
    rows = comparison.set_index("metric")
    return tuple(
        KpiFigure(
            m,
            KPI_LABELS[m],
            _num(rows.loc[m, "current"]),
            _num(rows.loc[m, "previous"]),
            _num(rows.loc[m, "change"]),
            _num(rows.loc[m, "difference"]),
        )
        for m in KPI_ORDER
    )


def build_digest(
    snapshot: SnapshotRef,
    compare: SnapshotRef | None,
    kpi_comparison: pd.DataFrame,
    segments_now: pd.DataFrame,
    segments_before: pd.DataFrame | None,
    migration: pd.DataFrame | None,
    *,
    colors: Mapping[int, str] | None = None,
    lifecycle_now: pd.DataFrame | None = None,
    lifecycle_before: pd.DataFrame | None = None,
    base_url: str | None = None,
) -> Digest:
    """The digest of `snapshot` against `compare` (None: the first snapshot) from the export
    frames; KPIs over `kpi_comparison`'s period against the one before it."""
    first = kpi_comparison.iloc[0]
    period = (
        pd.Timestamp(first["current_start"]).date(),
        pd.Timestamp(first["current_end"]).date(),
        pd.Timestamp(first["previous_start"]).date(),
        pd.Timestamp(first["previous_end"]).date(),
    )
    segs = segment_figures(segments_now, segments_before, colors or {})
    names = {s.segment_id: s.name for s in segs}
    moves, new, gone = largest_moves(migration, names) if migration is not None else ((), 0, 0)
    snap = (("snapshot", snapshot.id),)
    dates = (("start", period[0].isoformat()), ("end", period[1].isoformat()))
    links = {
        "overview": page_url(base_url, "/", dates + snap),
        "segments": page_url(base_url, "/segments", snap),
        "migration": page_url(base_url, "/migration", snap),
        "notifications": page_url(base_url, "/notifications"),
    }
    for s in segs:
        links[f"segment-{s.segment_id}"] = page_url(
            base_url, "/segments", (("segment", s.segment_id), *snap)
        )
    return Digest(
        snapshot,
        compare,
        period,
        kpi_figures(kpi_comparison),
        segs,
        moves,
        new,
        gone,
        stage_figures(lifecycle_now, lifecycle_before),
        links,
    )


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def _one_line(text: str, limit: int = 250) -> str:
    """A header-safe subject: no line breaks or control characters, bounded."""
    clean = "".join(c if c.isprintable() else " " for c in text)
    return " ".join(clean.split())[:limit]


def render_digest(digest: Digest, *, frequency: str, unsubscribe_url: str | None) -> Rendered:
    """The digest as an e-mail's subject, plain text and HTML. `frequency`: why the reader gets
    it ("after every refit", "every Monday")."""
    context = {
        "d": digest,
        "frequency": frequency,
        "unsubscribe_url": unsubscribe_url,
        "manage_url": digest.links.get("notifications"),
    }
    return Rendered(
        _one_line(digest.subject),
        _templates.get_template("digest.txt").render(context),
        _templates.get_template("digest.html").render(context),
    )


def render_alert(
    *,
    rule_name: str,
    rule_text: str,
    message: str,
    snapshot: SnapshotRef,
    link: str | None,
    manage_url: str | None,
    unsubscribe_url: str | None,
) -> Rendered:
    """An alert as an e-mail's subject, plain text and HTML."""
    context = {
        "rule_name": rule_name,
        "rule_text": rule_text,
        "message": message,
        "snapshot": snapshot,
        "link": link,
        "manage_url": manage_url,
        "unsubscribe_url": unsubscribe_url,
    }
    return Rendered(
        _one_line(f"Alert: {rule_name}"),
        _templates.get_template("alert.txt").render(context),
        _templates.get_template("alert.html").render(context),
    )


def frequency_text(frequency: str, weekday: int | None) -> str:
    if frequency == "weekly" and weekday is not None:
        return f"every {WEEKDAYS[weekday]}"
    return "after every refit"
