"""Importing from the browser: `/admin/import`, a streamed form POST (issue 13 item 5).

Admins only, with the form's CSRF token, from the app's own origin; a body over
CUSTSEG_MAX_UPLOAD_MB is refused from its Content-Length before a byte is read; every other
route keeps the small request limit (tests/test_security.py).
"""

from __future__ import annotations

import html
import io
import json
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from sqlalchemy import Engine, func, select

from db.models import ImportBatch, Transaction
from tests.conftest import DATA, add_user, forget_page_duplicates, login, make_settings
from tests.helpers import form_token, post_callback
from tests.test_security import CountingStream, walk

HEADER = "customer_id,order_id,ordered_at,amount,category,country\n"
GOOD = HEADER + "c1,o1,2024-01-02,10.50,toys,France\nc2,o2,2024-01-03,7.25,,Spain\n"
BAD = HEADER + "c1,o1,2024-01-02,10.50,toys,France\nc2,o2,2024-01-03,ten,,Spain\n"
ROUTER = "_pages_content"


def lines(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Transaction)).scalar_one())


def batches(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(ImportBatch)).scalar_one())


def xlsx_bytes(rows: list[list[Any]]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def upload(client: Any, name: str, content: bytes, token: str | None = None, **fields: str) -> Any:
    """POST the import form as the browser does (multipart), with the page's CSRF token."""
    if token is None:
        token = form_token(client.get("/admin/import").get_data(as_text=True))
    data: dict[str, Any] = {"csrf_token": token, **fields, "file": (io.BytesIO(content), name)}
    return client.post("/admin/import", data=data, content_type="multipart/form-data")


def admin_page(client: Any, search: str) -> str:
    """The Admin page as the browser gets it (the page router's callback), as text."""
    values = {"_pages_location.pathname": "/admin", "_pages_location.search": search}
    resp = post_callback(client, ROUTER, values)
    assert resp.status_code == 200
    return resp.get_data(as_text=True).replace("\\n", "\n")


def test_an_admin_imports_a_csv_and_an_xlsx_and_sees_the_report_on_the_admin_page(
    app: Any, client: Any, sqlite_engine: Engine
) -> None:
    login(client, "admin@example.com")
    form = client.get("/admin/import")
    page = form.get_data(as_text=True)
    assert form.status_code == 200 and 'enctype="multipart/form-data"' in page
    assert 'type="file"' in page and '<option value="shopify"' in page
    assert 'name="skip_invalid"' in page

    done = upload(client, "a.csv", GOOD.encode())
    assert done.status_code == 303 and done.headers["Location"] == "/admin?imported=1"
    assert lines(sqlite_engine) == 2
    report = admin_page(client, "?imported=1")
    assert "Imported a.csv (normalized layout) as batch 1" in report
    assert "lines imported: 2" in report and "Refit to include the new data" in report
    again = upload(client, "a-copy.csv", GOOD.encode())
    assert again.headers["Location"] == "/admin?already=1"
    assert "a.csv: already imported (batch 1); nothing added." in admin_page(client, "?already=1")

    workbook = xlsx_bytes(
        [
            ["customer_id", "order_id", "ordered_at", "amount", "category", "country"],
            ["c3", "o3", "2024-02-01", 12.5, "toys", "France"],
            ["c4", "o4", "2024-02-02", 3, None, "Spain"],
            ["c3", "o5", "2024-03-01", 20, "toys", "France"],
        ]
    )
    done = upload(client, "orders.xlsx", workbook)
    assert done.status_code == 303 and done.headers["Location"] == "/admin?imported=2"
    assert lines(sqlite_engine) == 5
    assert "Imported orders.xlsx (normalized layout) as batch 2" in admin_page(
        client, "?imported=2"
    )

    # The layout chosen on the form is the one read: a shop's export ...
    shop = (DATA / "shopify_orders_export.csv").read_bytes()
    done = upload(client, "shop.csv", shop, layout="shopify")
    assert done.status_code == 303
    assert "(shopify layout)" in admin_page(client, done.headers["Location"][6:])
    # ... and a file that is not in the chosen layout is refused, nothing written.
    before = lines(sqlite_engine)
    refused = upload(client, "b.csv", GOOD.replace("c1", "c9").encode(), layout="online-retail")
    assert refused.status_code == 422 and "Not imported (nothing was written)" in refused.text
    assert lines(sqlite_engine) == before


def test_invalid_lines_import_nothing_unless_the_box_is_ticked(
    app: Any, client: Any, sqlite_engine: Engine
) -> None:
    login(client, "admin@example.com")
    refused = upload(client, "bad.csv", BAD.encode())
    assert refused.status_code == 422
    text = refused.get_data(as_text=True)
    assert "Not imported (nothing was written)" in text and "amount" in text and "ten" in text
    assert 'id="file"' in text  # the form again, to try once more
    assert lines(sqlite_engine) == 0 and batches(sqlite_engine) == 0
    done = upload(client, "bad.csv", BAD.encode(), skip_invalid="1")
    assert done.status_code == 303 and lines(sqlite_engine) == 1
    report = admin_page(client, done.headers["Location"][6:])
    assert "lines imported: 1" in report and "invalid lines skipped (1 errors)" in report


@pytest.mark.parametrize(
    ("name", "fields", "expected"),
    [
        ("evil.exe", {}, "not a CSV or Excel file"),
        ("", {}, "Choose a file to import"),
        ("a.csv", {"layout": "sap"}, "layout: 'sap' is not one of the choices"),
        ("a.csv", {"delimiter": "x"}, "delimiter: 'x' is not one of the choices"),
        ("a.csv", {"date_order": "yearfirst"}, "is not one of the choices"),
        ("a.csv", {"sheet": "a\x00b"}, "sheet: not a sheet name"),
    ],
)
def test_form_fields_outside_their_choices_are_refused(
    app: Any, client: Any, sqlite_engine: Engine, name: str, fields: dict[str, str], expected: str
) -> None:
    login(client, "admin@example.com")
    resp = upload(client, name, GOOD.encode(), **fields)
    assert resp.status_code == 400 and expected in html.unescape(resp.get_data(as_text=True))
    assert lines(sqlite_engine) == 0


def test_the_upload_route_refuses_other_roles_bad_tokens_and_other_sites(
    app: Any, sqlite_engine: Engine
) -> None:
    anonymous = app.server.test_client()
    assert anonymous.get("/admin/import").headers["Location"].startswith("/login")
    assert upload(anonymous, "a.csv", GOOD.encode(), token="x").status_code == 401
    for role in ("viewer", "analyst"):
        client = app.server.test_client()
        login(client, f"{role}@example.com")
        assert client.get("/admin/import").status_code == 403
        stream = CountingStream(10_000)
        resp = client.post(
            "/admin/import",
            content_type="multipart/form-data; boundary=x",
            environ_overrides={"wsgi.input": stream, "CONTENT_LENGTH": "10000"},
        )
        assert resp.status_code == 403 and stream.read_bytes == 0, role  # refused unread
    admin = app.server.test_client()
    login(admin, "admin@example.com")
    assert upload(admin, "a.csv", GOOD.encode(), token="").status_code == 400
    stranger = app.server.test_client()
    login(stranger, "admin@example.com")
    foreign = form_token(stranger.get("/admin/import").get_data(as_text=True))
    resp = upload(admin, "a.csv", GOOD.encode(), token=foreign)  # another session's token
    assert resp.status_code == 400 and "Your form expired" in resp.get_data(as_text=True)
    token = form_token(admin.get("/admin/import").get_data(as_text=True))
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        stream = CountingStream(10_000)
        resp = admin.post(
            "/admin/import",
            content_type="multipart/form-data; boundary=x",
            headers=headers,
            environ_overrides={"wsgi.input": stream, "CONTENT_LENGTH": "10000"},
        )
        assert resp.status_code == 403 and stream.read_bytes == 0, headers
    assert lines(sqlite_engine) == 0
    # From the app's own origin, with the token, it imports.
    own = {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}
    data = {"csrf_token": token, "file": (io.BytesIO(GOOD.encode()), "a.csv")}
    resp = admin.post("/admin/import", data=data, headers=own)
    assert resp.status_code == 303 and lines(sqlite_engine) == 2


@pytest.fixture
def small_app(tmp_path: Path, sqlite_engine: Engine) -> Any:
    """The app with CUSTSEG_MAX_UPLOAD_MB=1."""
    from webapp.app import create_app

    forget_page_duplicates()
    url = str(sqlite_engine.url)
    app = create_app(make_settings(tmp_path, url, max_upload_mb=1), sqlite_engine)
    add_user(sqlite_engine, "admin@example.com", "admin")
    return app


def test_a_too_large_upload_is_refused_from_its_content_length_unread(
    small_app: Any, sqlite_engine: Engine
) -> None:
    client = small_app.server.test_client()
    login(client, "admin@example.com")
    size = 300 * 1024 * 1024  # 300 MB announced: refused before a byte is read
    stream = CountingStream(size)
    resp = client.post(
        "/admin/import",
        content_type="multipart/form-data; boundary=x",
        environ_overrides={"wsgi.input": stream, "CONTENT_LENGTH": str(size)},
    )
    assert resp.status_code == 413 and stream.read_bytes == 0
    assert "the request is over 1 MB (CUSTSEG_MAX_UPLOAD_MB)" in resp.get_data(as_text=True)
    # A body that does not say its length is refused unread too (werkzeug would cut it).
    stream = CountingStream(size)
    resp = client.post(
        "/admin/import",
        content_type="multipart/form-data; boundary=x",
        environ_overrides={
            "wsgi.input": stream,
            "wsgi.input_terminated": True,
            "HTTP_TRANSFER_ENCODING": "chunked",
        },
    )
    assert resp.status_code == 411 and stream.read_bytes == 0
    # Just under the limit: far over the 128 KB of other routes, imported.
    rows = "".join(
        f"c{i % 500},o{i},2024-01-{1 + i % 28:02d},{i % 90}.5,toys,\n" for i in range(30_000)
    )
    body = (HEADER + rows).encode()
    assert 900 * 1024 < len(body) < 1024 * 1024 - 2048
    done = upload(client, "big.csv", body)
    assert done.status_code == 303 and lines(sqlite_engine) == 30_000


def test_no_callback_takes_a_file_any_more(app: Any, client: Any) -> None:
    login(client, "admin@example.com")
    deps = client.get("/_dash-dependencies").get_json()
    assert not [d for d in deps for i in d["inputs"] if i["property"] == "contents"]
    page = admin_page(client, "")
    layout = json.loads(page.replace("\n", "\\n"))
    [link] = [n for n in walk(layout) if n.get("props", {}).get("id") == "admin-import"]
    assert link["props"]["href"] == "/admin/import" and link["props"]["external_link"] is True
    assert "admin-upload" not in page
    for search in ("?imported=abc", "?imported=999", "?already=-1", "?imported=1e9"):
        assert "admin-import-report" not in admin_page(client, search), search
