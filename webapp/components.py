"""Small building blocks shared by the pages: KPI cards, formats, empty states."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import dash_bootstrap_components as dbc
from dash import dcc, html


def money(value: float | None) -> str:
    return "–" if value is None else f"{value:,.2f}"


def percent(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value * 100:.{digits}f}%"


def integer(value: int | None) -> str:
    return "–" if value is None else f"{value:,}"


def bumped(counter: Any) -> int:
    """The next value of a page's change counter (a store its tables read again on): what the
    browser sent back, if a count, plus one."""
    return (counter if isinstance(counter, int) and not isinstance(counter, bool) else 0) + 1


def dom_id(ident: str | dict[str, Any]) -> str:
    """A component's id as Dash writes it in the page (a dict id as compact JSON, keys sorted)."""
    if isinstance(ident, dict):
        return json.dumps(ident, sort_keys=True, separators=(",", ":"))
    return ident


def label(
    text: Any, target: str | dict[str, Any], *, hidden: bool = False, **kw: Any
) -> html.Label:
    """The <label> of control `target` (any id; `hidden`: for screen readers only). A dropdown
    takes its label into its name too (webapp/assets/a11y.js)."""
    kw["className"] = " ".join(c for c in (kw.get("className"), "visually-hidden" * hidden) if c)
    return html.Label(text, htmlFor=dom_id(target), **kw)


def field(
    text: Any, target: str | dict[str, Any], control: Any, *, hidden: bool = False, **col: Any
) -> dbc.Col:
    """A form control under its small label, as a column of a `dbc.Row` (`col`: md=, id=,
    style=, ...). `hidden`: the label is for screen readers only (the control shows what it
    is, by its placeholder or value)."""
    shown = label(text, target, hidden=True) if hidden else small_label(text, target)
    return dbc.Col([shown, control], **col)


def beside(text: Any, target: str, control: Any, **col: Any) -> list[dbc.Col]:
    """A control with its small label on its left: two columns of a `dbc.Row` (`col`: the
    control's md=, width=, ...)."""
    return [dbc.Col(label(text, target, className="small"), width="auto"), dbc.Col(control, **col)]


def small_label(text: Any, target: str | dict[str, Any]) -> html.Label:
    """The small muted label over a form control."""
    return label(text, target, className="small text-muted mb-0")


def panel(
    title: str, body: Any, note: str | None = None, *, header_id: str | None = None, **body_kw: Any
) -> dbc.Card:
    """A card of the app's look: its title in bold (and a short muted `note` beside it), then
    `body` (`body_kw`: the body's id=, className=, ...; `header_id`: the header's id)."""
    head: list[Any] = [html.Strong(title)]
    if note:
        head.append(html.Span(f" · {note}", className="text-muted small"))
    header = {"id": header_id} if header_id else {}
    return dbc.Card(
        [
            dbc.CardHeader(head, className="bg-white py-1", **header),
            dbc.CardBody(body, **body_kw),
        ],
        className="shadow-sm mb-3",
    )


def empty_state(title: str, body: str) -> dbc.Alert:
    return dbc.Alert(
        [html.H5(title, className="alert-heading"), html.P(body, className="mb-0")],
        color="light",
        className="border",
    )


def info(text: str) -> html.Span:
    """A small (i) whose tooltip (the title attribute) explains a metric or a chart."""
    return html.Span(
        "?",
        title=text,
        className="badge rounded-pill text-bg-light border text-secondary ms-1 fw-normal",
        style={"cursor": "help"},
    )


def params_id(chart: str) -> dict[str, str]:
    """The store of what chart `chart` was drawn from (its download recomputes exactly that)."""
    return {"type": "params", "chart": chart}


def summary_id(chart: str) -> str:
    """The sentence under chart `chart` saying what it shows (webapp/alttext.py)."""
    return f"{chart}-summary"


def table_id(chart: str) -> str:
    """Where the data table of chart `chart` goes, in its "Data table" disclosure."""
    return f"{chart}-table"


# The formats of a chart's downloads (webapp/downloads.py), as its buttons name them.
DOWNLOADS = {"csv": "CSV", "xlsx": "an Excel workbook"}


def chart_card(
    key: str,
    title: str,
    explain: str,
    body: object,
    *,
    exportable: bool = True,
    footer: object = None,
) -> dbc.Card:
    """A chart (or table) with its title, explanation, loading indicator and downloads.

    `key` names the chart; the page's callback writes what it drew into the
    {"type": "params", "chart": key} store, and the download callback (webapp/downloads.py)
    recomputes exactly that frame as CSV or XLSX. Under a chart (a figure), its text
    alternative: a sentence on what it shows and, in a "Data table" disclosure that opens with
    Enter, the frame it draws (webapp/pagekit.py fills both; they stay hidden while empty).
    """
    buttons = []
    if exportable:
        buttons = [
            dbc.ButtonGroup(
                [
                    dbc.Button(
                        fmt.upper(),
                        id={"type": f"dl-{fmt}", "chart": key},
                        size="sm",
                        color="link",
                        title=f"Download the data of this chart as {what}",
                    )
                    for fmt, what in DOWNLOADS.items()
                ],
                size="sm",
            ),
            dcc.Download(id={"type": "download", "chart": key}),
        ]
    return dbc.Card(
        [
            dbc.CardHeader(
                html.Div(
                    [
                        html.Span([html.Strong(title), info(explain)]),
                        html.Div(buttons, className="ms-auto"),
                    ],
                    className="d-flex align-items-center",
                ),
                className="bg-white py-1",
            ),
            dbc.CardBody(
                [
                    dcc.Loading(body, type="dot", delay_show=300),  # type: ignore[arg-type]
                    html.P(id=summary_id(key), className="chart-summary small mb-1 mt-1"),
                    html.Details(
                        [
                            html.Summary("Data table", id=f"{key}-data", className="small"),
                            # Scrolls when wide: focusable, so the keyboard scrolls it too.
                            html.Div(
                                id=table_id(key),
                                className="chart-table small",
                                tabIndex="0",
                                role="region",
                                **{"aria-label": f"{title}: data table"},  # type: ignore[arg-type]
                            ),
                        ],
                        className="chart-data",
                    ),
                    html.Div(
                        id={"type": "dl-msg", "chart": key}, className="small text-danger mt-1"
                    ),
                    dcc.Store(id=params_id(key)),
                    footer if footer is not None else html.Span(),
                ],
                className="p-2",
            ),
        ],
        className="shadow-sm mb-3",
        id=f"card-{key}",
    )


def small_button(
    text: Any, ident: str | None = None, color: str = "secondary", **kw: Any
) -> dbc.Button:
    """The pages' small outlined button (secondary actions beside a primary one, downloads,
    presets; `color="danger"` for removals)."""
    if ident is not None:
        kw["id"] = ident
    return dbc.Button(text, size="sm", color=color, outline=True, **kw)


def choice(
    ident: str, options: dict[str, str], value: Any, class_name: str = "small"
) -> dbc.RadioItems:
    """A row of radio buttons choosing what a chart shows (value -> label)."""
    return dbc.RadioItems(
        id=ident,
        options=[{"label": text, "value": key} for key, text in options.items()],
        value=value,
        inline=True,
        className=class_name,
    )


def dropdown(ident: str, options: Mapping[Any, Any], value: Any, **kw: Any) -> dcc.Dropdown:
    """A dropdown of fixed choices (value -> label), one always chosen (`kw`: searchable=, ...)."""
    return dcc.Dropdown(
        id=ident,
        options=[{"label": text, "value": key} for key, text in options.items()],
        value=value,
        clearable=False,
        **kw,
    )


def graph(graph_id: str, height: int | None = None) -> dcc.Graph:
    style = {"height": f"{height}px"} if height else {}
    return dcc.Graph(
        id=graph_id,
        config={"displaylogo": False, "modeBarButtonsToRemove": ["lasso2d", "select2d"]},
        style=style,
    )


def no_snapshot(title: str) -> html.Div:
    return html.Div(
        [
            html.H2(title, className="h4"),
            empty_state(
                "No snapshot yet",
                "The dashboard reads snapshots: one per refit of the segmentation. Import "
                "transactions (`custseg import FILE`, or Admin → Import), then make the first "
                "snapshot with `custseg refit` (or Model → Refit now, as an admin) and reload "
                "this page.",
            ),
        ]
    )


TABLE_FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"


def table_style(**cell: object) -> dict[str, Any]:
    """Keyword arguments for a DataTable in the app's look (text left, numbers right)."""
    return {
        "style_as_list_view": True,
        "style_cell": {
            "fontFamily": TABLE_FONT,
            "fontSize": 13,
            "padding": "4px 8px",
            "textAlign": "left",
            **cell,
        },
        "style_header": {"fontWeight": "600", "fontFamily": TABLE_FONT},
    }


# A snapshot's predictions (churn risk, 12-month CLV) come after its segments: what pages say
# until they are there (`Snapshot.predictions_status`, db/predictions.py).
PREDICTION_LABELS = {
    "pending": "Predictions pending",
    "running": "Predictions pending",
    "failed": "Predictions failed",
    "off": "Predictions off",
}


def predictions_status(snap: Any) -> str:
    """'done', 'pending', 'running', 'failed' or 'off'."""
    return str(getattr(snap, "predictions_status", None) or "off")


def predictions_note(snap: Any, *, details: bool = True) -> str | None:
    """Why a snapshot shows no predictions (None: they are there). `details`: the failure's
    reason (the Model page); elsewhere a pointer to it."""
    status = predictions_status(snap)
    if status == "done":
        return None
    if status in ("pending", "running"):
        return (
            f"Predictions pending: churn risk and 12-month value of snapshot {snap.id} are "
            "computed after its segments are published (a minute or more at large sizes). "
            "Reload the page to see them."
        )
    if status == "failed":
        meta = snap.predictions if isinstance(snap.predictions, dict) else {}
        reason = meta.get("error") or "no reason recorded"
        why = f": {reason}" if details else " (the reason is on the Model page)"
        return (
            f"Predictions failed for snapshot {snap.id}{why}. Its segments are unaffected; "
            "the next refit tries again."
        )
    return (
        f"Predictions off: snapshot {snap.id} was made with CUSTSEG_PREDICTIONS=false, so it "
        "has no churn risk or 12-month value."
    )
