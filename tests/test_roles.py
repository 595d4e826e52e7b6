"""One role mechanism: every callback and every route says who may use it.

The app's own `/_dash-dependencies` and `url_map` are enumerated, so a callback or route added
later without a declared role (or a public mark) fails here; and the server refuses such a
callback anyway (tests/test_security.py, fail closed).
"""

from __future__ import annotations

from typing import Any

import dash
import pytest

from tests.conftest import login
from tests.helpers import ADMIN_PAGES, VIEWER_PAGES
from webapp import roles


def test_every_callback_declares_a_role(app: Any, client: Any) -> None:
    login(client, "admin@example.com")
    deps = client.get("/_dash-dependencies").get_json()
    assert len(deps) >= 20
    undeclared = []
    for dep in deps:
        if dep.get("clientside_function"):
            continue  # runs in the browser: the server never runs it
        fn = app.callback_map[dep["output"]].get("callback")
        if roles.callback_role(dep["output"], fn) not in roles.ROLES:
            undeclared.append(dep["output"][:80])
    assert undeclared == []


def test_every_route_declares_a_role_or_is_public(app: Any) -> None:
    rules = list(app.server.url_map.iter_rules())
    assert len(rules) >= 10
    undeclared = [
        r.rule for r in rules if roles.ROUTES.get(r.endpoint) not in (*roles.ROLES, roles.PUBLIC)
    ]
    assert undeclared == []
    public = sorted(r.rule for r in rules if roles.ROUTES[r.endpoint] == roles.PUBLIC)
    assert public == ["/health", "/login", "/static/<path:filename>", "/unsubscribe/<token>"]


def test_every_page_declares_a_role_and_its_place(app: Any) -> None:
    for page in dash.page_registry.values():
        assert page.get("role") in roles.ROLES, page["module"]
        assert isinstance(page.get("order"), int), page["module"]


@pytest.mark.parametrize(
    ("role", "links"), [("viewer", list(VIEWER_PAGES)), ("admin", list(ADMIN_PAGES))]
)
def test_the_navbar_links_the_pages_a_role_may_open(app: Any, role: str, links: list[str]) -> None:
    from tests.conftest import as_user

    with as_user(app, f"{role}@example.com"):
        assert [p["path"] for p in roles.visible_pages()] == links


def export_table() -> str:
    """The README's export table, as the registry says it."""
    from analytics.exports import REGISTRY

    lines = ["| name | one row per | columns | role |", "|---|---|---|---|"]
    for spec in REGISTRY.values():
        lines.append(f"| `{spec.name}` | {spec.row} | {', '.join(spec.columns)} | {spec.role} |")
    return "\n".join(lines)


def test_the_readme_lists_every_export_as_the_registry_declares_it() -> None:
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    table = export_table()
    assert table in readme, "README's export table differs from the registry:\n" + table


def test_export_list_prints_every_export_with_its_columns_and_role() -> None:
    from click.testing import CliRunner

    from analytics.exports import REGISTRY
    from webapp.cli import main

    result = CliRunner().invoke(main, ["export", "--list"])
    assert result.exit_code == 0, result.output
    for spec in REGISTRY.values():
        assert f"{spec.name}  (one row per {spec.row}; role: {spec.role})" in result.output
        assert f"  columns: {', '.join(spec.columns)}" in result.output
    missing = CliRunner().invoke(main, ["export"])
    assert missing.exit_code == 2 and "--list" in missing.output
