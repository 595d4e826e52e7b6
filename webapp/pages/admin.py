"""Admin (/admin, admins only): users and roles, import, refit now.

Every callback checks the admin role itself: hiding the page from others is not the protection.
Files are imported by a plain form on their own route (webapp/uploads.py), which comes back here
with `?imported=<batch id>` (or `?already=`) to show the report.
"""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, State, dcc, html, no_update
from dash.dash_table.DataTable import DataTable
from flask_login import current_user

from db.models import ROLES
from db.users import UserError, change_user, create_user, list_users
from webapp import refit_ui, roles, uploads
from webapp.components import bumped, dropdown, field, panel, table_style
from webapp.filters import page_header
from webapp.state import state

dash.register_page(
    __name__, path="/admin", name="Admin", title="Admin", order=90, role="admin", filtered=False
)

ADMIN: roles.Role = "admin"


def _import_report(query: dict[str, Any]) -> list[Any]:
    """The report of the import the form just made (its batch id is in the query)."""
    already = "already" in query
    batch = query.get("already", query.get("imported"))
    text = uploads.batch_summary(state().engine, batch, already)
    if text is None:
        return []
    note = "" if already else "\n\nRefit to include the new data in the dashboard."
    return [html.Pre(text + note, id="admin-import-report", className="small mt-2 mb-0")]


def layout(**query: Any) -> html.Div:
    """Served to admins only (the page's role, webapp/roles.py::protect_pages)."""
    max_mb = state().settings.max_upload_mb
    role_options = [{"label": r, "value": r} for r in ROLES]
    users = panel(
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
                    field(
                        "Email",
                        "admin-new-email",
                        dbc.Input(id="admin-new-email", placeholder="Email", type="email"),
                        hidden=True,
                    ),
                    field(
                        "Password",
                        "admin-new-password",
                        dbc.Input(
                            id="admin-new-password",
                            placeholder="Password (10+ characters)",
                            type="password",
                            autocomplete="new-password",
                        ),
                        hidden=True,
                    ),
                    field(
                        "Role of the new user",
                        "admin-new-role",
                        dropdown("admin-new-role", {r: r for r in ROLES}, "viewer"),
                        hidden=True,
                        md=2,
                    ),
                    dbc.Col(dbc.Button("Add", id="admin-add", size="sm"), width="auto"),
                ],
                className="g-2 align-items-center",
            ),
            html.H6("Change a user", className="mt-3"),
            dbc.Row(
                [
                    field(
                        "User",
                        "admin-user",
                        dcc.Dropdown(id="admin-user", placeholder="User"),
                        hidden=True,
                        md=4,
                    ),
                    field(
                        "New role",
                        "admin-role",
                        dcc.Dropdown(id="admin-role", options=role_options, placeholder="Role"),
                        hidden=True,
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
    upload = panel(
        "Import transactions",
        [
            html.P(
                [
                    "A CSV or Excel (.xlsx) file of order lines, up to "
                    f"{max_mb} MB: the normalized layout, the Online Retail layout or a shop's "
                    "order export. The same checks and report as ",
                    html.Code("custseg import"),
                    ".",
                ],
                className="small",
            ),
            # A plain link: the form is a server page (Dash renders no file input).
            dbc.Button(
                "Import a file…",
                href=uploads.PATH,
                external_link=True,
                size="sm",
                id="admin-import",
            ),
            *_import_report(query),
        ],
    )
    refit = panel(
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
    bump = bumped(changed)
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


refit_ui.register("admin")
