"""Import: both sample layouts with their known figures, every bad input, idempotency."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from analytics.metrics import kpis
from db.importer import ImportRejected, import_file
from db.models import ImportBatch, Transaction
from db.queries import load_orders
from tests.conftest import CDNOW, RAW, SAMPLE, fail_at_call, import_rejection


def counts(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        lines = conn.execute(select(func.count()).select_from(Transaction)).scalar_one()
        batches = conn.execute(select(func.count()).select_from(ImportBatch)).scalar_one()
    return lines, batches


def test_normalized_sample_has_the_known_figures(engine: Engine) -> None:
    report = import_file(engine, SAMPLE)
    assert report.layout == "normalized"
    assert report.lines_read == report.lines_imported == 32_421
    assert report.customers == 300
    figures = kpis(load_orders(engine))
    assert figures.customers == 297
    assert figures.orders == 1_286
    assert figures.returns == 275
    assert figures.gross_revenue == pytest.approx(762_694.99, abs=0.005)
    assert figures.net_revenue == pytest.approx(734_776.06, abs=0.005)
    assert figures.aov == pytest.approx(593.0754, abs=1e-4)
    assert figures.repeat_rate == pytest.approx(0.646465, abs=1e-6)


def test_raw_online_retail_layout_drops_duplicates_and_keeps_lines_without_customer(
    engine: Engine,
) -> None:
    report = import_file(engine, RAW)
    assert report.layout == "online-retail"
    assert report.lines_read == 22_523
    assert report.skipped["duplicate_lines"] == 321
    assert report.lines_imported == 22_523 - 321
    assert report.no_customer_id_lines == 7_719
    assert report.no_customer_id_revenue == pytest.approx(72_865.10, abs=0.005)
    figures = kpis(load_orders(engine))
    assert figures.customers == 573
    assert figures.orders == 776
    assert figures.returns == 125
    assert figures.gross_revenue == pytest.approx(310_656.37, abs=0.005)
    assert figures.net_revenue == pytest.approx(303_401.72, abs=0.005)
    assert figures.aov == pytest.approx(400.3304, abs=1e-4)
    assert figures.repeat_rate == pytest.approx(0.188482, abs=1e-6)
    # ids like 17850.0 are stored as 17850
    with engine.connect() as conn:
        ids = set(conn.execute(select(Transaction.customer_id).distinct()).scalars())
    assert "17850" in ids and not any(i and i.endswith(".0") for i in ids)


def test_same_file_twice_adds_nothing(engine: Engine) -> None:
    first = import_file(engine, CDNOW)
    before = counts(engine)
    second = import_file(engine, CDNOW)
    assert second.already_imported and second.batch_id == first.batch_id
    assert counts(engine) == before == (6_919, 1)


HEADER = "customer_id,order_id,ordered_at,amount,category,country\n"
GOOD = "c1,o1,2024-01-05T10:00:00,12.50,toys,France\n"


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("wrong_header.csv", b"who,what,when\na,b,c\n", "unknown layout"),
        (
            "bad_date.csv",
            (HEADER + GOOD + "c2,o2,2024-13-45,3,,\n").encode(),
            "bad_date.csv, row 3, column ordered_at: not a date",
        ),
        (
            "bad_amount.csv",
            (HEADER + GOOD + "c2,o2,2024-01-06,twelve,,\n").encode(),
            "bad_amount.csv, row 3, column amount: not a number ('twelve')",
        ),
        (
            "latin1.csv",
            (HEADER + GOOD).encode() + "c3,o3,2024-01-07,1,caf\xe9,\n".encode("latin-1"),
            "latin1.csv, row 3: not valid utf-8",
        ),
        ("empty.csv", b"", "the file is empty"),
        ("header_only.csv", HEADER.encode(), "no data lines"),
        (
            "truncated.csv",
            (HEADER + GOOD + "c2,o2,2024-01").encode(),
            "truncated.csv, row 3: truncated line",
        ),
        (
            "empty_order.csv",
            (HEADER + GOOD + "c2,,2024-01-06,3,,\n").encode(),
            "row 3, column order_id: empty order id",
        ),
    ],
)
def test_bad_input_is_rejected_with_a_clear_error_and_nothing_written(
    engine: Engine, tmp_path: Path, name: str, content: bytes, expected: str
) -> None:
    import_file(engine, CDNOW)
    before = counts(engine)
    path = tmp_path / name
    path.write_bytes(content)
    rejected = import_rejection(engine, path)
    assert expected in rejected
    assert counts(engine) == before


def test_many_bad_lines_report_the_first_ones_and_a_count(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    bad = "".join(f"c{i},o{i},not-a-date,1,,\n" for i in range(50))
    path = tmp_path / "many.csv"
    path.write_text(HEADER + GOOD + bad)
    text = import_rejection(sqlite_engine, path, max_errors=5)
    assert "50 invalid value(s) in 50 line(s)" in text
    assert "many.csv, row 3, column ordered_at" in text
    assert "... and 45 more" in text
    assert counts(sqlite_engine) == (0, 0)


def test_skip_invalid_imports_the_good_lines_and_reports_the_rest(
    engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "mixed.csv"
    path.write_text(HEADER + GOOD + "c2,o2,2024-01-06,oops,,\n" + "c3,o3,2024-01-07,5,,\n")
    report = import_file(engine, path, skip_invalid=True)
    assert report.lines_imported == 2
    assert report.skipped["invalid_lines"] == 1
    assert report.error_count == 1 and "column amount" in report.errors[0]


def test_a_failure_mid_import_leaves_the_database_as_it_was(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import db.importer as importer

    import_file(engine, CDNOW)
    before = counts(engine)
    fail_at_call(monkeypatch, importer, "write_lines", 2, RuntimeError("disk full"))
    with pytest.raises(RuntimeError):
        import_file(engine, SAMPLE, chunk_lines=5_000)
    assert counts(engine) == before


def test_column_mapping_reads_another_layout(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "shop.csv"
    path.write_text("Client,Invoice,Date,Total\nk1,i1,2024-02-01 09:00,10\nk1,i2,2024-03-01,-4\n")
    report = import_file(
        engine,
        path,
        mapping={
            "customer_id": "Client",
            "order_id": "Invoice",
            "ordered_at": "Date",
            "amount": "Total",
        },
    )
    assert report.lines_imported == 2 and report.orders == 2 and report.customers == 1
    figures = kpis(load_orders(engine))
    assert (figures.orders, figures.returns, figures.net_revenue) == (1, 1, 6.0)


def test_mapping_to_a_missing_column_names_it(sqlite_engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "shop.csv"
    path.write_text("Client,Invoice,Date,Total\nk1,i1,2024-02-01,10\n")
    with pytest.raises(ImportRejected, match="no column 'Amount'"):
        import_file(
            sqlite_engine,
            path,
            mapping={
                "customer_id": "Client",
                "order_id": "Invoice",
                "ordered_at": "Date",
                "amount": "Amount",
            },
        )


def stored_lines(engine: Engine) -> list[tuple[object, ...]]:
    t = Transaction
    with engine.connect() as conn:
        rows = conn.execute(
            select(t.customer_id, t.order_id, t.amount, t.category, t.country).order_by(
                t.customer_id, t.order_id
            )
        ).all()
    return [tuple(r) for r in rows]


def test_rows_with_one_field_more_than_the_header_are_refused_not_shifted(
    engine: Engine, tmp_path: Path
) -> None:
    # Every row one field longer than the header: pandas read the first field as the index
    # and imported every value one column to the left.
    path = tmp_path / "shifted.csv"
    path.write_text(
        HEADER + "x,c1,o1,2024-01-05T10:00:00,12.50,toys,France\nx,c2,o2,2024-01-06,3,,\n"
    )
    text = import_rejection(engine, path)
    assert "shifted.csv, row 2 has 7 fields, the header has 6" in text
    assert "shifted.csv, row 3 has 7 fields, the header has 6" in text
    assert counts(engine) == (0, 0)


def test_skip_invalid_reports_rows_with_another_field_count_and_keeps_the_rest_in_place(
    engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text(
        HEADER
        + GOOD
        + "c2,o2,2024-01-06,3,Toys, Games,France\n"  # an unquoted comma: 7 fields
        + "c3,2024-01-07,4,books,Spain\n"  # the order id left out: 5 fields
        + "c4,o4,2024-01-08,5,books,Spain\n"
    )
    report = import_file(engine, path, skip_invalid=True)
    assert report.lines_imported == 2
    assert report.skipped["invalid_lines"] == 2
    assert report.errors == [
        "ragged.csv, row 3 has 7 fields, the header has 6 (a value containing the delimiter "
        "needs double quotes)",
        "ragged.csv, row 4 has 5 fields, the header has 6 (a value containing the delimiter "
        "needs double quotes)",
    ]
    assert stored_lines(engine) == [
        ("c1", "o1", 12.5, "toys", "France"),
        ("c4", "o4", 5.0, "books", "Spain"),
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1e308", "out of range (numbers must be below 10^12 in absolute value)"),
        ("-1000000000000", "out of range (numbers must be below 10^12 in absolute value)"),
        ("1e400", "not a finite number"),
        ("inf", "not a finite number"),
        ("-Infinity", "not a finite number"),
        ("nan", "not a finite number"),
    ],
)
def test_amounts_no_shop_can_have_are_invalid_values(
    sqlite_engine: Engine, tmp_path: Path, value: str, message: str
) -> None:
    path = tmp_path / "huge.csv"
    path.write_text(HEADER + GOOD + f"c2,o2,2024-01-06,{value},,\n")
    rejected = import_rejection(sqlite_engine, path)
    assert f"huge.csv, row 3, column amount: {message} ({value!r})" in rejected
    assert counts(sqlite_engine) == (0, 0)


def test_two_amounts_that_would_sum_to_infinity_are_refused_and_nothing_is_written(
    engine: Engine, tmp_path: Path
) -> None:
    import_file(engine, CDNOW)
    before = counts(engine)
    path = tmp_path / "overflow.csv"
    path.write_text(HEADER + "c1,o1,2024-01-05,1e308,,\nc1,o2,2024-01-06,1e308,,\n")
    text = import_rejection(engine, path)
    assert "2 invalid value(s) in 2 line(s); nothing was imported" in text
    assert "overflow.csv, row 2, column amount: out of range" in text
    assert "overflow.csv, row 3, column amount: out of range" in text
    assert counts(engine) == before


def test_an_amount_just_below_the_bound_is_kept_and_a_product_above_it_is_not(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    fine = tmp_path / "fine.csv"
    fine.write_text(HEADER + "c1,o1,2024-01-05,999999999999.99,,\n")
    assert import_file(sqlite_engine, fine).lines_imported == 1
    raw = tmp_path / "raw.csv"
    raw.write_text(
        "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
        "1,A,x,1000000,2010-12-01 08:26:00,10000000,17850.0,United Kingdom\n"
    )
    with pytest.raises(ImportRejected, match=r"row 2, column Quantity × UnitPrice: amount out"):
        import_file(sqlite_engine, raw)
