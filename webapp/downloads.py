"""Every chart's CSV / XLSX download: one callback for all of them.

The chart's callback stored what it drew (`View.params`); this callback checks those params again
(they come back from the browser), and builds the file with the same `Exporter.export` +
`to_bytes` as `custseg export`: the file holds exactly the chart's data, with its provenance,
formula-like cells neutralized, and a row cap. Files are for analysts (the callback's role); an
export of single customers needs its own role too (the exporter checks it).
"""

from __future__ import annotations

from typing import Any

from dash import MATCH, Dash, Input, Output, State, ctx, dcc, no_update
from flask_login import current_user

from analytics.exports import REGISTRY
from db.exporter import Forbidden
from db.snapshots import NoSnapshot
from webapp import roles
from webapp.filters import FilterError, view_from_params
from webapp.state import state

DOWNLOAD_ROLE: roles.Role = "analyst"


def build_download(params: object, fmt: str) -> tuple[bytes, str]:
    """The file of a chart's download for the logged-in user; ValueError with what is wrong."""
    export, view = view_from_params(params, tuple(REGISTRY))
    st = state()
    data, provenance = st.exporter.file(
        export,
        view.filters,
        view.snapshot_id,
        fmt,
        row_cap=st.settings.export_row_cap,
        role=roles.role_of_user() or "viewer",
        extra={"exported_by": current_user.email},
    )
    return data, f"{export}_snapshot{provenance['snapshot_id']}.{fmt}"


def download(_csv: object, _xlsx: object, params: object) -> tuple[Any, str]:
    trigger = ctx.triggered_id
    if not isinstance(trigger, dict) or not ctx.triggered[0].get("value"):
        return no_update, ""
    fmt = "xlsx" if trigger.get("type") == "dl-xlsx" else "csv"
    try:
        data, filename = build_download(params, fmt)
    except (FilterError, Forbidden, ValueError, NoSnapshot) as exc:
        return no_update, str(exc)
    return dcc.send_bytes(data, filename), ""


def register(app: Dash) -> None:
    roles.app_callback(
        app,
        Output({"type": "download", "chart": MATCH}, "data"),
        Output({"type": "dl-msg", "chart": MATCH}, "children"),
        Input({"type": "dl-csv", "chart": MATCH}, "n_clicks"),
        Input({"type": "dl-xlsx", "chart": MATCH}, "n_clicks"),
        State({"type": "params", "chart": MATCH}, "data"),
        prevent_initial_call=True,
        role=DOWNLOAD_ROLE,
    )(download)
