"""Campaigns (/campaigns): audiences frozen from a snapshot with a random holdout, and what
each campaign did against its holdout.

`/campaigns` lists the campaigns (filters in the URL: `status`, `q`) and, for analysts, the form
of a new one: a rule over one snapshot's customers, the holdout share and the dates, with the
sizes the split will give before saving. `/campaigns?campaign=N` shows one campaign: its lifts
with their 95% intervals and what they mean, the figures of each group in the campaign window
and the days before it, and cumulative revenue per customer by day since the start.

Viewers see these aggregate results; customer ids never reach them. Creating, exporting the
treatment list, refreshing the results and deleting are for analysts (each callback's role), and
every create, export and delete is logged. The results come from the tables the
`campaign_results` job writes (db/campaigns.py): this page never reads transactions.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, State, dcc, html, no_update
from flask_login import current_user

from analytics import campaigns as calc
from analytics.exports import Filters, View
from analytics.rfm import STAGES
from db import campaigns, jobs, snapshots
from db.exporter import Forbidden
from db.models import Trigger
from webapp import charts, roles
from webapp.components import (
    bumped,
    chart_card,
    dropdown,
    field,
    graph,
    integer,
    label,
    money,
    panel,
    percent,
    small_button,
    small_label,
)
from webapp.filters import (
    FilterError,
    page_header,
    parse_choice,
    parse_day,
    parse_segments,
    parse_snapshot,
    parse_text,
    snapshot_options,
)
from webapp.job_status import progress, waiting
from webapp.pagekit import Extra, Kit, chart_callback, message
from webapp.roles import has_role
from webapp.state import state

dash.register_page(
    __name__,
    path="/campaigns",
    name="Campaigns",
    title="Campaigns",
    order=7,
    role="viewer",
    filtered=False,
)

EDIT_ROLE: roles.Role = "analyst"  # create, export, refresh, delete
STATUS_CHOICES = ("all", *calc.STATUSES)
STATUS_COLORS = {calc.DRAFT: "secondary", calc.RUNNING: "success", calc.ENDED: "dark"}
RANGE_FIELDS = tuple(f for f in calc.FIELDS.values() if f.kind == "range")
MAX_SEARCH = 60


def _campaign_id(value: object) -> int | None:
    """A campaign id from the URL (text) or a store (a number); None if it is none."""
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    try:
        return parse_snapshot(value, "campaign")
    except FilterError:
        return None


def layout(campaign: object = None, status: object = None, q: object = None, **_: Any) -> Any:
    campaign_id = _campaign_id(campaign)
    if campaign_id is not None:
        return _detail(campaign_id)
    shown = status if isinstance(status, str) and status in STATUS_CHOICES else "all"
    search = q[:MAX_SEARCH] if isinstance(q, str) and q.isprintable() else ""
    return _list(shown, search)


# --- the list ----------------------------------------------------------------------------------


def _list(status: str, search: str) -> html.Div:
    filters = dbc.Row(
        [
            field(
                "Status",
                "campaigns-status",
                dropdown(
                    "campaigns-status",
                    {s: s.capitalize() for s in STATUS_CHOICES},
                    status,
                    searchable=False,
                ),
                hidden=True,
                style={"width": "170px"},
                width="auto",
            ),
            field(
                "Campaign name contains",
                "campaigns-search",
                dbc.Input(
                    id="campaigns-search",
                    value=search,
                    placeholder="Name contains…",
                    debounce=True,
                    maxLength=MAX_SEARCH,
                ),
                hidden=True,
                style={"width": "240px"},
                width="auto",
            ),
        ],
        className="g-2 align-items-center filter-bar border-bottom pb-2 mb-3",
    )
    return html.Div(
        [
            dcc.Location(id="campaigns-go", refresh="callback-nav"),
            dcc.Location(id="campaigns-query", refresh=False),  # the filters, without reloading
            page_header(
                "Campaigns",
                "Audiences frozen from a snapshot's customers, with a random holdout who do "
                "not get the campaign; what each campaign did against its holdout.",
            ),
            filters,
            html.Div(id="campaigns-message"),
            chart_card(
                "campaigns-list",
                "Campaigns",
                "Status comes from the dates: draft before the start, running until the end "
                "date, ended after it. Lift = treatment − holdout over the campaign window so "
                "far, with its 95% interval in brackets.",
                html.Div(id="campaigns-list"),
                exportable=False,
            ),
            _new_campaign() if has_role(EDIT_ROLE) else None,
            chart_card(
                "campaigns-log",
                "Activity",
                "Every campaign created, exported or deleted: who, when and the group sizes.",
                html.Div(id="campaigns-log"),
                exportable=False,
            ),
        ]
    )


def _status_badge(status: str) -> dbc.Badge:
    return dbc.Badge(status, color=STATUS_COLORS.get(status, "secondary"), className="fw-normal")


def _lift(value: Any, low: Any, high: Any, points: bool) -> Any:
    if any(v is None or pd.isna(v) for v in (value, low, high)):
        return html.Span("–", className="text-muted")
    scale, unit = (100, " pts") if points else (1, "")
    fmt = ".1f" if points else ",.2f"
    detected = low > 0 or high < 0
    return html.Span(
        [
            html.Span(
                f"{value * scale:+{fmt}}{unit}",
                className="fw-semibold" + (" text-success" if low > 0 else ""),
            ),
            html.Span(
                f" ({low * scale:+{fmt}} to {high * scale:+{fmt}})", className="text-muted small"
            ),
        ],
        title="The interval excludes zero" if detected else "The interval includes zero",
    )


@chart_callback(
    "campaigns",
    {"campaigns-list": "children"},
    inputs={
        "status": Input("campaigns-status", "value"),
        "search": Input("campaigns-search", "value"),
    },
    extras={"log": Extra(Output("campaigns-log", "children"), None)},
)
def campaign_list(kit: Kit, status: Any = "all", search: Any = None) -> dict[str, Any]:
    """The campaigns in the chosen status whose name holds the search text, and the log."""
    status = parse_choice(status or "all", STATUS_CHOICES, "status")
    text = (parse_text(search, "search", MAX_SEARCH) or "").casefold()
    found = campaigns.list_campaigns(state().engine)
    if status != "all":
        found = found[found["status"] == status]
    if text:
        found = found[found["name"].str.casefold().str.contains(text, regex=False)]
    log = _log(campaigns.events(state().engine, limit=20), with_name=True)
    if found.empty:
        none = "No campaign yet." if status == "all" and not text else "No campaign matches."
        hint = " Create one below." if has_role(EDIT_ROLE) else ""
        return {"campaigns-list": html.P(none + hint, className="text-muted mb-0"), "log": log}
    head = html.Thead(
        html.Tr(
            [
                html.Th(h, className=c)
                for h, c in (
                    ("Campaign", ""),
                    ("Status", ""),
                    ("Dates", ""),
                    ("Treatment", "text-end"),
                    ("Holdout", "text-end"),
                    ("Conversion lift", ""),
                    ("Revenue / customer lift", ""),
                    ("Results through", ""),
                )
            ]
        )
    )
    rows = [
        html.Tr(
            [
                html.Td(
                    [
                        dcc.Link(r.name, href=f"/campaigns?campaign={r.campaign_id}"),
                        html.Div(
                            r.rule,
                            className="small text-muted text-truncate",
                            style={"maxWidth": "360px"},
                            title=r.rule,
                        ),
                    ]
                ),
                html.Td(_status_badge(r.status)),
                html.Td(f"{r.start_date} – {r.end_date or 'open'}", className="text-nowrap"),
                html.Td(integer(int(r.treatment)), className="text-end"),
                html.Td(integer(int(r.holdout)), className="text-end"),
                html.Td(_lift(r.conversion_lift, r.conversion_low, r.conversion_high, True)),
                html.Td(_lift(r.revenue_lift, r.revenue_low, r.revenue_high, False)),
                html.Td(str(r.results_through or "–"), className="text-nowrap"),
            ]
        )
        for r in found.itertuples()
    ]
    table = dbc.Table([head, html.Tbody(rows)], hover=True, size="sm", className="mb-0 small")
    return {"campaigns-list": table, "log": log}


@roles.callback(
    Output("campaigns-query", "search"),
    Input("campaigns-status", "value"),
    Input("campaigns-search", "value"),
    prevent_initial_call=True,
    role="viewer",
)
def remember_filters(status: Any, search: Any) -> str:
    """The list's filters in the address bar, so a link reproduces the list."""
    pairs = []
    if isinstance(status, str) and status in calc.STATUSES:
        pairs.append(("status", status))
    if isinstance(search, str) and search.strip() and len(search) <= MAX_SEARCH:
        pairs.append(("q", search.strip()))
    return "?" + urlencode(pairs) if pairs else ""


# What each logged action reads as: in the list of every campaign, and on one campaign's page.
VERBS = {
    "create": ("created", "created it"),
    "export": ("exported the treatment list of", "exported the treatment list"),
    "delete": ("deleted", "deleted it"),
}


def _log(frame: pd.DataFrame, with_name: bool = False) -> Any:
    """The log, newest first: when, who, what, and the group sizes at the time."""
    if frame.empty:
        return html.P("Nothing yet.", className="text-muted mb-0 small")
    items = []
    for r in frame.itertuples():
        verb = VERBS.get(r.action, (r.action, r.action))[0 if with_name else 1]
        name = f" “{r.campaign_name}”" if with_name else ""
        details = r.details if isinstance(r.details, dict) else {}
        extra = ""
        if r.action == "export" and details:
            extra = f" ({details.get('rows', 0):,} rows, {str(details.get('format', '')).upper()})"
        items.append(
            html.Li(
                [
                    html.Span(f"{r.at:%Y-%m-%d %H:%M} UTC", className="text-muted me-2"),
                    html.Strong(r.actor or "unknown"),
                    f" {verb}{name}{extra} · treatment {int(r.treatment or 0):,}, "
                    f"holdout {int(r.holdout or 0):,}",
                ]
            )
        )
    return html.Ul(items, className="list-unstyled small mb-0")


# --- a new campaign ----------------------------------------------------------------------------


def _range_inputs(available: set[str]) -> tuple[list[Any], list[str]]:
    """Min / max inputs of each range field; those the snapshot lacks stay hidden (their
    inputs exist, so the form's callbacks always have every input)."""
    shown, missing = [], []
    for f in RANGE_FIELDS:
        row = dbc.Col(
            [
                small_label(f.label, f"campaign-{f.name}-min"),
                label(f"{f.label}: up to", f"campaign-{f.name}-max", hidden=True),
                dbc.InputGroup(
                    [
                        dbc.Input(
                            id=f"campaign-{f.name}-min",
                            type="number",
                            placeholder="from",
                            debounce=True,
                            min=f.low,
                            max=f.high,
                        ),
                        dbc.Input(
                            id=f"campaign-{f.name}-max",
                            type="number",
                            placeholder="to",
                            debounce=True,
                            min=f.low,
                            max=f.high,
                        ),
                    ],
                ),
            ],
            md=6,
            xl=3,
            className="" if f.column in available else "d-none",
        )
        shown.append(row)
        if f.column not in available:
            missing.append(f.label)
    return shown, missing


def _new_campaign() -> dbc.Card:
    snaps = snapshots.published(state().engine)
    if not snaps:
        return dbc.Card(
            dbc.CardBody(
                "A campaign's audience is drawn from a snapshot: make the first one "
                "(custseg refit) to create campaigns.",
                className="small text-muted",
            ),
            className="shadow-sm mb-3",
        )
    ranges, missing = _range_inputs(campaigns.rule_columns())
    missing_note = html.Div(
        [
            f"Not in snapshots yet: {', '.join(missing)} (once refits store predictions). "
            if missing
            else "",
            "Country is not in snapshots: ",
            html.Code("custseg campaign create --country"),
            " reads it from the transactions.",
        ],
        className="small text-muted mb-2",
    )
    today = datetime.now(UTC).date().isoformat()
    body = [
        dbc.Row(
            [
                field(
                    "Name",
                    "campaign-name",
                    dbc.Input(
                        id="campaign-name",
                        maxLength=calc.MAX_NAME,
                        placeholder="e.g. Spring win-back",
                    ),
                    md=6,
                ),
                field(
                    "Audience drawn from snapshot",
                    "campaign-snapshot",
                    dcc.Dropdown(
                        id="campaign-snapshot",
                        options=snapshot_options(snaps),
                        value=snaps[0].id,
                        clearable=False,
                        searchable=False,
                    ),
                    md=6,
                ),
            ],
            className="g-2 mb-2",
        ),
        html.Div("Rule: customers meeting every condition given", className="small fw-semibold"),
        dbc.Row(
            [
                field(
                    "Segments",
                    "campaign-segments",
                    dcc.Dropdown(id="campaign-segments", multi=True, placeholder="Any segment"),
                    md=6,
                ),
                field(
                    "Lifecycle stages",
                    "campaign-stages",
                    dcc.Dropdown(
                        id="campaign-stages",
                        options=[{"label": s, "value": s} for s in STAGES],
                        multi=True,
                        placeholder="Any stage",
                    ),
                    md=6,
                ),
            ],
            className="g-2 mb-2",
        ),
        dbc.Row(ranges, className="g-2 mb-1"),
        missing_note,
        dbc.Row(
            [
                field(
                    "Holdout (%)",
                    "campaign-holdout",
                    dbc.Input(
                        id="campaign-holdout",
                        type="number",
                        value=round(calc.DEFAULT_HOLDOUT * 100),
                        min=calc.MIN_HOLDOUT * 100,
                        max=calc.MAX_HOLDOUT * 100,
                        step=1,
                    ),
                    xs=4,
                    md=2,
                ),
                field(
                    "Start",
                    "campaign-start",
                    html.Div(
                        dcc.DatePickerSingle(
                            id="campaign-start",
                            date=today,
                            display_format="YYYY-MM-DD",
                            first_day_of_week=1,
                        )
                    ),
                    width="auto",
                ),
                field(
                    "End (optional)",
                    "campaign-end",
                    html.Div(
                        dcc.DatePickerSingle(
                            id="campaign-end",
                            display_format="YYYY-MM-DD",
                            first_day_of_week=1,
                            clearable=True,
                            placeholder="open",
                        )
                    ),
                    width="auto",
                ),
            ],
            className="g-3 mb-3 align-items-end",
        ),
        html.Div(id="campaign-preview-message"),
        dcc.Loading(html.Div(id="campaign-preview"), type="dot", delay_show=300),
        html.Div(
            [
                dbc.Button("Save campaign", id="campaign-save", color="primary", size="sm"),
                html.Span(id="campaign-save-message", className="small ms-2"),
            ],
            className="mt-2",
        ),
    ]
    return panel("New campaign", body, header_id="new-campaign", className="p-3")


FORM: dict[str, Input | State] = {
    "name": Input("campaign-name", "value"),
    "snapshot_id": Input("campaign-snapshot", "value"),
    "segment_ids": Input("campaign-segments", "value"),
    "stages": Input("campaign-stages", "value"),
    **{
        f"{f.name}_{end}": Input(f"campaign-{f.name}-{end}", "value")
        for f in RANGE_FIELDS
        for end in ("min", "max")
    },
    "holdout": Input("campaign-holdout", "value"),
    "start_day": Input("campaign-start", "date"),
    "end_day": Input("campaign-end", "date"),
}


def _rule(values: dict[str, Any]) -> dict[str, Any]:
    """The rule's JSON from the form (every value is checked by analytics.campaigns)."""
    rule: dict[str, Any] = {}
    segments = parse_segments(values.get("segment_ids"))
    if segments:
        rule["segment"] = list(segments)
    stages = values.get("stages")
    if stages:
        rule["stage"] = stages
    for f in RANGE_FIELDS:
        low, high = values.get(f"{f.name}_min"), values.get(f"{f.name}_max")
        if low not in (None, "") or high not in (None, ""):
            rule[f.name] = [low, high]
    return rule


def _share(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise calc.RuleError("Give the holdout as a percentage, e.g. 10.")
    return calc.check_share(value / 100)


def _preview_table(got: campaigns.Preview, kit: Kit) -> Any:
    pal = kit.palette
    rows = [
        html.Tr(
            [
                html.Td(
                    [html.Span("■ ", style={"color": pal.color(int(r.segment_id))}), r.segment]
                ),
                html.Td(integer(int(r.customers)), className="text-end"),
                html.Td(integer(int(r.treatment)), className="text-end"),
                html.Td(integer(int(r.holdout)), className="text-end"),
            ]
        )
        for r in got.sizes.itertuples()
    ]
    total = html.Tr(
        [
            html.Th("Total"),
            html.Th(integer(len(got.audience)), className="text-end"),
            html.Th(integer(got.treatment), className="text-end", id="campaign-preview-treatment"),
            html.Th(integer(got.holdout), className="text-end", id="campaign-preview-holdout"),
        ]
    )
    head = html.Thead(
        html.Tr(
            [
                html.Th("Segment"),
                html.Th("Customers", className="text-end"),
                html.Th("Treatment", className="text-end"),
                html.Th("Holdout", className="text-end"),
            ]
        )
    )
    return html.Div(
        [
            html.Div(
                [html.Span("Audience: ", className="text-muted"), got.text],
                className="small mb-1",
            ),
            dbc.Table(
                [head, html.Tbody([*rows, total])],
                size="sm",
                className="small mb-0",
                style={"maxWidth": "560px"},
            ),
            html.Div(
                "Sizes before saving: each segment holds out its share, rounded to a whole "
                "customer; who is held out is drawn at random when you save.",
                className="small text-muted",
            ),
        ]
    )


@chart_callback(
    "campaign-new",
    {},
    inputs=FORM,
    extras={"preview": Extra(Output("campaign-preview", "children"), None)},
    role=EDIT_ROLE,
    message_to="campaign-preview-message",
)
def preview(kit: Kit, **values: Any) -> dict[str, Any]:
    """The audience and its treatment / holdout sizes, before saving."""
    snapshot_id = parse_snapshot(values.get("snapshot_id"))
    kit = Kit(View(Filters(), snapshot_id))
    src = kit.sources()
    rule = calc.parse_rule(_rule(values))
    share = _share(values.get("holdout"))
    got = campaigns.preview(rule, campaigns.rule_frame(src, rule), src.segments, src.snap.id, share)
    if got.audience.empty:
        return {"message": message("No customer of this snapshot matches the rule.", "light")}
    return {"preview": _preview_table(got, kit)}


@roles.callback(
    Output("campaign-segments", "options"),
    Output("campaign-segments", "value"),
    Input("campaign-snapshot", "value"),
    State("campaign-segments", "value"),
    role=EDIT_ROLE,
)
def segment_choices(snapshot_id: Any, chosen: Any) -> tuple[Any, Any]:
    """The chosen snapshot's segments (the ones picked that it has stay picked)."""
    try:
        snap = snapshots.get_snapshot(state().engine, parse_snapshot(snapshot_id))
        picked = parse_segments(chosen)
    except (FilterError, snapshots.NoSnapshot):
        return [], []
    segs = snapshots.segments(state().engine, snap.id)
    options = [
        {"label": f"{r.name} ({r.customers:,})", "value": int(r.segment_id)}
        for r in segs.itertuples()
    ]
    known = {o["value"] for o in options}
    return options, [s for s in picked if s in known]


@roles.callback(
    Output("campaign-save-message", "children"),
    Output("campaigns-go", "href"),
    Input("campaign-save", "n_clicks"),
    *(State(i.component_id, i.component_property) for i in FORM.values()),
    prevent_initial_call=True,
    role=EDIT_ROLE,
)
def save(clicks: Any, *form: Any) -> tuple[Any, Any]:
    """Freeze the audience, split it and open the new campaign's page."""
    if not clicks:
        return no_update, no_update
    values = dict(zip(FORM, form, strict=True))
    try:
        snapshot_id = parse_snapshot(values.get("snapshot_id"))
        src = Kit(View(Filters(), snapshot_id)).sources()
        rule = calc.parse_rule(_rule(values))
        made = campaigns.create(
            state().engine,
            name=values.get("name"),
            rule=rule,
            snapshot=src.snap,
            customers=campaigns.rule_frame(src, rule),
            segments=src.segments,
            holdout_share=_share(values.get("holdout")),
            start=parse_day(values.get("start_day"), "start date"),
            end=parse_day(values.get("end_day"), "end date"),
            created_by=current_user.email,
            trigger=Trigger.WEB,
        )
    except (ValueError, snapshots.NoSnapshot) as exc:
        return html.Span(str(exc), className="text-danger"), no_update
    return html.Span(f"Campaign {made.id} saved.", className="text-success"), (
        f"/campaigns?campaign={made.id}"
    )


# --- one campaign ------------------------------------------------------------------------------


def _kpi(label: str, value: Any, ident: str, note: str = "") -> dbc.Col:
    return dbc.Col(
        html.Div(
            [
                html.Div(label, className="text-muted small"),
                html.Div(value, className="fs-5 fw-semibold", id=ident),
                html.Div(note, className="small text-muted", id=f"{ident}-note"),
            ],
            className="border rounded p-2 h-100",
        ),
        xs=6,
        lg=3,
    )


def _detail(campaign_id: int) -> html.Div:
    try:
        c = campaigns.get(state().engine, campaign_id)
    except campaigns.UnknownCampaign:
        return html.Div(
            [
                dcc.Link("← All campaigns", href="/campaigns", className="small"),
                dbc.Alert(
                    f"There is no campaign {campaign_id} (it may have been deleted).",
                    color="light",
                    className="border mt-2",
                ),
            ]
        )
    status = campaigns.status_of(c)
    size = c.treatment_size + c.holdout_size
    actions: Any = None
    if has_role(EDIT_ROLE):
        actions = html.Div(
            [
                html.Div(
                    [
                        html.Span("Treatment list for the sending tool:", className="small"),
                        small_button("CSV", "campaign-export-csv", color="primary"),
                        small_button("XLSX", "campaign-export-xlsx", color="primary"),
                        small_button(
                            "Refresh results",
                            "campaign-refresh",
                            className="ms-3",
                            title="Measure this campaign again from the transactions now",
                        ),
                        html.Div(
                            dcc.ConfirmDialogProvider(
                                small_button("Delete", color="danger"),
                                id="campaign-delete",
                                message=f"Delete campaign “{c.name}”, its frozen audience and its "
                                "results? The activity log keeps a record.",
                            ),
                            className="ms-auto",
                        ),
                    ],
                    className="d-flex flex-wrap align-items-center gap-2",
                ),
                dcc.Download(id="campaign-download"),
                html.Div(id="campaign-action-message", className="small mt-1"),
                dcc.Interval(id="campaign-poll", interval=1500, disabled=True),
                dcc.Store(id="campaign-job"),
            ],
            className="mb-3",
        )
    return html.Div(
        [
            dcc.Location(id="campaigns-go", refresh="callback-nav"),
            dcc.Store(id="campaign-id", data=c.id),
            dcc.Store(id="campaign-refreshed", data=0),
            dcc.Link("← All campaigns", href="/campaigns", className="small"),
            html.Div(
                [
                    html.H2(c.name, className="h4 mb-0 me-2 d-inline"),
                    _status_badge(status),
                ],
                className="mt-1",
            ),
            html.P(
                [
                    f"{c.start_date} – {c.end_date or 'open-ended'} · audience: {c.rule_text} · "
                    f"drawn from snapshot {c.snapshot_id} (as of {c.snapshot_as_of}) by "
                    f"{c.created_by or 'unknown'} on {c.created_at:%Y-%m-%d}",
                ],
                className="text-muted small mb-2",
            ),
            actions,
            html.Div(id="campaign-message"),
            dbc.Row(
                [
                    _kpi(
                        "Treatment",
                        integer(c.treatment_size),
                        "campaign-treatment",
                        f"{1 - c.holdout_share:.0%} of {size:,}",
                    ),
                    _kpi(
                        "Holdout",
                        integer(c.holdout_size),
                        "campaign-holdout",
                        f"{c.holdout_share:.0%}, never in the exported list",
                    ),
                    _kpi("Conversion lift", "…", "campaign-lift-conversion"),
                    _kpi("Revenue per customer lift", "…", "campaign-lift-revenue"),
                ],
                className="g-2 mb-2",
            ),
            html.Div(id="campaign-verdicts", className="mb-2"),
            dbc.Row(
                [
                    dbc.Col(
                        chart_card(
                            "campaign-groups",
                            "Treatment and holdout",
                            "Over the campaign window so far and the same number of days just "
                            "before it. Conversion: share of the group with a positive order. "
                            "Revenue per customer: gross revenue of positive orders / customers "
                            "in the group (non-buyers count as 0). AOV: revenue / orders.",
                            html.Div(id="campaign-groups"),
                            exportable=False,
                        ),
                        lg=6,
                    ),
                    dbc.Col(
                        chart_card(
                            "campaign-cumulative",
                            "Cumulative revenue per customer",
                            "Treatment against holdout by day since the start: the gap between "
                            "the lines is the revenue per customer the campaign added so far.",
                            graph("campaign-cumulative", 320),
                            exportable=False,
                        ),
                        lg=6,
                    ),
                ],
                className="g-3",
            ),
            chart_card(
                "campaign-log",
                "Activity",
                "Who created, exported or deleted this campaign, when, and the sizes.",
                html.Div(id="campaign-log"),
                exportable=False,
            ),
        ]
    )


def _lift_card(row: pd.Series | None, points: bool) -> tuple[Any, Any]:
    """A lift's value (green above zero, red below, when its interval excludes zero) and its
    95% interval."""
    if row is None or pd.isna(row["lift"]):
        return "–", "not measured yet"
    scale, unit, fmt = (100, " pts", ".1f") if points else (1, "", ",.2f")
    value = f"{row['lift'] * scale:+{fmt}}{unit}"
    if pd.isna(row["low"]):
        return value, "too few customers to tell"
    color = "text-success" if row["low"] > 0 else "text-danger" if row["high"] < 0 else ""
    note = f"95% CI {row['low'] * scale:+{fmt}} to {row['high'] * scale:+{fmt}}{unit}"
    return html.Span(value, className=color), note


def _groups_table(groups: pd.DataFrame) -> Any:
    head = html.Thead(
        html.Tr(
            [
                html.Th(""),
                *(
                    html.Th(h, className="text-end")
                    for h in (
                        "Customers",
                        "Ordered",
                        "Conversion",
                        "Orders",
                        "Rev./customer",
                        "AOV",
                    )
                ),
            ]
        )
    )
    body = []
    for period in calc.PERIODS:
        part = groups[groups["period"] == period]
        if part.empty:
            continue
        first, last = part["first_day"].iloc[0], part["last_day"].iloc[0]
        title = "Campaign window" if period == calc.WINDOW else "Same length before"
        body.append(
            html.Tr(
                html.Td(
                    [html.Strong(title), html.Span(f" {first} – {last}", className="text-muted")],
                    colSpan=7,
                    className="pt-2",
                )
            )
        )
        for r in part.itertuples():
            body.append(
                html.Tr(
                    [
                        html.Td(r.group.capitalize(), className="ps-3"),
                        html.Td(integer(int(r.customers)), className="text-end"),
                        html.Td(integer(int(r.buyers)), className="text-end"),
                        html.Td(
                            percent(r.conversion if pd.notna(r.conversion) else None),
                            className="text-end",
                        ),
                        html.Td(integer(int(r.orders)), className="text-end"),
                        html.Td(
                            money(
                                r.revenue_per_customer if pd.notna(r.revenue_per_customer) else None
                            ),
                            className="text-end",
                        ),
                        html.Td(money(r.aov if pd.notna(r.aov) else None), className="text-end"),
                    ]
                )
            )
    return dbc.Table([head, html.Tbody(body)], size="sm", className="small mb-0")


@chart_callback(
    "campaign",
    {"campaign-cumulative": "figure"},
    inputs={
        "campaign": Input("campaign-id", "data"),
        "refreshed": Input("campaign-refreshed", "data"),
    },
    extras={
        "conversion": Extra(Output("campaign-lift-conversion", "children"), "–"),
        "conversion-note": Extra(Output("campaign-lift-conversion-note", "children"), ""),
        "revenue": Extra(Output("campaign-lift-revenue", "children"), "–"),
        "revenue-note": Extra(Output("campaign-lift-revenue-note", "children"), ""),
        "verdicts": Extra(Output("campaign-verdicts", "children"), None),
        "groups": Extra(Output("campaign-groups", "children"), None),
        "log": Extra(Output("campaign-log", "children"), None),
    },
)
def results(kit: Kit, campaign: Any = None, refreshed: Any = None) -> dict[str, Any]:
    """A campaign's last measurement, from the result tables (aggregates only: any role)."""
    campaign_id = parse_snapshot(campaign, "campaign")
    if campaign_id is None:
        raise FilterError("No campaign chosen.")
    try:
        got = campaigns.report(state().engine, campaign_id)
    except campaigns.UnknownCampaign as exc:
        raise FilterError(f"There is no campaign {campaign_id}.") from exc
    c = got.campaign
    out: dict[str, Any] = {"log": _log(got.log)}
    if got.groups.empty:
        note = c.results_note or (
            "Not measured yet: results are computed after each import, daily, and on "
            "“Refresh results”."
        )
        out["campaign-cumulative"] = charts.empty_figure("No results yet.")
        out["groups"] = html.P("No figures yet.", className="text-muted small mb-0 p-1")
        out["verdicts"] = dbc.Alert(note, color="light", className="border small py-2")
        out["conversion-note"] = out["revenue-note"] = "not measured yet"
        return out
    lifts = {r["metric"]: r for _, r in got.lifts.iterrows()}
    out["conversion"], out["conversion-note"] = _lift_card(lifts.get(calc.CONVERSION), True)
    out["revenue"], out["revenue-note"] = _lift_card(lifts.get(calc.REVENUE), False)
    measured = (
        f"Measured {c.results_at:%Y-%m-%d %H:%M} UTC from the orders up to {c.results_through}."
        if c.results_at
        else ""
    )
    out["verdicts"] = dbc.Alert(
        [
            html.Div([html.Strong("Conversion: "), lifts[calc.CONVERSION]["verdict"]])
            if calc.CONVERSION in lifts
            else None,
            html.Div([html.Strong("Revenue per customer: "), lifts[calc.REVENUE]["verdict"]])
            if calc.REVENUE in lifts
            else None,
            html.Div(measured, className="text-muted mt-1"),
        ],
        color="light",
        className="border small py-2",
    )
    out["groups"] = _groups_table(got.groups)
    out["campaign-cumulative"] = charts.campaign_cumulative(got.daily, c.start_date)
    kit.shows("campaign-cumulative", "campaign_daily", got.daily)
    return out


def _chosen(campaign: Any) -> int:
    campaign_id = parse_snapshot(campaign, "campaign")
    if campaign_id is None:
        raise FilterError("No campaign chosen.")
    return campaign_id


@roles.callback(
    Output("campaign-download", "data"),
    Output("campaign-action-message", "children"),
    Output("campaign-refreshed", "data", allow_duplicate=True),
    Input("campaign-export-csv", "n_clicks"),
    Input("campaign-export-xlsx", "n_clicks"),
    State("campaign-id", "data"),
    State("campaign-refreshed", "data"),
    prevent_initial_call=True,
    role=EDIT_ROLE,
)
def export(csv: Any, xlsx: Any, campaign: Any, refreshed: Any) -> tuple[Any, Any, Any]:
    """The treatment list (never the holdout) as CSV or XLSX, logged."""
    trigger = dash.ctx.triggered_id if dash.ctx.triggered else None
    fmt = "xlsx" if trigger == "campaign-export-xlsx" else "csv"
    if not (xlsx if fmt == "xlsx" else csv):
        return no_update, no_update, no_update
    st = state()
    try:
        data, name, provenance = campaigns.export_treatment(
            st.engine,
            st.exporter,
            _chosen(campaign),
            fmt,
            row_cap=st.settings.export_row_cap,
            by=current_user.email,
            role=roles.role_of_user(),
        )
    except (ValueError, Forbidden, LookupError) as exc:
        return no_update, html.Span(str(exc), className="text-danger"), no_update
    bump = bumped(refreshed)
    text = f"Exported {provenance['rows']:,} treatment customers ({fmt.upper()})."
    return dcc.send_bytes(data, name), html.Span(text, className="text-success"), bump


@roles.callback(
    Output("campaign-action-message", "children", allow_duplicate=True),
    Output("campaign-poll", "disabled"),
    Output("campaign-job", "data"),
    Input("campaign-refresh", "n_clicks"),
    State("campaign-id", "data"),
    prevent_initial_call=True,
    role=EDIT_ROLE,
)
def refresh(clicks: Any, campaign: Any) -> tuple[Any, Any, Any]:
    """Queue the measurement of this campaign for the scheduler process."""
    if not clicks:
        return no_update, no_update, no_update
    try:
        campaign_id = _chosen(campaign)
        campaigns.get(state().engine, campaign_id)
    except (FilterError, LookupError) as exc:
        return html.Span(str(exc), className="text-danger"), True, None
    job = campaigns.queue_results(
        state().engine, Trigger.WEB, campaign_id, requested_by=current_user.email
    )
    assert job is not None
    return waiting("Measuring", job.id), False, job.id


@roles.callback(
    Output("campaign-action-message", "children", allow_duplicate=True),
    Output("campaign-poll", "disabled", allow_duplicate=True),
    Output("campaign-refreshed", "data", allow_duplicate=True),
    Input("campaign-poll", "n_intervals"),
    State("campaign-job", "data"),
    State("campaign-refreshed", "data"),
    prevent_initial_call=True,
    role=EDIT_ROLE,
)
def poll(_n: Any, job_id: Any, refreshed: Any) -> tuple[Any, Any, Any]:
    """The queued measurement's state; once done, the results are read again."""
    try:
        job = jobs.get(state().engine, parse_snapshot(job_id, "job") or 0)
    except FilterError:
        job = None
    if job is None or job.kind != campaigns.KIND:
        return "", True, no_update
    shown, finished = progress(
        job,
        queued="Measuring",
        running="Measuring",
        failed="Measuring failed",
        done="Results updated: ",
        skipped="Not measured",
    )
    return shown, finished, bumped(refreshed) if finished else no_update


@roles.callback(
    Output("campaign-action-message", "children", allow_duplicate=True),
    Output("campaigns-go", "href", allow_duplicate=True),
    Input("campaign-delete", "submit_n_clicks"),
    State("campaign-id", "data"),
    prevent_initial_call=True,
    role=EDIT_ROLE,
)
def delete(confirmed: Any, campaign: Any) -> tuple[Any, Any]:
    """Delete the campaign (after the browser's confirmation) and go back to the list."""
    if not confirmed:
        return no_update, no_update
    try:
        campaigns.delete_campaign(state().engine, _chosen(campaign), by=current_user.email)
    except (FilterError, LookupError) as exc:
        return html.Span(str(exc), className="text-danger"), no_update
    return "Deleted.", "/campaigns"
