"""The navbar's links: one per page the user may open (from Dash's page registry).

Each page module registers itself with `dash.register_page(..., name=..., order=..., role=...,
filtered=...)`: `order` places its link, `role` decides who sees and may open it
(webapp/roles.py), and `filtered` says whether its link carries the global filters (start, end,
segment, snapshot) along from page to page.
"""

from __future__ import annotations

from typing import Any

NAV_LINK = "nav-link"


def nav_id(path: str) -> dict[str, str]:
    """The id of a page's navbar link (a pattern id: the callbacks that keep the links' query
    and active state match every link present, whatever pages the user sees)."""
    return {"type": NAV_LINK, "page": path}


def carries_filters(page: dict[str, Any]) -> bool:
    return bool(page.get("filtered", True))
