"""The admins' "Refit now" button and its progress, shown on the Model and Admin pages.

`register(prefix)` is called by each page module (pages are loaded per app, so their callbacks
belong to that app). The role is checked in the callback, not only by hiding the button.
"""

from __future__ import annotations

from typing import Any

import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, dcc, html, no_update
from flask_login import current_user

from db import snapshots
from webapp import jobs
from webapp.state import state

REFIT_ROLE = "admin"


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
        ]
    )


def start(clicks: Any) -> tuple[Any, Any]:
    """Admins only (checked here): start a background refit."""
    if not clicks:
        return no_update, no_update
    if not (current_user.is_authenticated and current_user.has_role(REFIT_ROLE)):
        return html.Span("Refit needs the admin role.", className="text-danger"), True
    st = state()
    return jobs.start_refit(st.settings, st.engine), False


def poll(_n: Any, message: Any) -> tuple[Any, ...]:
    """While a refit runs: its stage and a progress bar; then the outcome."""
    st = state()
    now = jobs.progress(st.engine)
    if now is not None:
        stage, value = now
        return f"Refitting: {stage}…", value, {"height": "18px"}, False
    last = snapshots.history(st.engine)
    if last.empty:
        return message, 0, {"display": "none"}, True
    row = last.iloc[0]
    if row["status"] == "failed":
        text = html.Span(f"Refit failed: {row['error']}", className="text-danger")
    else:
        text = html.Span(
            f"Snapshot {row['snapshot_id']} published (k={row['k']}). Reload to see it.",
            className="text-success",
        )
    return text, 100, {"display": "none"}, True


def register(prefix: str) -> None:
    callback(
        Output(f"{prefix}-refit-message", "children"),
        Output(f"{prefix}-refit-poll", "disabled"),
        Input(f"{prefix}-refit", "n_clicks"),
        prevent_initial_call=True,
    )(start)
    callback(
        Output(f"{prefix}-refit-message", "children", allow_duplicate=True),
        Output(f"{prefix}-refit-progress", "value"),
        Output(f"{prefix}-refit-progress", "style"),
        Output(f"{prefix}-refit-poll", "disabled", allow_duplicate=True),
        Input(f"{prefix}-refit-poll", "n_intervals"),
        State(f"{prefix}-refit-message", "children"),
        prevent_initial_call=True,
    )(poll)
