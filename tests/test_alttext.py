"""Text alternatives of the charts (webapp/alttext.py, webapp/pagekit.py): a sentence and a data
table from the frame each chart draws, on every drawn chart of every page."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd
import pytest

from analytics.aggregates import GONE
from analytics.exports import Filters
from tests.conftest import as_user, export_frame, login, page, view
from tests.helpers import text_of
from webapp import alttext

FULL = view("2010-12-01", "2011-12-09")


def _rows(table: Any) -> list[list[str]]:
    tbody = table.children[0].children[1]
    return [[td.children for td in tr.children] for tr in tbody.children]


def _names(sqlite_engine) -> dict[int, str]:  # type: ignore[no-untyped-def]
    segments = export_frame(sqlite_engine, "segments", Filters())[0]
    return dict(zip(segments["segment_id"].astype(int), segments["name"], strict=True))


def test_sentences_say_what_the_frames_hold(dashboard, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    names = _names(sqlite_engine)

    def say(export: str, filters: Filters | None = None) -> tuple[str, pd.DataFrame]:
        frame = export_frame(sqlite_engine, export, filters or Filters())[0]
        return alttext.summary(export, frame, lambda i: names.get(i, f"Segment {i}")), frame

    text, seg = say("segments")
    top = seg.sort_values("revenue_share").iloc[-1]
    assert text.startswith(top["name"][0].upper() + top["name"][1:])
    assert f"hold {top['revenue_share']:.0%} of gross revenue" in text
    assert f"{top['share']:.0%} of the customers" in text

    text, sales = say("sales", Filters(granularity="month"))
    drawn = sales[sales["segment_id"] != 0]
    assert f"of {drawn['gross_revenue'].sum():,.2f} from 2010-12-01 to 2011-12-01" in text
    assert re.search(r"in the last period, (up|down) \d+ points on the first", text)

    top_id = int(top["segment_id"])
    text, one = say("sales", Filters(granularity="month", segments=(top_id,)))
    assert text.startswith(f"{top['name'][0].upper()}{top['name'][1:]}: ")
    assert f"{one['gross_revenue'].sum():,.2f} gross revenue from 2010-12-01" in text
    assert "100%" not in text and "in the last period against" in text

    text, rates = say("repeat_rate")
    best = rates.sort_values("repeat_rate").iloc[-1]
    assert f"{best['repeat_rate']:.0%} of {int(best['customers']):,} customers" in text

    text, moves = say("migration")
    earlier = moves[moves["from_segment"] != GONE]
    stayed = earlier.loc[earlier["from_segment"] == earlier["to_segment"], "customers"].sum()
    assert text.startswith(f"{stayed / earlier['customers'].sum():.0%} of earlier customers")
    assert "from new customers to" in text or "to gone customers" in text or "from " in text

    text, _ = say("stage_migration")
    assert "(new)" not in text and "(gone)" not in text

    for export in ("profiles", "customer_sample", "retention", "retention_trend"):
        text, _ = say(export)
        assert text.endswith(".") and "rows: see" not in text, export
    for export in ("aov_distribution", "stage_matrix", "scores", "k_previews"):
        text, _ = say(export)
        assert text.endswith(".") and "rows: see" not in text, export


def test_empty_frames_and_unknown_kinds_still_give_a_sentence() -> None:
    def name(i: int) -> str:
        return f"Segment {i}"

    for kind in alttext.SUMMARIES:
        assert alttext.summary(kind, pd.DataFrame(), name)  # a shape it cannot read: rows
    assert alttext.summary("new_export", pd.DataFrame({"a": [1, 2]}), name) == (
        "2 rows: see the data table."
    )
    empty = pd.DataFrame(columns=["segment_id", "customers", "repeat_customers", "repeat_rate"])
    assert alttext.summary("repeat_rate", empty, name) == (
        "No customers in the chosen period and segments."
    )


def test_the_data_table_names_segments_formats_numbers_and_caps_rows() -> None:
    frame = pd.DataFrame(
        {
            "from_segment": [GONE, 1],
            "to_segment": [2, GONE],
            "customers": [1200, 3],
            "revenue_share": [0.25, float("nan")],
            "description": ["prose", "prose"],
            "centroid": [{"a": 1}, {"a": 2}],
            "empty": [None, None],
        }
    )
    got = alttext.table(frame, {1: "Loyal", 2: "New"}.__getitem__)
    head = [th.children for th in got.children[0].children[0].children.children]
    assert head == ["From segment", "To segment", "Customers", "Revenue share"]
    assert all(th.scope == "col" for th in got.children[0].children[0].children.children)
    assert _rows(got) == [
        ["new customers", "New", "1,200", "25.0%"],
        ["Loyal", "gone customers", "3", "–"],
    ]
    assert got.children[1].children == "All 2 rows."
    many = alttext.table(pd.DataFrame({"k": range(100)}), str, cap=10)
    assert len(_rows(many)) == 10
    assert many.children[1].children == "The first 10 of 100 rows; the download holds them all."


def test_every_drawn_chart_of_every_page_gets_its_alternative(app, dashboard) -> None:  # type: ignore[no-untyped-def]
    calls = {
        "overview": lambda m: m.update_overview(**FULL),
        "segments": lambda m: m.update_segments(**FULL),
        "retention": lambda m: m.update_retention(**FULL, heat_of="all", month=1),
        "sales": lambda m: m.update_sales(**FULL, granularity="month"),
        "migration": lambda m: m.update_migration(**view(), source=1),
    }
    with as_user(app, "analyst@example.com"):
        for name, call in calls.items():
            out = call(page(name))
            figures = [k for k, v in out.items() if hasattr(v, "layout")]
            assert figures, name
            for chart in figures:
                sentence, table = out[f"{chart}:summary"], out[f"{chart}:table"]
                assert sentence and sentence.endswith("."), chart
                assert "rows: see the data table" not in sentence, chart
                assert _rows(table), chart
            # Tables and figures of text have none: they are text already.
            assert not any(k.endswith(":summary") for k in out if k.split(":")[0] not in figures)
        # A refused view: the message, and no alternative of charts not drawn.
        out = page("sales").update_sales(**view("2011-12-09", "2010-12-01"), granularity="day")
        assert out["sales-time:summary"] is None and out["sales-time:table"] is None


def test_every_drawn_chart_has_a_place_for_its_alternative(client) -> None:  # type: ignore[no-untyped-def]
    """Each chart callback that draws a figure writes its sentence and table beside it, into the
    places its card has (`chart_card`, next test)."""
    login(client, "admin@example.com")
    outputs = [d["output"] for d in client.get("/_dash-dependencies").get_json()]
    figures = [f for o in outputs for f in re.findall(r"([\w-]+)\.figure", o)]
    with_figures = [o for o in outputs if ".figure" in o]
    assert len(with_figures) >= 8  # the chart callbacks of the pages
    for output in with_figures:
        for chart in re.findall(r"([\w-]+)\.figure", output):
            assert f"{chart}-summary.children" in output and f"{chart}-table.children" in output
    assert {"overview-trend", "migration-sankey", "campaign-cumulative"} <= set(figures)


@pytest.mark.parametrize("chart", ["overview-trend", "sales-time", "segments-shares"])
def test_a_card_holds_the_sentence_and_a_data_table_disclosure(chart: str) -> None:
    from dash import dcc, html

    from webapp.components import chart_card

    card = chart_card(chart, "Title", "Explain", dcc.Graph(id=chart))
    body = card.children[1].children
    ids = [getattr(c, "id", None) for c in body]
    assert f"{chart}-summary" in ids
    details = next(c for c in body if isinstance(c, html.Details))
    assert text_of(details.children[0], " ") == "Data table"
    region = details.children[1]
    assert region.id == f"{chart}-table" and region.tabIndex == "0"
    assert getattr(region, "aria-label") == "Title: data table"
