"""Importing a file from the browser: `/admin/import`, a plain form POST (admins).

Why a route of its own and not a Dash upload: `dcc.Upload` sends the file base64-encoded inside a
callback's JSON, so every callback request had to be allowed the upload's size and was parsed
whole in memory. Here the body is `multipart/form-data`: werkzeug streams the file part to a
temporary file (in memory only up to 500 KB), and only this route allows more than
`webapp/security.py::MAX_REQUEST_BYTES`: `CUSTSEG_MAX_UPLOAD_MB`, refused (413) from
`Content-Length` before anything is read.

Before the body is read: the origin check (a cross-site form is refused), the login and the admin
role (`webapp/roles.py::ROUTES`). Then the form's CSRF token, then `db.importer.import_file`, the
same checks and report as `custseg import`. Dash renders no file input, and the CSP allows no
inline script, so the form is a server-rendered page; after an import the browser goes back to
the Admin page, which shows the batch's report (`batch_summary`); a refused file is shown on the
form with the reasons, to fix and try again.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import fields
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, redirect, render_template, request
from flask_login import current_user
from flask_wtf.csrf import generate_csrf, validate_csrf
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from wtforms.validators import ValidationError

from analytics.layouts import DELIMITERS, LAYOUTS, show_delimiter
from db.importer import ImportRejected, ImportReport, import_file
from db.models import ImportBatch
from webapp.security import too_large_message
from webapp.state import state

log = logging.getLogger("custseg.import")
bp = Blueprint("uploads", __name__)

PATH = "/admin/import"
SUFFIXES = (".csv", ".txt", ".xlsx")
DATE_ORDERS = {"dayfirst": "day first (01.02.2024 is 1 February)", "monthfirst": "month first"}
DECIMALS = {".": "12.50", ",": "12,50"}
DELIMITER_CHOICES = {show_delimiter(d): d for d in DELIMITERS}  # "tab" for a tab
MAX_NAME = 200


class FormError(ValueError):
    """A form field that is not one of its choices."""


def _choice(name: str, allowed: Any) -> str | None:
    value = request.form.get(name, "")
    if value == "":
        return None
    if value not in allowed:
        raise FormError(f"{name}: {value[:40]!r} is not one of the choices.")
    return value


def _sheet() -> str | None:
    value = request.form.get("sheet", "").strip()
    if not value:
        return None
    if len(value) > 100 or not value.isprintable():
        raise FormError("sheet: not a sheet name.")
    return value


def _file_name(raw: str | None) -> str:
    name = Path((raw or "").replace("\\", "/")).name.strip()
    if not name or len(name) > MAX_NAME or not name.isprintable():
        raise FormError("Choose a file to import.")
    if not name.lower().endswith(SUFFIXES):
        raise FormError(f"{name}: not a CSV or Excel file (expected {', '.join(SUFFIXES)}).")
    return name


def _page(
    status: int, message: str | None = None, report: str | None = None, refill: bool = False
) -> Any:
    """The form page; `refill`: with the choices just posted (only once the body was read)."""
    limit = request.max_content_length or state().settings.max_upload_mb * 1024 * 1024
    return (
        render_template(
            "import.html",
            csrf_token=generate_csrf(),
            max_mb=limit // (1024 * 1024),
            layouts=[(key, layout.title) for key, layout in LAYOUTS.items()],
            delimiters={d: d for d in DELIMITER_CHOICES},
            decimals=DECIMALS,
            date_orders=DATE_ORDERS,
            form=request.form if refill else {},
            message=message,
            report=report,
        ),
        status,
    )


@bp.route(PATH, methods=["GET", "POST"], endpoint="import_file")
def import_file_view() -> Any:
    """GET: the form. POST: import the file, then back to the Admin page with its report."""
    limit = state().settings.max_upload_mb * 1024 * 1024
    request.max_content_length = limit  # this route only; every other one keeps the small limit
    if request.method == "GET":
        return _page(200)
    if request.content_length is None:
        # Browsers always say how long a form is; without it (chunked) werkzeug would cut the
        # body at the limit, and the form would look empty instead of too large.
        return _page(411, "The upload did not say its length (Content-Length); try a browser.")
    if request.content_length > limit:
        # Refused from the header: nothing of the body is read.
        log.warning("upload too large", extra={"content_length": request.content_length})
        return _page(413, too_large_message(limit))
    try:  # reading the form streams the file part to a temporary file
        validate_csrf(request.form.get("csrf_token", ""))
    except ValidationError:
        return _page(400, "Your form expired; please choose the file again.")
    upload = request.files.get("file")
    try:
        name = _file_name(upload.filename if upload else None)
        options = {
            "layout": _choice("layout", LAYOUTS),
            "delimiter": DELIMITER_CHOICES.get(_choice("delimiter", DELIMITER_CHOICES) or ""),
            "decimal": _choice("decimal", DECIMALS),
            "date_order": _choice("date_order", DATE_ORDERS),
            "sheet": _sheet(),
            "skip_invalid": request.form.get("skip_invalid") == "1",
        }
    except FormError as exc:
        return _page(400, str(exc), refill=True)
    assert upload is not None  # _file_name refuses a missing file
    with tempfile.TemporaryDirectory(prefix="custseg-upload-") as tmp:
        path = Path(tmp) / f"upload{Path(name).suffix.lower()}"
        upload.save(path)  # copied in chunks from werkzeug's temporary file
        try:
            report = import_file(
                state().engine,
                path,
                created_by=current_user.email,
                display_name=name,
                **options,  # type: ignore[arg-type]
            )
        except ImportRejected as exc:
            return _page(422, "Not imported (nothing was written):", str(exc), refill=True)
    log.info(
        "file imported from the web",
        extra={"batch_id": report.batch_id, "already": report.already_imported},
    )
    key = "already" if report.already_imported else "imported"
    return redirect(f"/admin?{key}={report.batch_id}", code=303)


def batch_summary(engine: Engine, batch_id: object, already: bool = False) -> str | None:
    """The report of import batch `batch_id` (an id from the Admin page's query), as
    `custseg import` prints it; None when there is no such batch."""
    if not isinstance(batch_id, str) or not batch_id.isdigit() or len(batch_id) > 10:
        return None
    with Session(engine) as db:
        batch = db.get(ImportBatch, int(batch_id))
        if batch is None:
            return None
        name, stored = batch.file_name, dict(batch.report or {})
    if already:
        return f"{name}: already imported (batch {batch_id}); nothing added."
    known = {f.name for f in fields(ImportReport)}
    data = {k: v for k, v in stored.items() if k in known}
    for key in ("first_ordered_at", "last_ordered_at"):
        if isinstance(data.get(key), str):
            data[key] = datetime.fromisoformat(data[key])
    try:
        report = ImportReport(**data)
    except TypeError:  # a batch imported before reports were stored
        return f"{name}: imported as batch {batch_id}."
    return report.summary()


def init_app(server: Flask) -> None:
    server.register_blueprint(bp)
