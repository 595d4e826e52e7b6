"""Small building blocks shared by the pages: KPI cards, formats, empty states."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import html


def money(value: float | None) -> str:
    return "–" if value is None else f"{value:,.2f}"


def percent(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value * 100:.{digits}f}%"


def integer(value: int | None) -> str:
    return "–" if value is None else f"{value:,}"


def kpi_card(card_id: str, label: str, value: str, definition: str) -> dbc.Col:
    return dbc.Col(
        dbc.Card(
            dbc.CardBody(
                [
                    html.Div(
                        label, className="text-muted small", id=f"{card_id}-label", title=definition
                    ),
                    html.Div(value, className="fs-4 fw-semibold", id=card_id),
                ]
            ),
            className="h-100 shadow-sm",
        ),
        xs=6,
        md=4,
        xl=True,
        className="mb-3",
    )


def empty_state(title: str, body: str) -> dbc.Alert:
    return dbc.Alert(
        [html.H5(title, className="alert-heading"), html.P(body, className="mb-0")],
        color="light",
        className="border",
    )
