"""The accessibility check of the browser tests: axe-core run in the page, WCAG 2.0 / 2.1 A and AA.

`.ci/ensure-axe` fetches the pinned axe-core release into build/ (`make test` runs it; `axe_source`
runs it too, so `pytest tests/test_browser_a11y.py` works on its own). The script is injected
with WebDriver's `execute_script`, which the Content-Security-Policy does not govern (it is the
browser's automation channel, not a script of the page), so the app's policy stays as it is.

A serious or critical violation fails the check unless it is in `EXCLUSIONS`: one rule on the
elements one CSS selector matches, each with its reason in docs/ACCESSIBILITY.md (a test checks
that every exclusion is listed there). Nothing else is ignored.
"""

from __future__ import annotations

import functools
import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa")
FAILING = ("serious", "critical")


@dataclass(frozen=True)
class Exclusion:
    """Rule `rule` on the elements `selector` matches: a known fault of a component the app
    cannot fix from its side (the reason and upstream report: docs/ACCESSIBILITY.md)."""

    rule: str
    selector: str


# Empty: every violation the check found is fixed from the app (docs/ACCESSIBILITY.md).
EXCLUSIONS: tuple[Exclusion, ...] = ()


@functools.cache
def axe_source() -> str:
    """axe.min.js of the pinned release (fetched by .ci/ensure-axe when missing)."""
    try:
        done = subprocess.run(
            [str(ROOT / ".ci" / "ensure-axe")], capture_output=True, text=True, check=True
        )
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"axe-core is not available: .ci/ensure-axe failed: {exc.stderr.strip()}")
    return Path(done.stdout.strip().splitlines()[-1]).read_text(encoding="utf-8")


RUN = """
const [tags, failing, exclusions, done] = arguments;
axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations'],
                   elementRef: true})
  .then(result => done(result.violations
    .filter(v => failing.includes(v.impact))
    .map(v => ({
      rule: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes
        .filter(n => !exclusions.some(([rule, sel]) =>
          rule === v.id && n.element && n.element.matches(sel)))
        .map(n => ({target: n.target.join(' '), html: n.html.slice(0, 300),
                    why: (n.failureSummary || '').slice(0, 400)})),
      excluded: v.nodes.length,
    }))
    .map(v => ({...v, excluded: v.excluded - v.nodes.length}))))
  .catch(err => done({error: String(err)}));
"""


def run_axe(driver: Any, exclusions: tuple[Exclusion, ...] = EXCLUSIONS) -> list[dict[str, Any]]:
    """The serious and critical violations of the page now shown, excluded elements left out
    (a rule whose every element is excluded comes back with no nodes and its `excluded` count)."""
    if not driver.execute_script("return typeof axe !== 'undefined'"):
        driver.execute_script(axe_source())
    driver.set_script_timeout(60)
    found = driver.execute_async_script(
        RUN, list(TAGS), list(FAILING), [[e.rule, e.selector] for e in exclusions]
    )
    if isinstance(found, dict):
        raise AssertionError(f"axe failed: {found.get('error')}")
    return found  # type: ignore[no-any-return]


def failures(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The violations with elements left once the exclusions are taken out."""
    return [v for v in found if v["nodes"]]


def cell(found: list[dict[str, Any]]) -> str:
    """A page's cell of the table in docs/ACCESSIBILITY.md: rule (impact, elements), or none."""
    parts = []
    for v in found:
        text = f"{v['rule']} ({v['impact']}, {len(v['nodes'])})" if v["nodes"] else ""
        if v["excluded"]:
            text += (" + " if text else "") + f"{v['rule']}: {v['excluded']} excluded"
        parts.append(text)
    return ", ".join(parts) or "none"


def report(results: dict[str, list[dict[str, Any]]]) -> str:
    """What failed, page by page and element by element (the assertion message)."""
    lines = []
    for state, found in results.items():
        for v in failures(found):
            lines.append(f"{state}: {v['rule']} ({v['impact']}): {v['help']}")
            lines += [f"    {n['target']}  {n['html'][:160]}\n      {n['why']}" for n in v["nodes"]]
    return "\n".join(lines)


# What dcc.Link does: a new address for Dash's router, without reloading the page.
NAVIGATE = """
window.history.pushState({}, '', arguments[0]);
window.dispatchEvent(new CustomEvent('_dashprivate_pushstate'));
window.scrollTo(0, 0);
"""

SETTLED = """
const busy = document.querySelector('[data-dash-is-loading=true], ._dash-loading') !== null;
return JSON.stringify([busy, document.readyState, document.body ? document.body.innerHTML.length
  : 0]);
"""


def settle(driver: Any, timeout: float = 30, quiet: float = 0.4) -> None:
    """Wait until the page is loaded, nothing is loading and the DOM has not changed for `quiet`
    seconds (the callbacks a page fires on load have all answered)."""
    deadline = time.time() + timeout
    last, since = None, time.time()
    while time.time() < deadline:
        now = driver.execute_script(SETTLED)
        busy, ready = json.loads(now)[:2]
        if now != last or busy or ready != "complete":
            last, since = now, time.time()
        elif time.time() - since >= quiet:
            return
        time.sleep(0.1)
    raise AssertionError("the page did not settle")
