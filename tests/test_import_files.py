"""Files people actually have: shop exports (presets), Excel workbooks, European CSV, the
date order, hints that point at the cause, and import batches (list, remove, refit)."""

from __future__ import annotations

import functools
import io
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, func, select

from analytics.exports import Filters
from analytics.metrics import kpis
from db.batches import NoSuchBatch, list_batches, remove_batch
from db.importer import ImportRejected, import_file
from db.models import ImportBatch, Transaction
from db.queries import load_orders
from tests.conftest import CDNOW, DATA, SAMPLE, command_line_env, import_rejection

HEADER = "customer_id,order_id,ordered_at,amount,category,country\n"
SAMPLE_KPIS = (297, 1_286, 275, 762_694.99, 734_776.06)


def lines_of(engine: Engine, batch_id: int) -> list[tuple[object, ...]]:
    """The stored lines of a batch, sorted, None as ""."""
    t = Transaction
    with engine.connect() as conn:
        rows = conn.execute(
            select(t.customer_id, t.order_id, t.ordered_at, t.amount, t.category, t.country).where(
                t.batch_id == batch_id
            )
        ).all()
    out = []
    for r in rows:
        at = (
            r.ordered_at
            if isinstance(r.ordered_at, datetime)
            else datetime.fromisoformat(r.ordered_at)
        )
        out.append(
            (
                r.customer_id or "",
                r.order_id,
                at,
                round(r.amount, 6),
                r.category or "",
                r.country or "",
            )
        )
    return sorted(out, key=repr)


def figures(engine: Engine) -> tuple[object, ...]:
    k = kpis(load_orders(engine))
    return (k.customers, k.orders, k.returns, k.gross_revenue, k.net_revenue)


def check_the_samples_figures_and_lines(engine: Engine, batch_id: int, same: Path) -> None:
    """Batch `batch_id`, the only one, gives the sample's figures and holds the lines of the file
    `same` (imported here to compare)."""
    assert figures(engine) == SAMPLE_KPIS
    reference = import_file(engine, same)
    assert lines_of(engine, batch_id) == lines_of(engine, reference.batch_id)


def counts(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        lines = conn.execute(select(func.count()).select_from(Transaction)).scalar_one()
        batches = conn.execute(select(func.count()).select_from(ImportBatch)).scalar_one()
    return lines, batches


# --- presets ---------------------------------------------------------------------------


@pytest.mark.parametrize("shop", ["shopify", "woocommerce"])
def test_a_shop_export_gives_the_lines_and_figures_of_the_same_orders_in_the_normalized_layout(
    engine: Engine, shop: str
) -> None:
    export = DATA / f"{shop}_orders_export.csv"
    same = DATA / f"{shop}_orders_export.normalized.csv"
    report = import_file(engine, export, layout=shop)
    assert report.layout == shop
    assert report.skipped["unpaid_order_lines"] == 3  # pending and voided / cancelled orders
    assert report.refund_lines == {"shopify": 7, "woocommerce": 8}[shop]
    from_export = figures(engine)
    # 2 paid refunds of walk-in orders and 8 customers, whose e-mail is their id
    assert report.customers == 8
    normalized = import_file(engine, same)
    assert lines_of(engine, report.batch_id) == lines_of(engine, normalized.batch_id)
    remove_batch(engine, report.batch_id)
    assert figures(engine) == from_export


def test_shopify_order_fields_carry_over_the_chunks_and_time_stays_the_shops(
    sqlite_engine: Engine,
) -> None:
    export = DATA / "shopify_orders_export.csv"
    whole = import_file(sqlite_engine, export, layout="shopify")
    expected = lines_of(sqlite_engine, whole.batch_id)
    remove_batch(sqlite_engine, whole.batch_id)
    # Two rows per chunk: orders with several items straddle chunks; the financial status,
    # refunded amount and country are on each order's first row only.
    chunked = import_file(sqlite_engine, export, layout="shopify", chunk_lines=2)
    assert lines_of(sqlite_engine, chunked.batch_id) == expected
    # "2024-03-31 03:15:00 +0200" (just after the change to summer time) stays 03:15.
    assert ("dan@example.net", "#1002", datetime(2024, 3, 31, 3, 15), 72.0, "", "CH") in expected


def test_a_shop_export_without_its_format_gets_a_hint_and_a_wrong_export_says_what_is_missing(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    with pytest.raises(
        ImportRejected, match="looks like a Shopify orders export: try --format shopify"
    ):
        import_file(sqlite_engine, DATA / "shopify_orders_export.csv")
    text = import_rejection(sqlite_engine, SAMPLE, layout="woocommerce")
    assert "missing required column(s) order_date or date, billing_email, item_total" in text
    assert "'Default - One Row per Item'" in text


# --- European CSV ----------------------------------------------------------------------


def _german_number(x: float) -> str:
    text = f"{x:,.6f}".rstrip("0").rstrip(".")
    return text.translate(str.maketrans({",": ".", ".": ","}))


def _sample_with_categories() -> pd.DataFrame:
    frame = pd.read_csv(SAMPLE, dtype=str, keep_default_na=False)
    kinds = ["Küche", "Bücher", "Café & Tee", ""]
    frame["category"] = [kinds[i % 4] for i in range(len(frame))]
    return frame


@pytest.mark.parametrize("encoding", ["utf-8-sig", "cp1252"])
def test_a_csv_saved_by_a_german_excel_gives_the_figures_of_the_normalized_file(
    engine: Engine, tmp_path: Path, encoding: str
) -> None:
    frame = _sample_with_categories()
    normalized = tmp_path / "sample.csv"
    frame.to_csv(normalized, index=False)
    german = frame.copy()
    german["ordered_at"] = pd.to_datetime(german["ordered_at"]).dt.strftime("%d.%m.%Y %H:%M")
    german["amount"] = german["amount"].astype(float).map(_german_number)
    path = tmp_path / "bestellungen.csv"
    german.to_csv(path, index=False, sep=";", encoding=encoding, lineterminator="\r\n")
    assert "7.144,72" in path.read_text(encoding=encoding)  # a thousands separator

    report = import_file(engine, path, encoding="utf-8" if encoding == "utf-8-sig" else encoding)
    assert report.read_as["delimiter"] == "';' (detected)"
    assert report.read_as["decimal point"].startswith("',' (detected")
    assert report.read_as["dates"].startswith("day first (detected")
    assert "read as: delimiter ';' (detected)" in report.summary()
    check_the_samples_figures_and_lines(engine, report.batch_id, normalized)


def test_a_utf8_file_that_is_windows_text_is_refused_with_the_encoding_to_use(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes((HEADER + "c1,o1,2024-01-05,1,Küche,\n").encode("cp1252"))
    with pytest.raises(
        ImportRejected, match="excel.csv, row 2: not valid utf-8.*--encoding cp1252"
    ):
        import_file(sqlite_engine, path)


def test_a_wrong_decimal_guess_is_an_invalid_value_not_a_silent_number(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "mixed.csv"
    path.write_text(
        "customer_id;order_id;ordered_at;amount\nc1;o1;2024-01-05;12,50\nc2;o2;2024-01-06;3.99\n"
    )
    rejected = import_rejection(sqlite_engine, path)
    assert (
        "mixed.csv, row 3, column amount: not a number with ',' as decimal point ('3.99')"
        in rejected
    )
    # The majority decides: three amounts only '.' can read against one only ',' can.
    majority = tmp_path / "majority.csv"
    majority.write_text(
        "customer_id;order_id;ordered_at;amount\n"
        + "".join(f"c{i};o{i};2024-01-0{i};{i}.99\n" for i in range(1, 4))
        + "c4;o4;2024-01-04;12,5\n"
    )
    rejected = import_rejection(sqlite_engine, majority)
    assert "1 invalid value(s)" in rejected
    assert "row 5, column amount: not a number with '.' as decimal point ('12,5')" in rejected
    # Said explicitly, the other way round: the first line is the bad one.
    with pytest.raises(ImportRejected, match=r"row 2, column amount: not a number with '\.'"):
        import_file(sqlite_engine, path, decimal=".")


# --- the date order --------------------------------------------------------------------


def _dates_file(tmp_path: Path, name: str, dates: list[str]) -> Path:
    path = tmp_path / name
    path.write_text(HEADER + "".join(f"c{i},o{i},{d},10,,\n" for i, d in enumerate(dates)))
    return path


def _stored_days(engine: Engine) -> list[date]:
    with engine.connect() as conn:
        stamps = conn.execute(select(Transaction.ordered_at).order_by(Transaction.id)).scalars()
        return [
            (s if isinstance(s, datetime) else datetime.fromisoformat(s)).date() for s in stamps
        ]


def test_dates_that_could_be_day_or_month_first_are_refused_until_a_flag_says_which(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    path = _dates_file(tmp_path, "ambiguous.csv", ["01.02.2024 10:00", "03.04.2024", "12.11.2024"])
    text = import_rejection(sqlite_engine, path)
    assert "could be read day first or month first (e.g. row 2: '01.02.2024 10:00')" in text
    assert "pass --dayfirst or --monthfirst" in text
    assert counts(sqlite_engine) == (0, 0)
    report = import_file(sqlite_engine, path, date_order="dayfirst")
    assert report.read_as["dates"] == "day first"
    assert _stored_days(sqlite_engine) == [date(2024, 2, 1), date(2024, 4, 3), date(2024, 11, 12)]


def test_the_same_date_text_is_read_by_what_its_whole_file_tells(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    # Both files start with 01.02.2024; a later row of each decides, even in a later chunk.
    days = _dates_file(tmp_path, "days.csv", ["01.02.2024", "05.06.2024", "13.02.2024"])
    months = _dates_file(tmp_path, "months.csv", ["01.02.2024", "05.06.2024", "02.13.2024"])
    first = import_file(sqlite_engine, days, chunk_lines=1)
    assert first.read_as["dates"] == "day first (detected: row 4, '13.02.2024')"
    second = import_file(sqlite_engine, months, chunk_lines=1)
    assert second.read_as["dates"] == "month first (detected: row 4, '02.13.2024')"
    assert _stored_days(sqlite_engine) == [
        date(2024, 2, 1),
        date(2024, 6, 5),
        date(2024, 2, 13),
        date(2024, 1, 2),
        date(2024, 5, 6),
        date(2024, 2, 13),
    ]
    both = _dates_file(tmp_path, "both.csv", ["13.02.2024", "02.13.2024"])
    with pytest.raises(ImportRejected, match="day first .*row 2.* and month first .*row 3"):
        import_file(sqlite_engine, both)


# --- Excel -----------------------------------------------------------------------------


def _sample_workbook(path: Path, sheets: tuple[str, ...] = ("orders",)) -> None:
    """The sample as an Excel workbook at `path`: its orders on the last of `sheets`, a note on
    the others (written once per test session for each `sheets`: ~2.5 s)."""
    path.write_bytes(_workbook_bytes(sheets))


@functools.lru_cache(maxsize=4)
def _workbook_bytes(sheets: tuple[str, ...]) -> bytes:
    import openpyxl

    frame = pd.read_csv(SAMPLE, dtype=str, keep_default_na=False)
    book = openpyxl.Workbook(write_only=True)
    for title in sheets:
        sheet = book.create_sheet(title)
        if title != sheets[-1]:
            sheet.append(["just a note"])
            continue
        sheet.append(list(frame.columns))
        for r in frame.itertuples(index=False):
            sheet.append(
                [
                    int(r.customer_id),  # numbers, as Excel keeps ids typed in
                    int(r.order_id) if r.order_id.isdigit() else r.order_id,
                    datetime.fromisoformat(r.ordered_at),
                    float(r.amount),
                    r.category or None,
                    r.country,
                ]
            )
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_an_xlsx_of_the_sample_gives_the_samples_figures(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "sample.xlsx"
    _sample_workbook(path)
    report = import_file(engine, path)
    assert report.read_as == {
        "sheet": "'orders' (the first)",
        "decimal point": "'.' (assumed: no amount tells)",
    }
    assert report.lines_imported == 32_421
    check_the_samples_figures_and_lines(engine, report.batch_id, SAMPLE)


def test_a_named_sheet_is_read_and_a_missing_one_is_named(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "book.xlsx"
    _sample_workbook(path, sheets=("Notes", "Orders"))
    with pytest.raises(
        ImportRejected, match="no sheet 'Bestellungen' \\(sheets: 'Notes', 'Orders'\\)"
    ):
        import_file(sqlite_engine, path, sheet="Bestellungen")
    with pytest.raises(ImportRejected, match="unknown layout"):
        import_file(sqlite_engine, path)  # the first sheet holds a note, not orders
    import_file(sqlite_engine, path, sheet="Orders")
    assert figures(sqlite_engine) == SAMPLE_KPIS


def test_a_workbook_row_with_a_cell_right_of_the_header_is_invalid(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(HEADER.strip().split(","))
    sheet.append(["c1", "o1", datetime(2024, 1, 5), 12.5, None, "France"])
    sheet.append(["c2", "o2", datetime(2024, 1, 6), 3, None, "France", "stray"])
    sheet.append([None] * 6)  # an empty row is blank, not invalid
    path = tmp_path / "book.xlsx"
    book.save(path)
    rejected = import_rejection(sqlite_engine, path)
    assert (
        "book.xlsx, row 3 has 7 fields, the header has 6 (a cell right of the header's last "
        in rejected
    )
    report = import_file(sqlite_engine, path, skip_invalid=True)
    assert (report.lines_imported, report.skipped["invalid_lines"]) == (1, 1)


def test_an_xlsx_given_as_csv_says_so(sqlite_engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    _sample_workbook(path)
    with pytest.raises(ImportRejected, match="orders.csv: this is an Excel workbook \\(.xlsx\\)"):
        import_file(sqlite_engine, path)


# --- hints -----------------------------------------------------------------------------


@pytest.mark.parametrize(("sep", "shown"), [(";", ";"), ("\t", "tab"), ("|", "|")])
def test_a_header_joined_by_another_delimiter_points_at_the_delimiter(
    sqlite_engine: Engine, tmp_path: Path, sep: str, shown: str
) -> None:
    path = tmp_path / "other.csv"
    path.write_text(HEADER.replace(",", sep) + sep.join(["c1", "o1", "2024-01-05", "1", "", ""]))
    rejected = import_rejection(sqlite_engine, path, delimiter=",")
    assert (
        f"looks like '{shown}'-separated, not ','-separated: try --delimiter '{shown}'" in rejected
    )
    assert "--map" not in rejected
    assert import_file(sqlite_engine, path).read_as["delimiter"] == f"'{shown}' (detected)"


# --- batches ---------------------------------------------------------------------------


def test_batches_are_listed_and_removed_whole_and_a_removed_file_can_come_back(
    engine: Engine,
) -> None:
    first = import_file(engine, SAMPLE, created_by="admin@example.com")
    second = import_file(engine, CDNOW)
    listed = list_batches(engine)
    assert [(b.id, b.file_name, b.layout, b.lines, b.customers) for b in listed] == [
        (first.batch_id, "online_retail_sample.csv", "normalized", 32_421, 300),
        (second.batch_id, "cdnow_sample.csv", "normalized", 6_919, 2_357),
    ]
    assert listed[0].imported_by == "admin@example.com"
    assert listed[0].first_ordered_at == datetime(2010, 12, 1, 9, 45)
    removed = remove_batch(engine, first.batch_id)
    assert (removed.file_name, removed.lines) == ("online_retail_sample.csv", 32_421)
    assert counts(engine) == (6_919, 1)
    with pytest.raises(NoSuchBatch):
        remove_batch(engine, first.batch_id)
    again = import_file(engine, SAMPLE)  # the content hash went with the batch
    assert not again.already_imported and again.lines_imported == 32_421


def test_a_failed_removal_leaves_the_batch_whole(
    sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import db.batches as batches

    report = import_file(sqlite_engine, CDNOW)
    real = batches.delete

    def failing(table):  # type: ignore[no-untyped-def]
        if table is batches.ImportBatch:
            raise RuntimeError("disk full")
        return real(table)

    monkeypatch.setattr(batches, "delete", failing)
    with pytest.raises(RuntimeError):
        remove_batch(sqlite_engine, report.batch_id)
    assert counts(sqlite_engine) == (6_919, 1)


def test_removing_the_sample_after_importing_a_shop_leaves_exactly_the_shops_kpis_after_a_refit(
    engine: Engine,
) -> None:
    from tests.conftest import export_frame
    from tests.refitting import refit

    sample = import_file(engine, SAMPLE)
    import_file(engine, CDNOW)
    refit(engine, k=3)
    mixed, _ = export_frame(engine, "kpis", Filters())
    assert mixed.iloc[0]["customers"] > 2_000 + 297 - 1  # both files
    remove_batch(engine, sample.batch_id)
    refit(engine, k=3)
    shop, _ = export_frame(engine, "kpis", Filters())

    lines = pd.read_csv(CDNOW, dtype={"customer_id": str, "order_id": str})
    lines["ordered_at"] = pd.to_datetime(lines["ordered_at"])
    orders = lines.groupby(["customer_id", "order_id"], as_index=False).agg(
        ordered_at=("ordered_at", "min"), total=("amount", "sum")
    )
    expected = kpis(orders)
    row = shop.iloc[0]
    assert (row["customers"], row["orders"], row["returns"]) == (
        expected.customers,
        expected.orders,
        expected.returns,
    )
    assert row["gross_revenue"] == pytest.approx(expected.gross_revenue, abs=0.005)
    assert row["net_revenue"] == pytest.approx(expected.net_revenue, abs=0.005)
    assert row["repeat_rate"] == pytest.approx(expected.repeat_rate, abs=1e-6)


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sqlite_engine: Engine) -> Engine:
    from config.settings import get_settings

    command_line_env(monkeypatch, str(sqlite_engine.url), tmp_path)
    yield sqlite_engine
    get_settings.cache_clear()


def test_the_command_line_imports_a_shop_export_lists_and_removes_batches(
    cli_env: Engine,
) -> None:
    from webapp.cli import main

    runner = CliRunner()
    shop = runner.invoke(
        main, ["import", str(DATA / "shopify_orders_export.csv"), "--format", "shopify", "-q"]
    )
    assert shop.exit_code == 0, shop.output
    assert "(shopify layout) as batch 1" in shop.output
    assert "lines skipped:  3 (unpaid order lines: 3)" in shop.output
    sample = runner.invoke(main, ["import", str(SAMPLE), "-q"])
    assert sample.exit_code == 0, sample.output
    listed = runner.invoke(main, ["batches", "list"])
    assert listed.exit_code == 0, listed.output
    rows = listed.output.splitlines()
    assert rows[0].split() == [
        "id",
        "file",
        "layout",
        "lines",
        "orders",
        "customers",
        "dates",
        "imported",
    ]
    assert rows[2].split()[:6] == [
        "2",
        "online_retail_sample.csv",
        "normalized",
        "32,421",
        "1,561",
        "300",
    ]
    assert "2010-12-01 .. 2011-12-09" in rows[2]
    removed = runner.invoke(main, ["batches", "remove", "2"])
    assert removed.exit_code == 0, removed.output
    assert "removed batch 2 (online_retail_sample.csv): 32,421 lines; refit queued (job 1)" in (
        removed.output
    )
    missing = runner.invoke(main, ["batches", "remove", "2"])
    assert missing.exit_code == 1
    assert "error: no import batch 2" in missing.output
    assert counts(cli_env)[1] == 1
    dayfirst = runner.invoke(
        main, ["import", str(SAMPLE), "--dayfirst", "--decimal", ",", "--delimiter", "tab"]
    )
    assert dayfirst.exit_code == 1
    assert "looks like ','-separated, not 'tab'-separated: try --delimiter ','" in dayfirst.output
