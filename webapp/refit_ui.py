"""The admins' "Refit now" button and its progress, shown on the Model and Admin pages.

The button records a queued refit job (db/jobs.py); the scheduler process (`custseg scheduler`,
started beside the server by `make run`) runs it. The page polls the job's row, so any web
worker can show its progress: queued, running (with the refit's stage), then published, no
change, skipped or failed. No refit ever runs in a web worker.

`register(prefix)` is called by each page module (pages are loaded per app, so their callbacks
belong to that app). Both callbacks are for admins (`roles.guarded`), checked on the server.
"""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html, no_update
from flask_login import current_user
from sqlalchemy import Engine

from db import jobs, snapshots
from db.models import JobStatus, Trigger
from db.models.snapshots import RUNNING_STAGES
from webapp import roles
from webapp.job_status import is_late, started_job, waiting
from webapp.state import state

REFIT_ROLE: roles.Role = "admin"
KIND = "refit"


def panel(id_prefix: str) -> html.Div:
    """The admins' 'Refit now' button and its progress (also on the Admin page)."""
    return html.Div(
        [
            dbc.Button("Refit now", id=f"{id_prefix}-refit", color="primary", size="sm"),
            html.Span(id=f"{id_prefix}-refit-message", className="small ms-2"),
            dbc.Progress(
                id=f"{id_prefix}-refit-progress",
                value=0,
                striped=True,
                animated=True,
                className="mt-2",
                style={"height": "18px", "display": "none"},
            ),
            dcc.Interval(id=f"{id_prefix}-refit-poll", interval=1500, disabled=True),
            dcc.Store(id=f"{id_prefix}-refit-started"),
        ]
    )


def progress(engine: Engine, job_id: int) -> dict[str, Any]:
    """What became of refit job `job_id`, from its row: `state` is one of JobStatus's values
    (or "unknown"), with the running stage and a percent, or the outcome's text."""
    job = jobs.get(engine, job_id)
    if job is None or job.kind != KIND:
        return {"state": "unknown"}
    if job.status == JobStatus.QUEUED:
        return {"state": job.status, "late": is_late(job), "job_id": job.id, "percent": 3}
    if job.status == JobStatus.RUNNING:
        stages = [str(s) for s in RUNNING_STAGES]
        step = stages.index(job.stage) + 1 if job.stage in stages else 0
        percent = int(100 * (step + 1) / (len(stages) + 2))
        return {"state": job.status, "stage": job.stage or "starting", "percent": percent}
    done = {"state": job.status, "snapshot_id": job.snapshot_id}
    if job.status == JobStatus.DONE and job.snapshot_id is not None:
        snap = snapshots.latest_published(engine, job.snapshot_id)
        done["k"] = snap.k if snap is not None else None
    return {**done, "message": job.message, "error": job.error}


@roles.guarded(REFIT_ROLE)
def start(clicks: Any) -> tuple[Any, Any, Any]:
    """Queue a refit for the scheduler process (admins: the callback's role)."""
    if not clicks:
        return no_update, no_update, no_update
    job, new = jobs.enqueue(
        state().engine, KIND, trigger=Trigger.WEB, requested_by=current_user.email
    )
    text = "Refit queued" if new else "A refit is already queued"
    return f"{text} (job {job.id}): its progress shows below.", False, {"job_id": job.id}


@roles.guarded(REFIT_ROLE)
def poll(_n: Any, message: Any, started: Any = None) -> tuple[Any, ...]:
    """While the job waits or runs: its state and a progress bar; then its outcome."""
    job_id = started_job(started)
    now: dict[str, Any] = (
        progress(state().engine, job_id) if job_id is not None else {"state": "unknown"}
    )
    shown = {"height": "18px"}
    if now["state"] == JobStatus.QUEUED:
        return waiting("Queued", now["job_id"], now["late"]), now["percent"], shown, False
    if now["state"] == JobStatus.RUNNING:
        return f"Refitting: {now['stage']}…", now["percent"], shown, False
    text: html.Span
    if now["state"] == JobStatus.DONE:
        text = html.Span(
            f"Snapshot {now['snapshot_id']} published (k={now['k']}). Reload to see it.",
            className="text-success",
        )
    elif now["state"] == JobStatus.SKIPPED:
        text = html.Span(f"Nothing published: {now['message']}.", className="text-muted")
    elif now["state"] == JobStatus.FAILED:
        text = html.Span(f"Refit failed: {now['error']}", className="text-danger")
    else:
        text = html.Span("This refit is no longer known.", className="text-danger")
    return text, 100, {"display": "none"}, True


def register(prefix: str) -> None:
    """Register the panel's callbacks (their role: `start`'s and `poll`'s own)."""
    dash.callback(
        Output(f"{prefix}-refit-message", "children"),
        Output(f"{prefix}-refit-poll", "disabled"),
        Output(f"{prefix}-refit-started", "data"),
        Input(f"{prefix}-refit", "n_clicks"),
        prevent_initial_call=True,
    )(start)
    dash.callback(
        Output(f"{prefix}-refit-message", "children", allow_duplicate=True),
        Output(f"{prefix}-refit-progress", "value"),
        Output(f"{prefix}-refit-progress", "style"),
        Output(f"{prefix}-refit-poll", "disabled", allow_duplicate=True),
        Input(f"{prefix}-refit-poll", "n_intervals"),
        State(f"{prefix}-refit-message", "children"),
        State(f"{prefix}-refit-started", "data"),
        prevent_initial_call=True,
    )(poll)
