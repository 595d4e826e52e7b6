"""Model (/model): how good the segmentation is, how it was made, and every refit.

Silhouette and inertia against k (the chosen k marked), the features and their transforms, the
data-quality report, the snapshot history, and "Refit now" for admins (a background process;
its stage shows here while it runs).
"""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Output, html
from dash.dash_table.DataTable import DataTable

from webapp import charts, refit_ui
from webapp.components import chart_card, graph, no_snapshot, table_style
from webapp.filters import FILTERS, filter_bar, initial, page_header
from webapp.pagekit import Extra, Kit, chart_callback
from webapp.roles import has_role

dash.register_page(__name__, path="/model", name="Model", title="Model", order=6, role="viewer")

REFIT_ROLE = refit_ui.REFIT_ROLE
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
                            "K-Means was fitted for each k in the configured range. Silhouette "
                            "(from -1 to 1, higher = better-separated segments) picks k; "
                            "inertia (within-segment spread) always falls with k, look for the "
                            "elbow.",
                            graph("model-scores"),
                            exportable=export,
                        ),
                        lg=8,
                    ),
                    dbc.Col(
                        dbc.Card(
                            [
                                dbc.CardHeader(html.Strong("Features"), className="bg-white py-1"),
                                dbc.CardBody(id="model-features", className="small p-2"),
                            ],
                            className="shadow-sm mb-3",
                        ),
                        lg=4,
                    ),
                ]
            ),
            dbc.Row(
                [
                    dbc.Col(
                        dbc.Card(
                            [
                                dbc.CardHeader(
                                    html.Strong("Data quality"), className="bg-white py-1"
                                ),
                                dbc.CardBody(id="model-quality", className="small p-2"),
                            ],
                            className="shadow-sm mb-3",
                        ),
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
        "model-scores": charts.model_scores(scores),
        "model-history": records.where(records.notna(), None).to_dict("records"),
        "model-features": _features(snap),
        "model-quality": _quality(snap),
    }


refit_ui.register("model")
