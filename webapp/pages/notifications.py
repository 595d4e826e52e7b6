"""Notifications (/notifications): digests by e-mail, alert rules, their history and the log.

Every user manages their own digest (after every refit, or weekly on a day); admins pick any
user's and see every subscription and delivery. Analysts define alert rules (a KPI against the
previous period, a segment's size or share against the previous snapshot) with e-mail
recipients and a webhook, and see what fired, when and to whom. The scheduler process sends
everything (db/notify.py); this page only records choices, queues a retry and reads the log.
Every callback checks its own role on the server (webapp/roles.py).
"""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, State, dcc, html, no_update
from dash.dash_table.DataTable import DataTable
from flask_login import current_user

from analytics.alerts import DIRECTIONS, KPI_LABELS, RULE_KINDS, SEGMENT_MEASURES
from analytics.digest import WEEKDAYS
from db import jobs, snapshots
from db.delivery import short_url
from db.models import Trigger
from db.notifications import (
    PERIODS,
    NotificationError,
    create_rule,
    delete_rule,
    delivery_counts,
    describe_rule,
    get_subscription,
    list_deliveries,
    list_events,
    list_rules,
    list_subscriptions,
    save_subscription,
    set_rule_enabled,
)
from db.notify import preview
from db.users import list_users
from webapp import roles
from webapp.components import bumped, dropdown, field, label, panel, table_style
from webapp.filters import page_header
from webapp.roles import has_role
from webapp.state import state

dash.register_page(
    __name__,
    path="/notifications",
    name="Notifications",
    title="Notifications",
    order=7,
    role="viewer",
    filtered=False,
)

FREQUENCIES = (
    {"label": "Off", "value": "off"},
    {"label": "After every refit", "value": "refit"},
    {"label": "Weekly", "value": "weekly"},
)
DIRECTION_LABELS = {"either": "up or down", "up": "up", "down": "down"}
# The add-a-rule form: each value's name -> its control (the values of every rule kind).
RULE_FORM = {
    "kind": "notif-kind",
    "metric": "notif-metric",
    "days": "notif-days",
    "segment": "notif-segment",
    "measure": "notif-measure",
    "direction": "notif-direction",
    "threshold": "notif-threshold",
    "name": "notif-name",
    "recipients": "notif-recipients",
    "webhook": "notif-webhook",
}
FAILED_ROWS = [
    {"if": {"filter_query": '{status} = "failed" || {status} = "refused"'}, "color": "#b02a37"}
]


def _message(text: str, ok: bool) -> html.Span:
    return html.Span(text, className="text-success" if ok else "text-danger")


def _setup_notice(admin: bool) -> Any:
    """What the server lacks to send e-mail (admins get the settings to set)."""
    s = state().settings
    missing = [
        name
        for name, value in (
            ("CUSTSEG_SMTP_HOST", s.smtp_host),
            ("CUSTSEG_SMTP_FROM", s.smtp_from),
            (
                "CUSTSEG_PUBLIC_URL (the address users open the app at: the e-mails' links)",
                s.public_url,
            ),
        )
        if not value
    ]
    if not missing:
        return html.Div()
    text = (
        f"E-mail is not sent until these are set: {'; '.join(missing)}. See the README, "
        "Notifications."
        if admin
        else "E-mail is not set up on this server yet: digests and alerts are recorded but not "
        "sent. Ask an admin."
    )
    return dbc.Alert(text, color="warning", className="py-2 small")


def _server_settings() -> html.Ul:
    s = state().settings
    items = [
        f"SMTP: {s.smtp_host or 'not set'}"
        + (f":{s.smtp_port}" if s.smtp_port else "")
        + f" ({s.smtp_security}); user {s.smtp_user or 'none'}; password "
        + ("set" if s.smtp_password else "not set"),
        f"From: {s.smtp_from or 'not set'}",
        f"Links: {s.public_url or 'not set (CUSTSEG_PUBLIC_URL)'}",
        "Webhook hosts: "
        + (", ".join(s.webhook_host_list) or "any host with public addresses only"),
        f"Daily run: {s.notify_cron} (UTC); retries: {s.notify_retries}, "
        f"first after {s.notify_backoff_s:g} s",
    ]
    return html.Ul([html.Li(i) for i in items], className="small mb-0")


def _digest_card(admin: bool) -> dbc.Card:
    me = current_user
    users = list_users(state().engine) if admin else None
    options = (
        [{"label": f"{u.email} ({u.role})", "value": int(u.id)} for u in users.itertuples()]
        if users is not None
        else [{"label": me.email, "value": int(me.id)}]
    )
    body = [
        html.Div(
            [
                label("Subscription of", "notif-user", className="small me-2"),
                dcc.Dropdown(
                    id="notif-user",
                    options=options,
                    value=int(me.id),
                    clearable=False,
                    style={"minWidth": "280px"},
                ),
            ],
            className="d-flex align-items-center mb-2" if admin else "d-none",
        ),
        html.P(
            "A summary by e-mail: the headline figures against the previous period, segment "
            "sizes and their change, the largest moves between segments, with links to the "
            "pages. Every e-mail has a link to unsubscribe.",
            className="small",
        ),
        dbc.RadioItems(
            id="notif-frequency",
            options=list(FREQUENCIES),
            value="off",
            inline=True,
            className="small mb-2",
        ),
        dbc.Row(
            [
                field(
                    "Day (weekly)",
                    "notif-weekday",
                    dropdown("notif-weekday", dict(enumerate(WEEKDAYS)), 0, searchable=False),
                    sm=5,
                ),
                field(
                    "KPIs over the last",
                    "notif-period",
                    dropdown(
                        "notif-period", {d: f"{d} days" for d in PERIODS}, 30, searchable=False
                    ),
                    sm=4,
                ),
            ],
            className="g-2 mb-2",
        ),
        dbc.ButtonGroup(
            [
                dbc.Button("Save", id="notif-save", size="sm"),
                dbc.Button("Preview", id="notif-preview", size="sm", color="secondary"),
            ]
        ),
        html.Div(id="notif-digest-message", className="small mt-2"),
        html.Div(id="notif-digest-status", className="small text-muted mt-1"),
        dcc.Loading(
            html.Pre(
                id="notif-preview-text",
                className="small mt-2 mb-0",
                style={"whiteSpace": "pre-wrap"},
            )
        ),
    ]
    return panel("Digest", body)


def _subscriptions_card() -> dbc.Card:
    return panel(
        "All subscriptions",
        [
            DataTable(
                id="notif-subs",
                style_table={"overflowX": "auto"},
                columns=[
                    {"id": "email", "name": "User"},
                    {"id": "role", "name": "Role"},
                    {"id": "when", "name": "When"},
                    {"id": "period", "name": "KPI period"},
                    {"id": "last_sent_at", "name": "Last sent (UTC)"},
                ],
                page_size=10,
                **table_style(),
            ),
            html.P(
                "Choose a user under Digest above to change or stop theirs.",
                className="small text-muted mt-2 mb-0",
            ),
        ],
        note="admins",
    )


def _rules_card() -> dbc.Card:
    users = list_users(state().engine)
    people = [
        {"label": f"{u.email} ({u.role})", "value": int(u.id)}
        for u in users.itertuples()
        if u.active
    ]
    snap = snapshots.latest_published(state().engine)
    segs = snapshots.segments(state().engine, snap.id) if snap is not None else None
    segment_options = (
        [
            {"label": f"{r.name} ({r.segment_id})", "value": int(r.segment_id)}
            for r in segs.itertuples()
        ]
        if segs is not None
        else []
    )
    hidden = {"display": "none"}
    form = [
        dbc.Row(
            [
                field(
                    "Rule",
                    "notif-kind",
                    dropdown(
                        "notif-kind",
                        {k.name: k.label for k in RULE_KINDS.values()},
                        "kpi_change",
                        searchable=False,
                    ),
                    md=7,
                ),
                field("Name (optional)", "notif-name", dbc.Input(id="notif-name", maxLength=120)),
            ],
            className="g-2 mb-2",
        ),
        dbc.Row(
            [
                field(
                    "KPI",
                    "notif-metric",
                    dropdown("notif-metric", KPI_LABELS, "gross_revenue"),
                    id="notif-kpi-fields",
                    md=4,
                ),
                field(
                    "Period (days)",
                    "notif-days",
                    dbc.Input(id="notif-days", type="number", min=1, max=366, value=30),
                    id="notif-period-fields",
                    md=2,
                ),
                field(
                    "Segment",
                    "notif-segment",
                    dcc.Dropdown(id="notif-segment", options=segment_options),
                    id="notif-segment-fields",
                    md=4,
                    style=hidden,
                ),
                field(
                    "Measure",
                    "notif-measure",
                    dropdown("notif-measure", SEGMENT_MEASURES, "customers"),
                    id="notif-measure-fields",
                    md=2,
                    style=hidden,
                ),
                field(
                    "Moves",
                    "notif-direction",
                    dropdown(
                        "notif-direction", {d: DIRECTION_LABELS[d] for d in DIRECTIONS}, "either"
                    ),
                    md=3,
                ),
                field(
                    "By more than (%)",
                    "notif-threshold",
                    dbc.Input(id="notif-threshold", type="number", min=0, value=20),
                    md=3,
                ),
            ],
            className="g-2 mb-2",
        ),
        dbc.Row(
            [
                field(
                    "E-mail to",
                    "notif-recipients",
                    dcc.Dropdown(
                        id="notif-recipients",
                        options=people,
                        value=[int(current_user.id)],
                        multi=True,
                    ),
                    md=6,
                ),
                field(
                    "Webhook URL (optional: Slack, Mattermost, Teams…)",
                    "notif-webhook",
                    dbc.Input(
                        id="notif-webhook", type="url", placeholder="https://hooks.slack.com/…"
                    ),
                    md=6,
                ),
            ],
            className="g-2 mb-2",
        ),
        dbc.Button("Add rule", id="notif-add-rule", size="sm"),
    ]
    manage = dbc.Row(
        [
            field(
                "Rule",
                "notif-rule",
                dcc.Dropdown(id="notif-rule", placeholder="Rule"),
                hidden=True,
                md=5,
            ),
            dbc.Col(
                dbc.ButtonGroup(
                    [
                        dbc.Button("Enable", id="notif-rule-on", size="sm", color="secondary"),
                        dbc.Button("Disable", id="notif-rule-off", size="sm", color="secondary"),
                        dbc.Button("Delete", id="notif-rule-delete", size="sm", color="danger"),
                    ]
                ),
                width="auto",
            ),
        ],
        className="g-2 align-items-center mt-2",
    )
    return panel(
        "Alert rules",
        [
            html.P(
                "Checked after every refit (and daily). A rule fires when its condition becomes "
                "true, and not again until it has been false.",
                className="small",
            ),
            DataTable(
                id="notif-rules",
                columns=[
                    {"id": "id", "name": "#"},
                    {"id": "name", "name": "Name"},
                    {"id": "condition", "name": "Condition"},
                    {"id": "to", "name": "To"},
                    {"id": "state", "name": "State"},
                    {"id": "last", "name": "Last check"},
                ],
                style_data_conditional=[
                    {
                        "if": {"filter_query": '{state} = "fired"', "column_id": "state"},
                        "fontWeight": "600",
                        "color": "#b02a37",
                    }
                ],
                page_size=10,
                **table_style(whiteSpace="normal", height="auto"),
            ),
            manage,
            html.Hr(),
            html.H6("Add a rule"),
            *form,
            html.Div(id="notif-rule-message", className="small mt-2"),
            dcc.Store(id="notif-rules-changed", data=0),
        ],
        note="analysts",
    )


def _history_card() -> dbc.Card:
    return panel(
        "Alert history",
        DataTable(
            id="notif-history",
            columns=[
                {"id": "fired_at", "name": "Fired (UTC)"},
                {"id": "rule", "name": "Rule"},
                {"id": "snapshot_id", "name": "Snapshot"},
                {"id": "message", "name": "What"},
                {"id": "to", "name": "To whom"},
            ],
            page_size=10,
            **table_style(whiteSpace="normal", height="auto"),
        ),
    )


def _deliveries_card(admin: bool) -> dbc.Card:
    retry = (
        [
            dbc.Button("Send failed ones again", id="notif-retry", size="sm", color="secondary"),
            html.Span(id="notif-retry-message", className="small ms-2"),
        ]
        if admin
        else []
    )
    return panel(
        "Deliveries",
        [
            html.Div(id="notif-delivery-summary", className="small mb-2"),
            DataTable(
                id="notif-deliveries",
                style_table={"overflowX": "auto"},
                columns=[
                    {"id": "created_at", "name": "When (UTC)"},
                    {"id": "what", "name": "What"},
                    {"id": "recipient", "name": "To"},
                    {"id": "subject", "name": "Subject"},
                    {"id": "status", "name": "Status"},
                    {"id": "attempts", "name": "Attempts"},
                    {"id": "error", "name": "Last error"},
                ],
                style_data_conditional=FAILED_ROWS,
                page_size=10,
                **table_style(whiteSpace="normal", height="auto"),
            ),
            html.Div(retry, className="mt-2"),
        ],
        note="every e-mail and webhook call" if admin else "yours",
    )


def layout(**_query: Any) -> html.Div:
    admin, analyst = has_role("admin"), has_role("analyst")
    left: list[Any] = [_digest_card(admin)]
    if admin:
        left.append(_subscriptions_card())
        left.append(panel("Server settings", _server_settings(), note="from the environment"))
    right: list[Any] = []
    if analyst:
        right += [_rules_card(), _history_card()]
    return html.Div(
        [
            page_header(
                "Notifications",
                "A digest by e-mail after each refit or weekly, and alerts when a figure moves.",
            ),
            _setup_notice(admin),
            dcc.Store(id="notif-changed", data=0),
            dbc.Row(
                [dbc.Col(left, lg=5), dbc.Col(right, lg=7)] if right else [dbc.Col(left, lg=7)]
            ),
            _deliveries_card(admin),
        ]
    )


# --- callbacks -----------------------------------------------------------------------------


def _target_user(requested: Any) -> int:
    """Whose digest: any user's for admins, else the user's own whatever the browser sent."""
    if has_role("admin") and isinstance(requested, int) and not isinstance(requested, bool):
        return requested
    return int(current_user.id)


def _day(value: Any) -> str:
    return "–" if value is None or pd.isna(value) else str(value)[:16]


@roles.callback(
    Output("notif-frequency", "value"),
    Output("notif-weekday", "value"),
    Output("notif-period", "value"),
    Output("notif-digest-status", "children"),
    Input("notif-changed", "data"),
    Input("notif-user", "value"),
    role="viewer",
)
def show_digest(_changed: Any, user: Any) -> tuple[Any, Any, Any, Any]:
    sub = get_subscription(state().engine, _target_user(user))
    if sub is None:
        return "off", 0, 30, "No digest."
    sent = (
        f"Last digest {_day(sub.last_sent_at)} UTC (snapshot {sub.last_snapshot_id})."
        if sub.last_sent_at
        else "No digest sent yet: the first comes "
        + ("after the next refit." if sub.frequency == "refit" else "on the chosen day.")
    )
    return str(sub.frequency), sub.weekday or 0, sub.period_days, sent


@roles.callback(
    Output("notif-weekday", "disabled"),
    Input("notif-frequency", "value"),
    role="viewer",
)
def weekday_only_when_weekly(frequency: Any) -> bool:
    return frequency != "weekly"


@roles.callback(
    Output("notif-digest-message", "children"),
    Output("notif-changed", "data"),
    Input("notif-save", "n_clicks"),
    State("notif-frequency", "value"),
    State("notif-weekday", "value"),
    State("notif-period", "value"),
    State("notif-user", "value"),
    State("notif-changed", "data"),
    prevent_initial_call=True,
    role="viewer",
)
def save_digest(
    clicks: Any, frequency: Any, weekday: Any, period: Any, user: Any, changed: Any
) -> tuple[Any, Any]:
    if not clicks:
        return no_update, no_update
    target = _target_user(user)
    try:
        sub = save_subscription(
            state().engine, target, frequency, weekday, period, by=current_user.email
        )
    except NotificationError as exc:
        return _message(str(exc), False), no_update
    bump = bumped(changed)
    if sub is None:
        return _message("Digest stopped.", True), bump
    when = (
        "after every refit" if sub.frequency == "refit" else f"every {WEEKDAYS[sub.weekday or 0]}"
    )
    return _message(f"Saved: the digest comes {when}.", True), bump


@roles.callback(
    Output("notif-preview-text", "children"),
    Input("notif-preview", "n_clicks"),
    State("notif-frequency", "value"),
    State("notif-weekday", "value"),
    State("notif-period", "value"),
    State("notif-user", "value"),
    prevent_initial_call=True,
    role="viewer",
)
def preview_digest(clicks: Any, frequency: Any, weekday: Any, period: Any, user: Any) -> Any:
    """The digest's plain text as its reader would get it now (their role's exports)."""
    if not clicks:
        return no_update
    if period not in PERIODS:
        return "Choose a KPI period."
    engine = state().engine
    target = _target_user(user)
    users = list_users(engine)
    row = users[users["id"] == target]
    if row.empty:
        return "No such user."
    sub = get_subscription(engine, target)
    text = preview(
        engine,
        state().settings,
        state().exporter,
        role=str(row.iloc[0]["role"]),
        frequency=frequency if frequency in ("refit", "weekly") else "refit",
        weekday=weekday if isinstance(weekday, int) and 0 <= weekday <= 6 else None,
        period_days=int(period),
        last_snapshot_id=sub.last_snapshot_id if sub is not None else None,
    )
    return text or "No snapshot yet: the first digest comes after the first refit."


@roles.callback(
    Output("notif-subs", "data"),
    Input("notif-changed", "data"),
    role="admin",
)
def show_subscriptions(_changed: Any) -> list[dict[str, Any]]:
    subs = list_subscriptions(state().engine)
    return [
        {
            "email": r.email + ("" if r.active else " (deactivated)"),
            "role": r.role,
            "when": "after every refit"
            if r.frequency == "refit"
            else f"weekly, {WEEKDAYS[int(r.weekday)]}",
            "period": f"{r.period_days} days",
            "last_sent_at": _day(r.last_sent_at),
        }
        for r in subs.itertuples()
    ]


@roles.callback(
    Output("notif-kpi-fields", "style"),
    Output("notif-period-fields", "style"),
    Output("notif-segment-fields", "style"),
    Output("notif-measure-fields", "style"),
    Input("notif-kind", "value"),
    role="analyst",
)
def rule_fields(kind: Any) -> tuple[Any, ...]:
    shown: dict[str, str] = {}
    hidden = {"display": "none"}
    kpi = kind != "segment_change"
    return (shown, shown, hidden, hidden) if kpi else (hidden, hidden, shown, shown)


def _names() -> dict[int, str]:
    snap = snapshots.latest_published(state().engine)
    if snap is None:
        return {}
    segs = snapshots.segments(state().engine, snap.id)
    return dict(zip(segs["segment_id"].astype(int), segs["name"], strict=True))


@roles.callback(
    Output("notif-rules", "data"),
    Output("notif-rule", "options"),
    Output("notif-history", "data"),
    Input("notif-rules-changed", "data"),
    role="analyst",
)
def show_rules(_changed: Any) -> tuple[Any, Any, Any]:
    engine = state().engine
    emails = dict(zip(*(list_users(engine)[c] for c in ("id", "email")), strict=True))
    names = _names()
    rows, options = [], []
    for rule in list_rules(engine):
        to = [emails.get(i, f"user {i}") for i in rule.email_user_ids or []]
        if rule.webhook_url:
            to.append(short_url(rule.webhook_url))
        state_text = str(rule.state) if rule.enabled else "disabled"
        rows.append(
            {
                "id": rule.id,
                "name": rule.name,
                "condition": describe_rule(rule, names),
                "to": ", ".join(to) or "nobody",
                "state": state_text,
                "last": rule.last_message or "not checked yet",
            }
        )
        options.append({"label": f"#{rule.id} {rule.name} ({state_text})", "value": rule.id})
    history = list_events(engine)
    events = [
        {**r, "fired_at": _day(r["fired_at"]), "snapshot_id": r["snapshot_id"]}
        for r in history.to_dict("records")
    ]
    return rows, options, events


@roles.callback(
    Output("notif-rule-message", "children"),
    Output("notif-rules-changed", "data"),
    Input("notif-add-rule", "n_clicks"),
    Input("notif-rule-on", "n_clicks"),
    Input("notif-rule-off", "n_clicks"),
    Input("notif-rule-delete", "n_clicks"),
    *(State(ident, "value") for ident in RULE_FORM.values()),
    State("notif-rule", "value"),
    State("notif-rules-changed", "data"),
    prevent_initial_call=True,
    role="analyst",
)
def change_rules(
    _add: Any,
    _on: Any,
    _off: Any,
    _delete: Any,
    *rest: Any,
) -> tuple[Any, Any]:
    """Add a rule from the form, or enable, disable or delete the chosen one."""
    *form, rule_id, changed = rest
    action = dash.ctx.triggered_id
    engine = state().engine
    try:
        if action == "notif-add-rule":
            text = _add_rule(dict(zip(RULE_FORM, form, strict=True)))
        elif action == "notif-rule-delete":
            text = f"Rule “{delete_rule(engine, rule_id)}” deleted (its history stays)."
        elif action in ("notif-rule-on", "notif-rule-off"):
            rule = set_rule_enabled(engine, rule_id, action == "notif-rule-on")
            text = f"Rule “{rule.name}” " + ("enabled." if rule.enabled else "disabled.")
        else:
            return no_update, no_update
    except NotificationError as exc:
        return _message(str(exc), False), no_update
    return _message(text, True), bumped(changed)


def _add_rule(form: dict[str, Any]) -> str:
    """Create the rule of the form's values (by RULE_FORM's names)."""
    common = {"direction": form["direction"], "threshold_pct": form["threshold"]}
    params = (
        {"segment_id": form["segment"], "measure": form["measure"], **common}
        if form["kind"] == "segment_change"
        else {"metric": form["metric"], "period_days": form["days"], **common}
    )
    recipients = form["recipients"]
    if recipients is not None and not isinstance(recipients, list):
        raise NotificationError("The recipients are not valid.")
    rule = create_rule(
        state().engine,
        state().settings,
        name=form["name"],
        kind=form["kind"],
        params=params,
        email_user_ids=recipients or [],
        webhook_url=form["webhook"],
        by=current_user.email,
    )
    return f"Rule #{rule.id} “{rule.name}” added."


@roles.callback(
    Output("notif-deliveries", "data"),
    Output("notif-delivery-summary", "children"),
    Input("notif-changed", "data"),
    role="viewer",
)
def show_deliveries(_changed: Any) -> tuple[Any, Any]:
    engine = state().engine
    admin = has_role("admin")
    frame = list_deliveries(engine, user_id=None if admin else int(current_user.id))
    rows = [
        {
            **r,
            "created_at": _day(r["created_at"]),
            "what": f"{r['what']} ({r['channel']})",
            "error": r["error"] or "",
        }
        for r in frame.drop(columns=["sent_at"]).to_dict("records")
    ]
    summary: Any = ""
    if admin:
        counts = delivery_counts(engine)
        bad = counts.get("failed", 0) + counts.get("refused", 0)
        text = ", ".join(f"{n:,} {s}" for s, n in sorted(counts.items())) or "nothing sent yet"
        summary = html.Span(
            f"All deliveries: {text}.", className="text-danger" if bad else "text-muted"
        )
    return rows, summary


@roles.callback(
    Output("notif-retry-message", "children"),
    Input("notif-retry", "n_clicks"),
    prevent_initial_call=True,
    role="admin",
)
def retry_failed(clicks: Any) -> Any:
    """Queue a notify run that sends the failed deliveries of the last day again."""
    if not clicks:
        return no_update
    job, new = jobs.enqueue(
        state().engine,
        "notify",
        {"retry": True},
        trigger=Trigger.WEB,
        requested_by=current_user.email,
    )
    return _message(
        f"Queued (job {job.id}): the scheduler sends them again."
        if new
        else f"Already queued (job {job.id}).",
        True,
    )
