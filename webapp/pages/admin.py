"""Admin (/admin, admins only): users and roles, CSV import, refit now.

Every callback checks the admin role itself: hiding the page from others is not the protection.
"""

from __future__ import annotations

import base64
import binascii
import tempfile
from pathlib import Path
from typing import Any

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, State, dcc, html, no_update
from dash.dash_table.DataTable import DataTable
from flask_login import current_user

from db.importer import ImportRejected, import_file
from db.models import ROLES
from db.users import UserError, change_user, create_user, list_users
from webapp import refit_ui, roles
from webapp.components import table_style
from webapp.filters import page_header
from webapp.state import state

dash.register_page(
    __name__, path="/admin", name="Admin", title="Admin", order=90, role="admin", filtered=False
)

ADMIN: roles.Role = "admin"
UPLOAD_SUFFIXES = (".csv", ".txt")


def _card(title: str, body: Any) -> dbc.Card:
    return dbc.Card(
        [dbc.CardHeader(html.Strong(title), className="bg-white py-1"), dbc.CardBody(body)],
        className="shadow-sm mb-3",
    )


def layout(**_query: Any) -> html.Div:
    """Served to admins only (the page's role, webapp/roles.py::protect_pages)."""
    max_mb = state().settings.max_upload_mb
    role_options = [{"label": r, "value": r} for r in ROLES]
    users = _card(
        "Users",
        [
            DataTable(
                id="admin-users",
                columns=[
                    {"id": "email", "name": "Email"},
                    {"id": "role", "name": "Role"},
                    {"id": "status", "name": "Status"},
                    {"id": "last_login_at", "name": "Last login (UTC)"},
                ],
                **table_style(),
            ),
            html.H6("Add a user", className="mt-3"),
            dbc.Row(
                [
                    dbc.Col(dbc.Input(id="admin-new-email", placeholder="Email", type="email")),
                    dbc.Col(
                        dbc.Input(
                            id="admin-new-password",
                            placeholder="Password (10+ characters)",
                            type="password",
                            autocomplete="new-password",
                        )
                    ),
                    dbc.Col(
                        dcc.Dropdown(
                            id="admin-new-role",
                            options=role_options,
                            value="viewer",
                            clearable=False,
                        ),
                        md=2,
                    ),
                    dbc.Col(dbc.Button("Add", id="admin-add", size="sm"), width="auto"),
                ],
                className="g-2 align-items-center",
            ),
            html.H6("Change a user", className="mt-3"),
            dbc.Row(
                [
                    dbc.Col(dcc.Dropdown(id="admin-user", placeholder="User"), md=4),
                    dbc.Col(
                        dcc.Dropdown(id="admin-role", options=role_options, placeholder="Role"),
                        md=2,
                    ),
                    dbc.Col(
                        dbc.ButtonGroup(
                            [
                                dbc.Button("Set role", id="admin-set-role", size="sm"),
                                dbc.Button(
                                    "Deactivate", id="admin-deactivate", size="sm", color="danger"
                                ),
                                dbc.Button(
                                    "Reactivate",
                                    id="admin-reactivate",
                                    size="sm",
                                    color="secondary",
                                ),
                            ]
                        ),
                        width="auto",
                    ),
                ],
                className="g-2 align-items-center",
            ),
            html.Div(id="admin-users-message", className="small mt-2"),
        ],
    )
    upload = _card(
        "Import transactions",
        [
            html.P(
                [
                    "A CSV in the normalized layout (customer_id, order_id, ordered_at, amount, "
                    "category, country) or the raw Online Retail layout, up to "
                    f"{max_mb} MB. The same checks and report as ",
                    html.Code("custseg import"),
                    ": a file with invalid lines imports nothing unless you tick the box.",
                ],
                className="small",
            ),
            dbc.Checkbox(
                id="admin-skip-invalid",
                label="Import the valid lines and report the rest",
                value=False,
                className="small mb-2",
            ),
            dcc.Upload(
                id="admin-upload",
                children=html.Div(["Drop a CSV file here, or ", html.A("choose one")]),
                max_size=max_mb * 1024 * 1024,
                accept=".csv,text/csv,text/plain",
                className="border border-2 rounded text-center p-3 text-muted",
                style={"borderStyle": "dashed"},
            ),
            dcc.Loading(html.Pre(id="admin-import-report", className="small mt-2 mb-0")),
        ],
    )
    refit = _card(
        "Refit",
        [
            html.P(
                "Segment the customers again with all imported data and publish a new snapshot. "
                "It runs in the background; the dashboard keeps showing the current snapshot "
                "until the new one is published.",
                className="small",
            ),
            refit_ui.panel("admin"),
        ],
    )
    return html.Div(
        [
            page_header("Admin", "Users, data and refits."),
            dcc.Store(id="admin-changed", data=0),
            dbc.Row([dbc.Col(users, lg=7), dbc.Col([upload, refit], lg=5)]),
        ]
    )


@roles.callback(
    Output("admin-users", "data"),
    Output("admin-user", "options"),
    Input("admin-changed", "data"),
    role=ADMIN,
)
def show_users(_changed: Any) -> tuple[Any, Any]:
    users = list_users(state().engine)
    rows = [
        {
            "email": u.email,
            "role": u.role,
            "status": "active" if u.active else "deactivated",
            "last_login_at": str(u.last_login_at)[:16] if pd.notna(u.last_login_at) else "never",
        }
        for u in users.itertuples()
    ]
    options = [{"label": f"{u.email} ({u.role})", "value": int(u.id)} for u in users.itertuples()]
    return rows, options


@roles.callback(
    Output("admin-users-message", "children"),
    Output("admin-changed", "data"),
    Input("admin-add", "n_clicks"),
    Input("admin-set-role", "n_clicks"),
    Input("admin-deactivate", "n_clicks"),
    Input("admin-reactivate", "n_clicks"),
    State("admin-new-email", "value"),
    State("admin-new-password", "value"),
    State("admin-new-role", "value"),
    State("admin-user", "value"),
    State("admin-role", "value"),
    State("admin-changed", "data"),
    prevent_initial_call=True,
    role=ADMIN,
)
def change_users(
    _add: Any,
    _set: Any,
    _off: Any,
    _on: Any,
    email: Any,
    password: Any,
    new_role: Any,
    user_id: Any,
    role: Any,
    changed: Any,
) -> tuple[Any, Any]:
    action = dash.ctx.triggered_id
    bump = (changed if isinstance(changed, int) else 0) + 1
    try:
        if action == "admin-add":
            if not isinstance(email, str) or not isinstance(password, str):
                raise UserError("Type an email and a password.")
            if new_role not in ROLES:
                raise UserError("Choose a role.")
            done = create_user(state().engine, email, password, new_role)
            text = f"User {done} ({new_role}) added."
        else:
            if not isinstance(user_id, int) or isinstance(user_id, bool) or not 0 < user_id < 2**31:
                raise UserError("Choose a user.")
            me = int(current_user.id)
            if action == "admin-set-role":
                if role not in ROLES:
                    raise UserError("Choose a role.")
                done = change_user(state().engine, user_id, role=role, acting_user_id=me)
                text = f"{done} is now {role}."
            elif action == "admin-deactivate":
                done = change_user(state().engine, user_id, active=False, acting_user_id=me)
                text = f"{done} is deactivated and logged out everywhere."
            elif action == "admin-reactivate":
                done = change_user(state().engine, user_id, active=True, acting_user_id=me)
                text = f"{done} can log in again."
            else:
                return no_update, no_update
    except ValueError as exc:  # UserError, or a password too short
        return html.Span(str(exc), className="text-danger"), no_update
    return html.Span(text, className="text-success"), bump


@roles.callback(
    Output("admin-import-report", "children"),
    Input("admin-upload", "contents"),
    State("admin-upload", "filename"),
    State("admin-skip-invalid", "value"),
    prevent_initial_call=True,
    role=ADMIN,
)
def upload(contents: Any, filename: Any, skip_invalid: Any) -> str:
    """Import an uploaded file with the same checks and report as `custseg import`."""
    if not isinstance(contents, str) or "," not in contents:
        return "No file received."
    name = Path(filename).name if isinstance(filename, str) and filename else "upload.csv"
    if not name.lower().endswith(UPLOAD_SUFFIXES):
        return f"{name}: not a CSV file (expected {' or '.join(UPLOAD_SUFFIXES)})."
    try:
        data = base64.b64decode(contents.split(",", 1)[1], validate=True)
    except (binascii.Error, ValueError):
        return f"{name}: the upload is damaged; try again."
    limit = state().settings.max_upload_mb * 1024 * 1024
    if len(data) > limit:
        return f"{name}: {len(data):,} bytes is over the upload limit of {limit:,} bytes."
    with tempfile.TemporaryDirectory(prefix="custseg-upload-") as tmp:
        path = Path(tmp) / "upload.csv"
        path.write_bytes(data)
        try:
            report = import_file(
                state().engine,
                path,
                skip_invalid=bool(skip_invalid),
                created_by=current_user.email,
                display_name=name,
            )
        except ImportRejected as exc:
            return f"Not imported (nothing was written):\n{exc}"
    return report.summary() + "\n\nRefit to include the new data in the dashboard."


refit_ui.register("admin")
