"""The navbar's pages, in order, and the roles that see them."""

from __future__ import annotations

# (label, path, minimum role)
NAV = (
    ("Overview", "/", "viewer"),
    ("Segments", "/segments", "viewer"),
    ("Retention", "/retention", "viewer"),
    ("Sales & AOV", "/sales", "viewer"),
    ("Migration", "/migration", "viewer"),
    ("Customers", "/customers", "viewer"),
    ("Model", "/model", "viewer"),
    ("Admin", "/admin", "admin"),
)
# Pages whose links carry the global filters (start, end, segment, snapshot) along.
FILTERED = tuple(path for _, path, _ in NAV if path != "/admin")


def nav_id(path: str) -> str:
    return "nav-" + (path.strip("/") or "overview")
