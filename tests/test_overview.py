"""The Overview callback, called directly: KPIs for the filters, clear messages for bad input."""

from __future__ import annotations

from db.importer import import_file
from db.refit import refit
from tests.conftest import SAMPLE


def test_overview_kpis_follow_the_filters(app, sqlite_engine) -> None:  # type: ignore[no-untyped-def]
    from webapp.pages.overview import update_kpis

    import_file(sqlite_engine, SAMPLE)
    outcome = refit(sqlite_engine, k=3)
    with app.server.app_context():
        every = update_kpis("2010-12-01", "2011-12-09", None)
        assert every[:4] == ["297", "202", "1,286", "275"]
        one = outcome.segments[0]["segment_id"]
        part = update_kpis("2010-12-01", "2011-12-09", [one])
        assert part[0] == f"{outcome.segments[0]['customers']:,}"
        assert update_kpis("2011-02-01", "2011-01-01", None)[-1] == (
            "The start date is after the end date."
        )
        assert "not valid" in update_kpis("2011-13-45", None, None)[-1]
        assert "unknown segment id(s) [999]" in update_kpis(None, None, [999])[-1]
        assert update_kpis(None, None, ["1; DROP TABLE users"])[-1] == (  # type: ignore[list-item]
            "The segment filter is not valid."
        )
