"""Every chart's CSV / XLSX download: one callback for all of them.

The chart's own callback stores what it drew (`View.params`); this callback checks those params
again (they come back from the browser), checks the role, and builds the file with the same
`export_frame` + `to_bytes` as `custseg export`: the file holds exactly the chart's data, with
its provenance, formula-like cells neutralized, and a row cap.
"""

from __future__ import annotations

from typing import Any

from dash import MATCH, Dash, Input, Output, State, ctx, dcc, no_update
from flask_login import current_user

from analytics.exports import to_bytes
from db import snapshots
from webapp.filters import FilterError, view_from_params
from webapp.state import state

EXPORT_ROLE = "analyst"


def build_download(params: object, fmt: str, user: Any) -> tuple[bytes, str]:
    """The file of a chart's download; ValueError with what is wrong otherwise."""
    if user is None or not user.is_authenticated or not user.has_role(EXPORT_ROLE):
        raise PermissionError("Downloads need the analyst role; ask an admin.")
    if fmt not in ("csv", "xlsx"):
        raise ValueError("The format must be csv or xlsx.")
    export, view = view_from_params(params)
    st = state()
    frame, provenance = snapshots.export_frame(
        st.engine, export, view.filters, view.snapshot_id, st.settings.active_days
    )
    cap = st.settings.export_row_cap
    if len(frame) > cap:
        raise ValueError(
            f"{len(frame):,} rows is over the export cap of {cap:,}: narrow the filters "
            "(or ask an admin to run `custseg export`)."
        )
    provenance["exported_by"] = user.email
    name = f"{export}_snapshot{provenance['snapshot_id']}.{fmt}"
    return to_bytes(frame, fmt, provenance), name


def download(_csv: object, _xlsx: object, params: object) -> tuple[Any, str]:
    trigger = ctx.triggered_id
    if not isinstance(trigger, dict) or not ctx.triggered[0].get("value"):
        return no_update, ""
    fmt = "xlsx" if trigger.get("type") == "dl-xlsx" else "csv"
    try:
        data, filename = build_download(params, fmt, current_user)
    except (FilterError, PermissionError, ValueError, snapshots.NoSnapshot) as exc:
        return no_update, str(exc)
    return dcc.send_bytes(data, filename), ""


def register(app: Dash) -> None:
    app.callback(
        Output({"type": "download", "chart": MATCH}, "data"),
        Output({"type": "dl-msg", "chart": MATCH}, "children"),
        Input({"type": "dl-csv", "chart": MATCH}, "n_clicks"),
        Input({"type": "dl-xlsx", "chart": MATCH}, "n_clicks"),
        State({"type": "params", "chart": MATCH}, "data"),
        prevent_initial_call=True,
    )(download)
