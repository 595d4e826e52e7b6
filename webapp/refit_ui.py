"""The admins' "Refit now" button and its progress, shown on the Model and Admin pages.

`register(prefix)` is called by each page module (pages are loaded per app, so their callbacks
belong to that app). The role is checked in the callback, not only by hiding the button.
"""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html, no_update

from webapp import jobs, roles
from webapp.state import state

REFIT_ROLE: roles.Role = "admin"


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


@roles.guarded(REFIT_ROLE)
def start(clicks: Any) -> tuple[Any, Any, Any]:
    """Start a background refit (admins: the callback's role)."""
    if not clicks:
        return no_update, no_update, no_update
    st = state()
    started = jobs.start_refit(st.settings, st.engine)
    return "Refit started: its progress shows below.", False, started


@roles.guarded(REFIT_ROLE)
def poll(_n: Any, message: Any, started: Any = None) -> tuple[Any, ...]:
    """While the refit runs: its stage and a progress bar; then its outcome."""
    st = state()
    now = jobs.progress(st.engine, started if isinstance(started, dict) else None)
    hidden = {"display": "none"}
    if now["state"] in ("running", "starting", "waiting"):
        return f"Refitting: {now['stage']}…", now["percent"], {"height": "18px"}, False
    if now["state"] == "published":
        text = html.Span(
            f"Snapshot {now['snapshot_id']} published (k={now['k']}). Reload to see it.",
            className="text-success",
        )
    elif now["state"] == "failed":
        text = html.Span(f"Refit failed: {now['error']}", className="text-danger")
    else:
        text = html.Span(
            "The refit did not start or was skipped; see "
            f"{jobs.log_path(st.settings).name} in the instance folder.",
            className="text-danger",
        )
    return text, 100, hidden, True


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
