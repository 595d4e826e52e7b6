"""Data (/data, admins only): where the order lines come from.

Database sources (a shop's PostgreSQL or MySQL/MariaDB, read-only): add one, test it, "Sync now"
(a queued `sync` job the scheduler process runs; a sync that changes data queues a refit),
remove one; the sync history. Import batches: each one's import report, and "Remove" (its lines
go, and a refit is queued). The same operations as `custseg source`, `custseg sync` and
`custseg batches` (db/sources.py, db/batches.py); every callback checks the admin role itself.
"""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html, no_update
from dash.dash_table.DataTable import DataTable
from flask_login import current_user

from analytics.ingest import NORMALIZED_COLUMNS
from db import jobs
from db.batches import NoSuchBatch, batch_report, list_batches, remove_batch
from db.models import Trigger
from db.sources import (
    REQUIRED,
    SourceError,
    SourceSpec,
    add_source,
    get_source,
    list_sources,
    make_spec,
    remove_source,
    sync_history,
    test_source,
)
from webapp import roles
from webapp.components import bumped, field, panel, small_button, table_style
from webapp.filters import page_header
from webapp.job_status import progress, started_job
from webapp.pagekit import Extra, Kit, chart_callback
from webapp.state import state

dash.register_page(
    __name__, path="/data", name="Data", title="Data", order=89, role="admin", filtered=False
)

ADMIN: roles.Role = "admin"
SYNC_KIND = "sync"  # db.scheduler.KINDS
SOURCE_COLUMNS = (
    ("name", "Source"),
    ("url", "Connection"),
    ("password_from", "Password from"),
    ("reads", "Reads"),
    ("key_column", "Line key"),
    ("watermark_column", "Watermark"),
    ("watermark", "Synced up to"),
    ("last_sync", "Last sync (UTC)"),
    ("lines", "Lines here"),
)
SYNC_COLUMNS = (
    ("id", "Sync"),
    ("source", "Source"),
    ("started_at", "Started (UTC)"),
    ("what", "Read"),
    ("by", "By"),
    ("lines_read", "Lines read"),
    ("lines_new", "New"),
    ("lines_changed", "Changed"),
    ("lines_removed", "Removed"),
    ("batch_id", "Batch"),
    ("outcome", "Outcome"),
)
BATCH_COLUMNS = (
    ("id", "Batch"),
    ("file_name", "File or sync"),
    ("layout", "Layout"),
    ("lines", "Lines"),
    ("orders", "Orders"),
    ("customers", "Customers"),
    ("dates", "Dates"),
    ("imported", "Imported (UTC)"),
)
NUMERIC = ("lines", "lines_read", "lines_new", "lines_changed", "lines_removed", "orders")


def _table(table_id: str, columns: tuple[tuple[str, str], ...], **extra: Any) -> DataTable:
    return DataTable(
        id=table_id,
        columns=[{"id": c, "name": n} for c, n in columns],
        page_size=10,
        style_table={"overflowX": "auto"},
        **table_style(whiteSpace="normal", maxWidth="340px"),
        style_cell_conditional=[{"if": {"column_id": c}, "textAlign": "right"} for c in NUMERIC],
        **extra,
    )


def _field(label: str, component: Any, hint: str | None = None) -> dbc.Row:
    body = [component] + ([dbc.FormText(hint)] if hint else [])
    target = getattr(component, "id", None)  # the label names its control
    return dbc.Row(
        [
            dbc.Label(
                label,
                html_for=target if isinstance(target, str) else None,
                width=4,
                className="small",
            ),
            dbc.Col(body, width=8),
        ],
        className="mb-2",
    )


def _input(ident: str, example: str = "", **kwargs: Any) -> dbc.Input:
    shown = f"e.g. {example}" if example else ""
    return dbc.Input(id=ident, placeholder=shown, size="sm", type="text", **kwargs)


def _confirmed(ident: str, label: str, message: str) -> dcc.ConfirmDialogProvider:
    return dcc.ConfirmDialogProvider(
        small_button(label, color="danger"),
        id=ident,
        message=message,
    )


def layout(**_query: Any) -> html.Div:
    """Served to admins only (the page's role, webapp/roles.py::protect_pages)."""
    sources = panel(
        "Database sources",
        [
            _table("data-sources", SOURCE_COLUMNS),
            dbc.Row(
                [
                    field(
                        "Source",
                        "data-source",
                        dcc.Dropdown(id="data-source", placeholder="Source", clearable=False),
                        hidden=True,
                        md=4,
                    ),
                    dbc.Col(
                        dbc.ButtonGroup(
                            [
                                dbc.Button("Sync now", id="data-sync", size="sm", color="primary"),
                                small_button("Full sync", "data-sync-full"),
                                small_button("Test", "data-test"),
                            ]
                        ),
                        width="auto",
                    ),
                    dbc.Col(
                        _confirmed(
                            "data-source-remove",
                            "Remove source",
                            "Remove this source, its sync history and every line synced from it? "
                            "A refit is queued after.",
                        ),
                        width="auto",
                    ),
                ],
                className="g-2 align-items-center mt-2",
            ),
            html.Div(id="data-source-message", className="small mt-2"),
            dcc.Interval(id="data-sync-poll", interval=1500, disabled=True),
            dcc.Store(id="data-sync-job"),
        ],
        "read-only; synced before each scheduled refit",
    )
    history = panel("Sync history", _table("data-syncs", SYNC_COLUMNS), "latest 20")
    mapping = [
        _field(
            target,
            dbc.Input(
                id=f"data-map-{target}",
                placeholder=target if target in REQUIRED else "(not read)",
                size="sm",
                type="text",
            ),
        )
        for target in NORMALIZED_COLUMNS
    ]
    add = panel(
        "Add a database source",
        [
            html.P(
                [
                    "A read-only connection to your shop's PostgreSQL or MySQL/MariaDB. The "
                    "password never goes into this app's database: name the environment "
                    "variable (set for the server and the scheduler) or the secret file that "
                    "holds it. The source user needs SELECT on the table or view only. Same as ",
                    html.Code("custseg source add"),
                    ".",
                ],
                className="small",
            ),
            _field("Name", _input("data-new-name", "shop")),
            _field(
                "URL",
                _input("data-new-url", "postgresql://reader@db.example.com:5432/shop"),
                "postgresql://… or mysql://… (MariaDB too), without the password",
            ),
            _field("Password variable", _input("data-new-password-env", "SHOP_DB_PASSWORD")),
            _field("or password file", _input("data-new-password-file", "/run/secrets/shop_db")),
            _field("Table or view", _input("data-new-table", "order_lines")),
            _field(
                "or a query",
                dbc.Textarea(
                    id="data-new-query",
                    placeholder="SELECT … FROM … (one row per order line)",
                    size="sm",
                    rows=3,
                ),
            ),
            _field(
                "Line key",
                _input("data-new-key", "line_id"),
                "the order-line id: a changed line replaces its earlier version",
            ),
            _field(
                "Watermark",
                _input("data-new-watermark", "updated_at"),
                "grows when a line is added or changed: updated_at, or an increasing id",
            ),
            html.H6(
                "Your columns (empty: a column of the normalized name)", className="mt-3 small"
            ),
            *mapping,
            dbc.ButtonGroup(
                [
                    dbc.Button("Test", id="data-new-test", size="sm", color="secondary"),
                    dbc.Button("Add", id="data-new-add", size="sm", color="primary"),
                ],
                className="mt-1",
            ),
            dcc.Loading(html.Pre(id="data-new-message", className="small mt-2 mb-0")),
        ],
    )
    batches = panel(
        "Import batches",
        [
            _table("data-batches", BATCH_COLUMNS),
            dbc.Row(
                [
                    field(
                        "Batch",
                        "data-batch",
                        dcc.Dropdown(id="data-batch", placeholder="Batch"),
                        hidden=True,
                        md=5,
                    ),
                    dbc.Col(
                        small_button("Import report", "data-batch-report-button"),
                        width="auto",
                    ),
                    dbc.Col(
                        _confirmed(
                            "data-batch-remove",
                            "Remove",
                            "Remove this batch and all its lines? A refit is queued after; "
                            "snapshots built from it will say so.",
                        ),
                        width="auto",
                    ),
                ],
                className="g-2 align-items-center mt-2",
            ),
            dcc.Loading(html.Pre(id="data-batch-report", className="small mt-2 mb-0")),
        ],
        "one per imported file or sync; removing one queues a refit",
    )
    return html.Div(
        [
            page_header("Data", "Where the order lines come from: database sources and imports."),
            dcc.Store(id="data-changed", data=0),
            html.Div(id="data-message"),
            sources,
            history,
            dbc.Row([dbc.Col(batches, lg=7), dbc.Col(add, lg=5)]),
        ]
    )


def _when(value: Any) -> str:
    return f"{value:%Y-%m-%d %H:%M}" if value else "–"


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise SourceError("Choose a source.")
    return value


@chart_callback(
    "data",
    {},
    inputs={"changed": Input("data-changed", "data")},
    extras={
        "sources": Extra(Output("data-sources", "data"), []),
        "source_options": Extra(Output("data-source", "options"), []),
        "syncs": Extra(Output("data-syncs", "data"), []),
        "batches": Extra(Output("data-batches", "data"), []),
        "batch_options": Extra(Output("data-batch", "options"), []),
    },
    role=ADMIN,
)
def show(kit: Kit, changed: Any = None) -> dict[str, Any]:
    """The sources, the latest syncs and the batches (read again after every change)."""
    engine = state().engine
    found = list_sources(engine)
    sources = [
        {
            "name": s.name,
            "url": s.url,
            "password_from": s.password_from,
            "reads": s.reads,
            "key_column": s.key_column,
            "watermark_column": s.watermark_column,
            "watermark": s.watermark,
            "last_sync": (
                f"{_when(s.last_sync_at)} ({s.last_status})" if s.last_status else "never"
            ),
            "lines": f"{s.lines:,}",
        }
        for s in found
    ]
    syncs = [
        {
            "id": h.id,
            "source": h.source,
            "started_at": _when(h.started_at),
            "what": "all (full)" if h.full or h.since is None else f"since {h.since}",
            "by": h.requested_by or h.trigger,
            "lines_read": f"{h.lines_read:,}",
            "lines_new": f"{h.lines_new:,}",
            "lines_changed": f"{h.lines_changed:,}",
            "lines_removed": f"{h.lines_removed:,}",
            "batch_id": h.batch_id,
            "outcome": h.status
            if not h.error
            else f"{h.status}: {h.error.splitlines()[0].removeprefix(f'source {h.source}: ')}",
        }
        for h in sync_history(engine)
    ]
    listed = list_batches(engine)
    batches = [
        {
            "id": b.id,
            "file_name": b.file_name,
            "layout": b.layout,
            "lines": f"{b.lines:,}",
            "orders": f"{b.orders:,}",
            "customers": f"{b.customers:,}",
            "dates": f"{_when(b.first_ordered_at)[:10]} .. {_when(b.last_ordered_at)[:10]}",
            "imported": _when(b.imported_at) + (f" by {b.imported_by}" if b.imported_by else ""),
        }
        for b in listed
    ]
    return {
        "sources": sources,
        "source_options": [{"label": s.name, "value": s.name} for s in found],
        "syncs": syncs,
        "batches": batches,
        "batch_options": [
            {"label": f"{b.id} · {b.file_name} ({b.lines:,} lines)", "value": b.id} for b in listed
        ],
    }


@roles.callback(
    Output("data-source-message", "children"),
    Output("data-sync-poll", "disabled"),
    Output("data-sync-job", "data"),
    Input("data-sync", "n_clicks"),
    Input("data-sync-full", "n_clicks"),
    State("data-source", "value"),
    prevent_initial_call=True,
    role=ADMIN,
)
def sync_now(_sync: Any, _full: Any, source: Any) -> tuple[Any, Any, Any]:
    """Queue a sync of the chosen source for the scheduler process."""
    try:
        name = _name(source)
        get_source(state().engine, name)
    except SourceError as exc:
        return html.Span(str(exc), className="text-danger"), True, no_update
    full = dash.ctx.triggered_id == "data-sync-full"
    job, new = jobs.enqueue(
        state().engine,
        SYNC_KIND,
        {"source": name, "full": full},
        trigger=Trigger.WEB,
        requested_by=current_user.email,
    )
    what = "A full sync" if full else "A sync"
    text = f"{what} of {name} is queued" if new else f"{what} of {name} is already queued"
    return f"{text} (job {job.id})…", False, {"job_id": job.id}


@roles.callback(
    Output("data-source-message", "children", allow_duplicate=True),
    Output("data-sync-poll", "disabled", allow_duplicate=True),
    Output("data-changed", "data", allow_duplicate=True),
    Input("data-sync-poll", "n_intervals"),
    State("data-sync-job", "data"),
    State("data-changed", "data"),
    prevent_initial_call=True,
    role=ADMIN,
)
def sync_progress(_n: Any, started: Any, changed: Any) -> tuple[Any, Any, Any]:
    """While the sync job waits or runs, say so; then its outcome, and refresh the tables."""
    job_id = started_job(started)
    job = jobs.get(state().engine, job_id) if job_id is not None else None
    if job is None or job.kind != SYNC_KIND:
        return html.Span("This sync is no longer known.", className="text-danger"), True, no_update
    shown, finished = progress(job, queued="Sync queued", running="Syncing", failed="Sync failed")
    return shown, finished, bumped(changed) if finished else no_update


@roles.callback(
    Output("data-source-message", "children", allow_duplicate=True),
    Output("data-changed", "data", allow_duplicate=True),
    Input("data-test", "n_clicks"),
    Input("data-source-remove", "submit_n_clicks"),
    State("data-source", "value"),
    State("data-changed", "data"),
    prevent_initial_call=True,
    role=ADMIN,
)
def source_action(_test: Any, _remove: Any, source: Any, changed: Any) -> tuple[Any, Any]:
    """Test the chosen source (a read-only connection and its columns), or remove it."""
    engine = state().engine
    try:
        name = _name(source)
        if dash.ctx.triggered_id == "data-source-remove":
            gone = remove_source(engine, name, trigger=Trigger.WEB, requested_by=current_user.email)
            text = f"Source {gone.name} removed with {gone.lines:,} lines."
            if gone.refit_job_id is not None:
                text += f" Refit queued (job {gone.refit_job_id})."
            return html.Span(text, className="text-success"), bumped(changed)
        spec = SourceSpec.of(get_source(engine, name))
        probe = test_source(spec, count=False)
    except SourceError as exc:
        return html.Span(str(exc), className="text-danger"), no_update
    return html.Span(probe.summary(spec), className="text-success"), no_update


@roles.callback(
    Output("data-new-message", "children"),
    Output("data-changed", "data", allow_duplicate=True),
    Input("data-new-test", "n_clicks"),
    Input("data-new-add", "n_clicks"),
    State("data-new-name", "value"),
    State("data-new-url", "value"),
    State("data-new-password-env", "value"),
    State("data-new-password-file", "value"),
    State("data-new-table", "value"),
    State("data-new-query", "value"),
    State("data-new-key", "value"),
    State("data-new-watermark", "value"),
    *[State(f"data-map-{target}", "value") for target in NORMALIZED_COLUMNS],
    State("data-changed", "data"),
    prevent_initial_call=True,
    role=ADMIN,
)
def new_source(
    _test: Any,
    _add: Any,
    name: Any,
    url: Any,
    password_env: Any,
    password_file: Any,
    table: Any,
    query: Any,
    key: Any,
    watermark: Any,
    *rest: Any,
) -> tuple[Any, Any]:
    """Test the form's source; "Add" stores it when the test passes."""
    *columns, changed = rest

    def text(value: Any) -> str | None:
        return value.strip() or None if isinstance(value, str) else None

    mapping = {
        t: c for t, c in zip(NORMALIZED_COLUMNS, map(text, columns), strict=True) if c is not None
    }
    try:
        spec = make_spec(
            text(name) or "",
            text(url) or "",
            table=text(table),
            query=text(query),
            mapping=mapping,
            key_column=text(key) or "",
            watermark_column=text(watermark) or "",
            password_env=text(password_env),
            password_file=text(password_file),
        )
        probe = test_source(spec, count=False)
        if dash.ctx.triggered_id != "data-new-add":
            return probe.summary(spec), no_update
        add_source(state().engine, spec, created_by=current_user.email)
    except SourceError as exc:
        return f"Not added: {exc}" if dash.ctx.triggered_id == "data-new-add" else str(exc), (
            no_update
        )
    return (
        f"{probe.summary(spec)}\nSource {spec.name} added. Choose it and press Sync now; the "
        "scheduler also syncs it before each scheduled refit.",
        bumped(changed),
    )


@roles.callback(
    Output("data-batch-report", "children"),
    Output("data-changed", "data", allow_duplicate=True),
    Input("data-batch-report-button", "n_clicks"),
    Input("data-batch-remove", "submit_n_clicks"),
    State("data-batch", "value"),
    State("data-changed", "data"),
    prevent_initial_call=True,
    role=ADMIN,
)
def batch_action(_report: Any, _remove: Any, batch: Any, changed: Any) -> tuple[Any, Any]:
    """Show the chosen batch's import report, or remove the batch (then a refit is queued)."""
    if not isinstance(batch, int) or isinstance(batch, bool) or not 0 < batch < 2**31:
        return "Choose a batch.", no_update
    engine = state().engine
    try:
        if dash.ctx.triggered_id == "data-batch-remove":
            removed = remove_batch(
                engine, batch, trigger=Trigger.WEB, requested_by=current_user.email
            )
            text = (
                f"Removed batch {removed.id} ({removed.file_name}): {removed.lines:,} lines. "
                f"Refit queued (job {removed.refit_job_id}); the dashboard shows the current "
                "snapshot until it is published."
            )
            if removed.snapshots_marked:
                text += (
                    f" {removed.snapshots_marked} kept snapshot(s) were built from it and now "
                    "say so (Model page, history)."
                )
            return text, bumped(changed)
        return batch_report(engine, batch), no_update
    except NoSuchBatch as exc:
        return str(exc), bumped(changed)
