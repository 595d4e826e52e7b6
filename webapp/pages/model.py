"""Model (/model): how good the segmentation is, how it was made, and every refit; how far to
trust the predictions (their backtest, the models and their fit times).

Silhouette and inertia for every k of 2..10, the k range the choice was made in shaded and the
chosen k marked, why that k (`explain_selection`) and which setting won (`--k`, an admin's, the
environment's, the default); the features and their transforms, the data-quality report, the
snapshot history, and for admins: "Refit now" (a background process; its stage shows here
while it runs), the k range or a fixed k for the next refits (stored with who and when), and a
preview of the clusters each k of the refit gives, without publishing anything. The
predictions' part reads the `backtest`, `prediction_models` and `calibration` exports and says
when the snapshot's predictions are pending, failed (with the reason) or off.
"""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, State, html, no_update
from dash.dash_table.DataTable import DataTable
from dash.dash_table.Format import Format, Group, Scheme
from flask_login import current_user

from analytics.pipeline import KChoice
from analytics.segmentation import explain_selection
from db import snapshots
from db.k_settings import K_LIMITS, effective_k_setting, set_k_setting
from webapp import charts, refit_ui, roles
from webapp.components import (
    PREDICTION_LABELS,
    chart_card,
    choice,
    graph,
    info,
    money,
    no_snapshot,
    panel,
    predictions_note,
    predictions_status,
    table_style,
)
from webapp.components import label as label_for
from webapp.filters import (
    FILTERS,
    SNAPSHOT,
    FilterError,
    filter_bar,
    initial,
    page_header,
    parse_choice,
    parse_int,
    parse_snapshot,
)
from webapp.pagekit import Extra, Kit, chart_callback, message
from webapp.roles import has_role
from webapp.state import state

dash.register_page(__name__, path="/model", name="Model", title="Model", order=6, role="viewer")

REFIT_ROLE = refit_ui.REFIT_ROLE
K_ROLE: roles.Role = "admin"  # who sets k for the next refits and previews every k
K_MODES = ("range", "fixed", "clear")
# Where the k setting of a refit came from (analytics.pipeline.K_SOURCES), in words.
SOURCE_TEXT = {
    "command line": "--k on the command line",
    "admin setting": "an admin's setting in the app",
    "environment": "CUSTSEG_K_MIN / CUSTSEG_K_MAX in the environment",
    "default": "the default",
    "arguments": "the refit's arguments",
}
PREVIEW_COLUMNS = (
    ("cluster", "#", "numeric"),
    ("name", "Cluster", "text"),
    ("customers", "Customers", "numeric"),
    ("share", "Share", "numeric"),
    ("gross_revenue", "Revenue", "numeric"),
    ("recency_days", "Recency (days)", "numeric"),
    ("frequency", "Orders", "numeric"),
    ("monetary", "Spend", "numeric"),
)
PREVIEW_FORMATS = {
    "share": Format(precision=1, scheme=Scheme.percentage),
    "gross_revenue": Format(precision=0, scheme=Scheme.fixed, group=Group.yes),
    "monetary": Format(precision=2, scheme=Scheme.fixed, group=Group.yes),
    "customers": Format(group=Group.yes),
}
QUALITY_LABELS = {
    "lines": "Order lines in the database",
    "lines_without_customer_id": "Lines without a customer id (kept, left out of metrics)",
    "revenue_without_customer_id": "Their revenue",
    "zero_amount_lines": "Lines with a zero amount",
    "lines_after_as_of": "Lines after the as-of date (not in this snapshot)",
    "duplicate_lines_dropped_at_import": "Duplicate lines dropped at import",
    "invalid_lines_skipped_at_import": "Invalid lines skipped at import",
    "customers_segmented": "Customers segmented",
    "customers_left_out": "Customers left out (no positive order)",
    "returns_orders": "Orders with a total of zero or less",
    "zero_total_orders": "Orders with a total of exactly zero",
}
FEATURE_TEXT = (
    ("recency_days", "Recency", "days from the last positive order to the as-of date"),
    ("frequency", "Frequency", "number of positive orders"),
    ("monetary", "Monetary", "gross spend: sum of positive order totals"),
)
NOWRAP = {"whiteSpace": "nowrap"}
MODEL_NAMES = {"bg_nbd": "BG/NBD", "pareto_nbd": "Pareto/NBD", "gamma_gamma": "Gamma-Gamma"}
BACKTEST_MEASURES = ("orders", "revenue")
HISTORY_COLUMNS = (
    ("snapshot_id", "Snapshot"),
    ("status", "Status"),
    ("trigger", "Started by"),
    ("as_of", "As of"),
    ("started_at", "Started (UTC)"),
    ("duration_s", "Seconds"),
    ("k", "k"),
    ("silhouette", "Silhouette"),
    ("customers", "Customers"),
    ("error", "Error"),
    ("removed_batches", "Built from batches since removed"),
)


def layout(**query: Any) -> html.Div:
    init = initial(query)
    if init is None:
        body = no_snapshot("Model")
        if has_role(REFIT_ROLE):
            body.children.append(refit_ui.panel("model"))
        return body
    export = has_role("analyst")
    return html.Div(
        [
            page_header(
                "Model",
                "How the segments were found and how well they separate customers.",
            ),
            filter_bar(init, dates=False, segments=False),
            html.Div(id="model-message"),
            html.Div(refit_ui.panel("model"), className="mb-3") if has_role(REFIT_ROLE) else None,
            dbc.Row(
                [
                    dbc.Col(
                        chart_card(
                            "model-scores",
                            "Choosing k",
                            "K-Means was fitted for every k from 2 to 10. Silhouette (from -1 to "
                            "1, higher = better-separated segments) picks k within the shaded "
                            "range, a number of segments a marketing team can act on; a k whose "
                            "smallest segment is under 2% of customers (×) is passed over. "
                            "Inertia (within-segment spread) always falls with k: look for the "
                            "elbow.",
                            graph("model-scores"),
                            exportable=export,
                            footer=html.Div(id="model-k-reason", className="small px-1"),
                        ),
                        lg=8,
                    ),
                    dbc.Col(
                        panel("Features", None, id="model-features", className="small p-2"),
                        lg=4,
                    ),
                ]
            ),
            predictions_section(export),
            k_panel(init.snap) if has_role(K_ROLE) else None,
            dbc.Row(
                [
                    dbc.Col(
                        panel("Data quality", None, id="model-quality", className="small p-2"),
                        lg=4,
                    ),
                    dbc.Col(
                        chart_card(
                            "model-history",
                            "Snapshot history",
                            "Every refit kept: published ones can be selected above; failed ones "
                            "changed nothing and say why.",
                            DataTable(
                                id="model-history",
                                columns=[{"id": c, "name": n} for c, n in HISTORY_COLUMNS],
                                page_size=10,
                                **table_style(whiteSpace="normal", maxWidth="320px"),
                                style_data_conditional=[
                                    {
                                        "if": {"filter_query": "{status} = failed"},
                                        "color": "#b02a37",
                                    }
                                ],
                            ),
                            exportable=export,
                        ),
                        lg=8,
                    ),
                ]
            ),
        ]
    )


def predictions_section(export: bool) -> html.Div:
    """The backtest of the predictions, the models fitted and their fit times, and predicted
    against actual by decile (orders or revenue)."""
    return html.Div(
        [
            html.H5("Predictions: churn risk and 12-month value", className="h6 mt-2 mb-1"),
            html.P(
                "Each refit fits purchase models (BG/NBD and Pareto/NBD: how many orders each "
                "customer places) and Gamma-Gamma (what an order is worth), first on the history "
                "before a holdout window to check them against what happened in it (the "
                "backtest), then on the whole history for the predictions.",
                className="small text-muted mb-2",
            ),
            html.Div(id="model-predictions-message"),
            dbc.Row(
                [
                    dbc.Col(
                        chart_card(
                            "model-backtest",
                            "Backtest: predicted against what happened",
                            "Each purchase model fitted on the history up to the cutoff, its "
                            "predictions for the window after it against the orders and revenue "
                            "that came. Correlation: of predicted and actual orders per customer. "
                            "Mean absolute error: per customer, against the baseline 'nobody "
                            "buys' (lower is better). AUC: how well churn risk ranks who did not "
                            "buy (0.5 = chance, 1 = perfect). The model with the better AUC "
                            "serves the predictions.",
                            html.Div(id="model-backtest"),
                            exportable=export,
                        ),
                        lg=7,
                    ),
                    dbc.Col(
                        chart_card(
                            "model-fits",
                            "Models and fit times",
                            "The models fitted for this snapshot's predictions (on the whole "
                            "history) and for the backtest (up to the cutoff): what each "
                            "predicts, on how many customers, its fit time; hover its ? for its "
                            "parameters (in the download too). Bold: the models that serve.",
                            html.Div(id="model-fits"),
                            exportable=export,
                        ),
                        lg=5,
                    ),
                ]
            ),
            html.Div(
                [
                    html.Small("Deciles and calibration in", className="text-muted me-2"),
                    choice(
                        "model-backtest-measure",
                        {"orders": "orders", "revenue": "revenue"},
                        "orders",
                    ),
                ],
                className="d-flex align-items-center mb-1",
            ),
            dbc.Row(
                [
                    dbc.Col(
                        chart_card(
                            "model-deciles",
                            "Predicted against actual, by decile",
                            "The backtest's customers in ten groups of equal size by predicted "
                            "orders (1: predicted to buy least, 10: most): what the serving model "
                            "predicted for the window and what they did.",
                            graph("model-deciles"),
                            exportable=export,
                        ),
                        lg=6,
                    ),
                    dbc.Col(
                        chart_card(
                            "model-calibration",
                            "Calibration",
                            "Per customer of each decile: predicted against actual. On the "
                            "dashed diagonal the predictions are right on average; below it "
                            "they were too high, above it too low.",
                            graph("model-calibration"),
                            exportable=export,
                        ),
                        lg=6,
                    ),
                ]
            ),
        ]
    )


def _ratio(predicted: float, actual: float) -> str:
    return f" ({predicted / actual - 1:+.0%})" if actual else ""


def _name(model: Any) -> str:
    return MODEL_NAMES.get(str(model), str(model))


def backtest_figures(bt: pd.DataFrame, fits: pd.DataFrame, meta: dict[str, Any]) -> Any:
    """The `backtest` export as a table (one column per purchase model), with the window, the
    customers no model could predict, and why the serving model serves."""
    if bt.empty:
        return html.Small("No backtest for this snapshot.", className="text-muted")
    back = meta.get("backtest") or {}
    seconds = {r.model: r.fit_seconds for r in fits.itertuples() if r.run == "backtest"}
    models = list(bt.itertuples())
    head = html.Thead(
        html.Tr(
            [html.Th("")]
            + [
                html.Th(
                    [_name(m.model), html.Span(" (serves)", className="text-success")]
                    if m.serves
                    else _name(m.model),
                    className="text-end",
                )
                for m in models
            ]
        )
    )
    lines: list[tuple[Any, Any]] = [
        ("Customers compared", lambda m: f"{int(m.customers):,}"),
        (
            "Orders: predicted / actual",
            lambda m: (
                f"{m.predicted_orders:,.0f} / {m.actual_orders:,.0f}"
                + _ratio(m.predicted_orders, m.actual_orders)
            ),
        ),
        (
            "Revenue: predicted / actual",
            lambda m: (
                f"{money(m.predicted_revenue)} / {money(m.actual_revenue)}"
                + _ratio(m.predicted_revenue, m.actual_revenue)
            ),
        ),
        ("Correlation per customer", lambda m: _fixed(m.correlation)),
        (
            ["Mean absolute error", info("Orders per customer; the baseline predicts none")],
            lambda m: f"{_fixed(m.mae)} vs {_fixed(m.baseline_mae)} baseline",
        ),
        (
            ["Churn ranking AUC", info("0.5 = chance, 1 = perfect")],
            lambda m: _fixed(m.auc),
        ),
        ("Fit time", lambda m: f"{seconds[m.model]:.1f} s" if m.model in seconds else "–"),
    ]
    body = html.Tbody(
        [
            html.Tr([html.Td(label)] + [html.Td(cell(m), className="text-end") for m in models])
            for label, cell in lines
        ]
    )
    first = models[0]
    window = (
        f"Fitted on the history up to {first.cutoff} and compared with the "
        f"{int(first.holdout_days)} days after it."
    )
    new = back.get("new_customers")
    if new:
        window += (
            f" {int(new):,} customers whose first order fell in the window "
            f"({int(back.get('new_customer_orders') or 0):,} orders) cannot be predicted and "
            "are left out."
        )
    choice = (meta.get("predictions") or {}).get("choice")
    serving = next((m.model for m in models if m.serves), None)
    parts: list[Any] = [
        html.P(window, className="small mb-1"),
        dbc.Table([head, body], size="sm", className="small mb-1"),
    ]
    if serving and choice:
        parts.append(
            html.P(f"{_name(serving)} serves the predictions: {choice}.", className="small mb-0")
        )
    return html.Div(parts)


def _fixed(value: Any, digits: int = 2) -> str:
    if value is None or value != value:
        return "–"
    return f"{float(value):.{digits}f}"


def fits_table(fits: pd.DataFrame, meta: dict[str, Any]) -> Any:
    """The `prediction_models` export: the models of the predictions and of the backtest."""
    if fits.empty:
        return html.Small("No models fitted for this snapshot.", className="text-muted")
    sections: list[Any] = []
    titles = {
        "predictions": "For the predictions (whole history)",
        "backtest": "For the backtest (history to the cutoff)",
    }
    for run, title in titles.items():
        part = fits[fits["run"] == run]
        if part.empty:
            continue
        rows = [
            html.Tr(
                [
                    html.Td(
                        [
                            html.Strong(_name(r.model)) if r.serves else _name(r.model),
                            info(
                                f"Parameters: {r.params}"
                                + (f". Not used: {r.note}" if isinstance(r.note, str) else "")
                            ),
                        ],
                        style=NOWRAP,
                    ),
                    html.Td(r.predicts, style=NOWRAP),
                    html.Td(f"{int(r.customers):,}", className="text-end"),
                    html.Td(f"{float(r.fit_seconds):.1f} s", className="text-end", style=NOWRAP),
                ]
            )
            for r in part.itertuples()
        ]
        head = html.Thead(
            html.Tr(
                [
                    html.Th(title, colSpan=2),
                    html.Th("Customers", className="text-end"),
                    html.Th("Fit time", className="text-end", style=NOWRAP),
                ]
            )
        )
        sections.append(dbc.Table([head, html.Tbody(rows)], size="sm", className="small mb-1"))
    preds = meta.get("predictions") or {}
    notes = []
    unscored = preds.get("customers_unscored") or {}
    if preds.get("customers_scored") is not None:
        text = f"{int(preds['customers_scored']):,} customers scored"
        if unscored:
            text += "; not scored: " + "; ".join(
                f"{int(n):,} with {why}" for why, n in unscored.items()
            )
        notes.append(text + ".")
    total = (meta.get("timings") or {}).get("total")
    if total is not None:
        notes.append(f"The prediction stage took {float(total):,.1f} s, backtest included.")
    sections.append(html.P(" ".join(notes), className="small text-muted mb-0"))
    return html.Div(sections)


def next_refit_text(choice: KChoice) -> str:
    """What the next refit (scheduled, or Refit now) uses, and where that comes from."""
    what = (
        f"a fixed k = {choice.k}"
        if choice.k is not None
        else f"k chosen by silhouette in {choice.k_min}–{choice.k_max}"
    )
    who = ""
    if choice.set_by:
        who = f", set by {choice.set_by} on {str(choice.set_at or '')[:16]} UTC"
    return f"The next refit uses {what}: {SOURCE_TEXT.get(choice.source, choice.source)}{who}."


def k_panel(snap: Any) -> Any:
    """The admins' k setting for the next refits, and the preview of every k of this refit."""
    choice = effective_k_setting(state().engine, state().settings)
    mode = "fixed" if choice.source == "admin setting" and choice.k is not None else "range"
    number = {"type": "number", "min": K_LIMITS[0], "max": K_LIMITS[1], "step": 1, "size": "sm"}
    form = dbc.Row(
        [
            dbc.Col(
                dbc.RadioItems(
                    id="k-mode",
                    options=[
                        {"label": "Choose k by silhouette in", "value": "range"},
                        {"label": "Fixed k", "value": "fixed"},
                        {"label": "No setting of mine (environment or default)", "value": "clear"},
                    ],
                    value=mode,
                    className="small",
                    # One option per line of the inputs beside them.
                    labelStyle={"lineHeight": "31px"},
                    inputStyle={"marginTop": "9px"},
                ),
                width="auto",
            ),
            dbc.Col(
                [
                    label_for("Smallest k", "k-min", hidden=True),
                    label_for("Largest k", "k-max", hidden=True),
                    dbc.InputGroup(
                        [
                            dbc.Input(id="k-min", value=choice.k_min, **number),
                            dbc.InputGroupText("to"),
                            dbc.Input(id="k-max", value=choice.k_max, **number),
                        ],
                        size="sm",
                        style={"maxWidth": "190px"},
                    ),
                    label_for("Fixed k", "k-fixed", hidden=True),
                    dbc.InputGroup(
                        [
                            dbc.InputGroupText("k ="),
                            dbc.Input(id="k-fixed", value=choice.k, placeholder="k", **number),
                        ],
                        size="sm",
                        style={"maxWidth": "190px"},
                    ),
                ],
                width="auto",
            ),
            dbc.Col(
                [
                    dbc.Button("Save for the next refits", id="k-save", size="sm"),
                    html.Div(id="k-save-message", className="small mt-1"),
                ],
                md=True,
            ),
        ],
        className="g-3 align-items-start",
    )
    preview = html.Div(
        [
            html.Div(
                [
                    html.Strong("Preview: ", className="small"),
                    html.Small(
                        "the clusters each k of this snapshot's refit gives (nothing is "
                        "published; click a bar or choose a k).",
                        className="text-muted",
                    ),
                ]
            ),
            graph("model-preview"),
            dbc.RadioItems(
                id="preview-k",
                options=[],
                value=snap.k,
                inline=True,
                className="small mb-1",
            ),
            html.Div(id="model-preview-message"),
            DataTable(
                id="preview-table",
                columns=[_column(c, n, t) for c, n, t in PREVIEW_COLUMNS],
                **table_style(),
                style_cell_conditional=[{"if": {"column_type": "numeric"}, "textAlign": "right"}],
            ),
        ]
    )
    return chart_card(
        "model-preview",
        "k for the next refits (admins)",
        "Set the range k is chosen in, or a fixed k, for the next refits (scheduled or Refit "
        "now); `custseg refit --k N` still comes first for its own run. Stored with who and "
        "when. The preview shows what each k gave on this snapshot's data, before you choose.",
        html.Div(
            [
                html.P(next_refit_text(choice), id="k-next", className="small mb-2"),
                form,
                html.Hr(className="my-2"),
                preview,
            ]
        ),
    )


def _column(cid: str, name: str, kind: str) -> Any:
    """A DataTable column (counts and money with thousands separators, shares in %)."""
    col: dict[str, Any] = {"id": cid, "name": name, "type": kind}
    if cid in PREVIEW_FORMATS:
        col["format"] = PREVIEW_FORMATS[cid]
    return col


def k_reason(snap: Any) -> list[Any]:
    """Why this snapshot has its k (one sentence), which setting won, and the next refit's."""
    reason = snap.k_selection or {}
    settings = snap.settings or {}
    source = reason.get("source") or settings.get("k_source")
    label = SOURCE_TEXT.get(source, source) if source else None
    if reason:
        sentence = explain_selection(reason)  # the source has a line of its own
    else:
        sentence = f"k = {snap.k}; this snapshot was made before the reasons for k were recorded."
    parts = [html.P([html.Strong("Why this k: "), sentence], className="mb-1")]
    if label:
        parts.append(
            html.P(
                [f"Setting that won for this snapshot: {label}."],
                className="text-muted mb-1",
                id="model-k-source",
            )
        )
    if not has_role(K_ROLE):  # admins see it, kept up to date, in their k card
        parts.append(
            html.P(
                next_refit_text(effective_k_setting(state().engine, state().settings)),
                className="text-muted mb-0",
            )
        )
    return parts


def _features(snap: Any) -> list[Any]:
    desc = snap.features or {}
    steps = " → ".join(desc.get("steps", [])) or "–"
    clipped = desc.get("clipped_customers", {})
    items = [
        html.Li(
            [
                html.Strong(label),
                f": {text}",
                html.Span(
                    f" ({clipped[key]:,} customers clipped)" if clipped.get(key) else "",
                    className="text-muted",
                ),
            ]
        )
        for key, label, text in FEATURE_TEXT
    ]
    settings = snap.settings or {}
    return [
        html.P("K-Means on three features per customer, as of the snapshot's date:"),
        html.Ul(items),
        html.P(["Transform: ", html.Code(steps)]),
        html.P(
            "Each is log-transformed (the spend of a few customers is far above the rest), "
            "clipped at extreme percentiles, then standardized so no feature dominates. "
            "Profiles also show AOV, tenure, return rate and category breadth."
        ),
        html.P(
            f"k range {settings.get('k_min', '–')}–{settings.get('k_max', '–')}, "
            f"k {'chosen by silhouette' if settings.get('k') == 'auto' else 'fixed'}, random "
            f"seed {settings.get('random_seed', '–')}, silhouette sample "
            f"{settings.get('silhouette_sample', '–')} customers.",
            className="text-muted mb-0",
        ),
    ]


def _quality(snap: Any) -> Any:
    dq = snap.data_quality or {}
    rows = []
    for key, label in QUALITY_LABELS.items():
        value = dq.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            text = f"{value:,.2f}" if isinstance(value, float) else f"{value:,}"
            rows.append(html.Tr([html.Td(label), html.Td(text, className="text-end")]))
    outliers = dq.get("outliers", {})
    note = html.P(outliers.get("treatment", ""), className="text-muted mt-2 mb-0")
    return [dbc.Table(html.Tbody(rows), size="sm", className="mb-0"), note]


@chart_callback(
    "model",
    {"model-scores": "figure", "model-history": "data"},
    inputs={"snapshot": FILTERS["snapshot"]},
    extras={
        "model-features": Extra(Output("model-features", "children")),
        "model-quality": Extra(Output("model-quality", "children")),
        "model-k-reason": Extra(Output("model-k-reason", "children")),
    },
)
def update_model(kit: Kit) -> dict[str, Any]:
    snap = kit.snapshot
    scores = kit.read("scores", charts=("model-scores",))
    history = kit.read("snapshots", charts=("model-history",))
    table = history.copy()
    table["started_at"] = table["started_at"].astype(str).str[:19]
    table["as_of"] = table["as_of"].astype(str)
    table["silhouette"] = table["silhouette"].round(3)
    records = table[[c for c, _ in HISTORY_COLUMNS]].astype(object)
    return {
        "model-scores": charts.k_selection_curve(scores, snap.k_selection),
        "model-history": records.where(records.notna(), None).to_dict("records"),
        "model-features": _features(snap),
        "model-quality": _quality(snap),
        "model-k-reason": k_reason(snap),
    }


@chart_callback(
    "model",
    {
        "model-backtest": "children",
        "model-fits": "children",
        "model-deciles": "figure",
        "model-calibration": "figure",
    },
    inputs={"snapshot": FILTERS["snapshot"], "measure": Input("model-backtest-measure", "value")},
    message_to="model-predictions-message",
    note_color="info",
)
def update_predictions(kit: Kit, measure: Any = "orders") -> dict[str, Any]:
    """The backtest, the models and the deciles of the snapshot's predictions, or why it has
    none (pending, failed with the reason, off)."""
    shown = parse_choice(measure if measure is not None else "orders", BACKTEST_MEASURES, "measure")
    snap = kit.snapshot
    note = predictions_note(snap)
    if note is not None:
        status = predictions_status(snap)
        label = PREDICTION_LABELS.get(status, "No predictions")
        blank = charts.empty_figure(label, 320)
        return {
            "message": message(note, "danger" if status == "failed" else "info"),
            "model-backtest": html.Small(label, className="text-muted"),
            "model-fits": html.Small(label, className="text-muted"),
            "model-deciles": blank,
            "model-calibration": blank,
        }
    meta = snap.predictions if isinstance(snap.predictions, dict) else {}
    fits = kit.read("prediction_models", charts=("model-fits",))
    bt = kit.read("backtest", charts=("model-backtest",))
    deciles = kit.read("calibration", charts=("model-deciles", "model-calibration"))
    return {
        "model-backtest": backtest_figures(bt, fits, meta),
        "model-fits": fits_table(fits, meta),
        "model-deciles": charts.backtest_deciles(deciles, shown),
        "model-calibration": charts.calibration_curve(deciles, shown),
    }


@roles.callback(
    output={"message": Output("k-save-message", "children"), "next": Output("k-next", "children")},
    inputs={
        "clicks": Input("k-save", "n_clicks"),
        "mode": State("k-mode", "value"),
        "k_min": State("k-min", "value"),
        "k_max": State("k-max", "value"),
        "k": State("k-fixed", "value"),
    },
    prevent_initial_call=True,
    role=K_ROLE,
)
def save_k(
    clicks: Any, mode: Any = None, k_min: Any = None, k_max: Any = None, k: Any = None
) -> dict[str, Any]:
    """Store the admin's k range or fixed k (or clear it) for the next refits, with who."""
    if not clicks:
        return {"message": no_update, "next": no_update}
    lo, hi = K_LIMITS
    engine = state().engine
    try:
        chosen = parse_choice(mode, K_MODES, "k setting")
        if chosen == "range":
            first = parse_int(k_min, lo, hi, "smallest k")
            last = parse_int(k_max, lo, hi, "largest k")
            set_k_setting(engine, k_min=first, k_max=last, by=current_user.email)
            done = f"Saved: k chosen by silhouette in {first}–{last}."
        elif chosen == "fixed":
            fixed = parse_int(k, lo, hi, "fixed k")
            set_k_setting(engine, k=fixed, by=current_user.email)
            done = f"Saved: k = {fixed} for the next refits."
        else:
            set_k_setting(engine, by=current_user.email)
            done = "Cleared: the environment's range or the default applies again."
    except (FilterError, ValueError) as exc:
        return {"message": html.Span(str(exc), className="text-danger"), "next": no_update}
    return {
        "message": html.Span(done, className="text-success"),
        "next": next_refit_text(effective_k_setting(engine, state().settings)),
    }


@chart_callback(
    "model",
    {"model-preview": "figure"},
    inputs={"snapshot": FILTERS["snapshot"], "k": Input("preview-k", "value")},
    extras={
        "preview-table": Extra(Output("preview-table", "data"), []),
        "preview-k-options": Extra(Output("preview-k", "options"), []),
    },
    role=K_ROLE,
    message_to="model-preview-message",
)
def preview_k(kit: Kit, k: Any = None) -> dict[str, Any]:
    """The clusters every k of the snapshot's refit gives; the table for the k chosen."""
    previews = kit.read("k_previews", charts=("model-preview",))
    fitted = sorted(int(v) for v in previews["k"].unique())
    published = kit.snapshot.k
    shown = parse_int(k, 1, 1_000, "k") if k is not None else published
    if shown not in fitted:
        shown = published
    rows = previews[previews["k"] == shown]
    table = rows[[c for c, _, _ in PREVIEW_COLUMNS]].astype(object)
    options = [
        {"label": f"k = {v}" + (" (published)" if v == published else ""), "value": v}
        for v in fitted
    ]
    return {
        "model-preview": charts.k_preview_bars(previews, shown),
        "preview-table": table.where(table.notna(), None).to_dict("records"),
        "preview-k-options": options,
        "message": None
        if fitted
        else "No previews: this snapshot was made before they were stored. The next refit "
        "stores them.",
    }


@roles.callback(
    Output("preview-k", "value", allow_duplicate=True),
    Input("model-preview", "clickData"),
    prevent_initial_call=True,
    role=K_ROLE,
)
def preview_clicked(click: Any) -> Any:
    """A click on a bar previews its k."""
    try:
        return parse_int(click["points"][0]["x"], 1, 1_000, "k")
    except (FilterError, KeyError, IndexError, TypeError):
        return no_update


@roles.callback(
    Output("preview-k", "value", allow_duplicate=True),
    Input(SNAPSHOT, "value"),
    prevent_initial_call=True,
    role=K_ROLE,
)
def preview_published(snapshot: Any) -> Any:
    """Another snapshot: preview its published k."""
    try:
        return snapshots.get_snapshot(state().engine, parse_snapshot(snapshot)).k
    except (FilterError, snapshots.NoSnapshot):
        return no_update


refit_ui.register("model")
