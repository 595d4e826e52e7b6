"""Write the latest results into bench/README.md (a table) and bench/results/refit.png (a plot).

python -m bench.report [RESULT.json ...]
    (default: the latest `make bench` runs, bench/results/M.json and L.json, every stage; then
    the before/after history: the refit from {M,L}-before.json and {M,L}-phase1.json, the
    dashboard from {M,L}-dash-before.json, {M,L}-dash.json, L-dash2-before.json and L.json)

The table sits between the `bench:results` markers of bench/README.md; everything else in the
README is left alone. Each stage contributes rows through `ROWS` (one entry per stage), so a new
stage adds its rows here and nothing else changes.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
README = HERE / "README.md"
START, END = "<!-- bench:results:start -->", "<!-- bench:results:end -->"


def _get(doc: dict[str, Any], path: str) -> Any:
    node: Any = doc
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        text = f"{value:,.0f}" if abs(value) >= 1000 else f"{value:,.3g}"
    elif isinstance(value, int):
        text = f"{value:,}"
    else:
        text = str(value)
    return f"{text} {unit}".strip()


# stage -> rows of (label, key path, unit, target or "")
ROWS: dict[str, list[tuple[str, str, str, str]]] = {
    "import": [
        ("import lines/s (median)", "import.lines_per_s", "", ""),
        ("import wall (median)", "import.wall_s", "s", ""),
        ("COPY of the same file (median, baseline)", "import.copy_wall_s", "s", ""),
        ("import.ratio_vs_copy", "import.ratio_vs_copy", "", ">= 0.6"),
    ],
    "refit": [
        ("refit.wall_s (median)", "refit.wall_s", "s", "<= 60 at L"),
        ("refit.peak_rss_mb (max)", "refit.peak_rss_mb", "MB", "<= 4,096 at L"),
        ("stage load", "refit.stages_s.load", "s", ""),
        ("stage features", "refit.stages_s.features", "s", ""),
        ("stage clustering", "refit.stages_s.clustering", "s", ""),
        ("stage profiles", "refit.stages_s.profiles", "s", ""),
        ("stage aggregates", "refit.stages_s.aggregates", "s", ""),
        ("stage write", "refit.stages_s.write", "s", ""),
        ("RFM GROUP BY in PostgreSQL (baseline)", "refit.baseline_rfm_groupby_s", "s", ""),
        ("refit wall / RFM GROUP BY", "refit.wall_vs_rfm_groupby", "x", ""),
        ("k chosen", "refit.k", "", ""),
        ("ARI vs planted segments", "refit.ari_vs_planted", "", ""),
    ],
    "refit_spark": [
        ("Spark engine: refit wall (median)", "refit_spark.wall_s", "s", ""),
        ("Spark engine: peak RSS, refit + JVM", "refit_spark.peak_rss_mb", "MB", ""),
        *[
            (f"Spark engine: stage {s}", f"refit_spark.stages_s.{s}", "s", "")
            for s in ("session", "load", "features", "clustering", "profiles", "aggregates")
        ],
        ("Spark engine: stage write", "refit_spark.stages_s.write", "s", ""),
        ("Spark engine: k chosen", "refit_spark.k", "", ""),
        ("Spark engine: ARI vs the local engine's snapshot", "refit_spark.ari_vs_local", "", ""),
        ("Spark engine: ARI vs planted segments", "refit_spark.ari_vs_planted", "", ""),
    ],
    "callbacks": [
        ("callbacks.p50_ms (every page, warm)", "callbacks.p50_ms", "ms", ""),
        ("callbacks.p95_ms (every page, warm)", "callbacks.p95_ms", "ms", "<= 50 at L"),
        *[
            (f"p50 / p95 {page}", f"callbacks.pages.{page}", "ms", "")
            for page in (
                "overview",
                "segments",
                "retention",
                "sales",
                "migration",
                "customers",
                "model",
            )
        ],
        ("callbacks.cold_ms (slowest page)", "callbacks.cold_max_ms", "ms", ""),
        ("cold, snapshot files built first", "callbacks.cold_build_ms", "ms", ""),
        ("SQL GROUP BY, month x segment, 1 year (baseline)", "callbacks.baseline_sql_ms", "ms", ""),
        ("Sales callback, same filters (same run)", "callbacks.baseline_app_ms", "ms", ""),
        ("callbacks.speedup_vs_sql", "callbacks.speedup_vs_sql", "x", ">= 50 at L"),
    ],
    "page_load": [
        ("page_load_s (slowest page, warm median)", "page_load.page_load_s", "s", "<= 2 at L"),
        ("slowest page", "page_load.slowest_page", "", ""),
        ("first load after start (slowest page)", "page_load.cold_max_s", "s", ""),
        ("first load after a restart (files there, slowest)", "page_load.restart_max_s", "s", ""),
        ("scheduler's files job after a refit (2 snapshots)", "page_load.files_s", "s", ""),
        (
            "first load after start, scheduler's files (slowest)",
            "page_load.scheduled_max_s",
            "s",
            "",
        ),
        ("gunicorn worker RSS, warm (max)", "page_load.rss_mb_warm", "MB", ""),
        ("gunicorn worker USS (private), warm (max)", "page_load.uss_mb_warm", "MB", "<= 300 at L"),
        ("gunicorn worker PSS, warm (max)", "page_load.pss_mb_warm", "MB", ""),
        ("gunicorn worker anonymous memory, warm (max)", "page_load.anon_mb_warm", "MB", ""),
    ],
    "load": [
        ("load.users", "load.users", "", "50"),
        ("load.p95_ms (callbacks and downloads)", "load.p95_ms", "ms", "<= 500 at L"),
        ("load.p50_ms", "load.p50_ms", "ms", ""),
        ("load.errors", "load.errors", "", "0 at L"),
        ("requests served per second", "load.requests_per_s", "", ""),
        ("gunicorn worker RSS at the end (max)", "load.server.rss_mb_at_end", "MB", ""),
    ],
    "campaigns": [
        ("campaigns.audience (customers)", "campaigns.audience", "", "200,000 at L"),
        ("campaigns.create_s (Save campaign, warm)", "campaigns.create_s", "s", "<= 5 at L"),
        ("create from the command line's path, cold", "campaigns.create_cold_s", "s", ""),
        ("preview of the sizes", "campaigns.preview_ms", "ms", ""),
        ("campaigns.measure_s (campaign_results job)", "campaigns.measure_s", "s", ""),
        ("campaigns.report_s (open its page)", "campaigns.report_s", "s", "<= 5 at L"),
        ("treatment list CSV from the page", "campaigns.export_s", "s", ""),
        ("campaign list", "campaigns.list_ms", "ms", ""),
    ],
}
PHASE1 = ("import", "refit")


def _cell(value: Any, unit: str) -> str:
    """Per-page callback rows show p50 / p95; RSS rows the largest worker."""
    if isinstance(value, dict) and "p95_ms" in value:
        return f"{value['p50_ms']:,.0f} / {value['p95_ms']:,.0f} ms"
    if isinstance(value, dict):
        workers = [v for k, v in value.items() if k.startswith("worker")]
        return _fmt(max(workers), unit) if workers else "–"
    return _fmt(value, unit)


def table(docs: list[tuple[str, dict[str, Any]]], stages: tuple[str, ...] | None = None) -> str:
    head = "| | " + " | ".join(name for name, _ in docs) + " | target |"
    lines = [head, "|---" * (len(docs) + 2) + "|"]
    meta_rows: list[tuple[str, Callable[[dict[str, Any]], Any]]] = [
        ("order lines", lambda d: _get(d, "meta.dataset.lines")),
        ("customers segmented", lambda d: _get(d, "refit.customers")),
        ("repetitions", lambda d: _get(d, "meta.repeat")),
        ("commit", lambda d: _get(d, "meta.git_commit")),
        ("date (UTC)", lambda d: (_get(d, "meta.started_at") or "")[:16]),
        ("load average at start", lambda d: _get(d, "meta.machine.load_avg_at_start")),
    ]
    for label, fn in meta_rows:
        lines.append(f"| {label} | " + " | ".join(_fmt(fn(d)) for _, d in docs) + " | |")
    for name, rows in ROWS.items():
        if stages is not None and name not in stages:
            continue
        for label, path, unit, target in rows:
            values = [_get(d, path) for _, d in docs]
            if all(v is None for v in values):
                continue
            lines.append(
                f"| {label} | " + " | ".join(_cell(v, unit) for v in values) + f" | {target} |"
            )
    return "\n".join(lines)


def _pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _two_panels(plt: Any) -> tuple[Any, Any, Any]:
    """The figure of both plots: a wide panel left, a narrower one right."""
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    return fig, ax, ax2


def _target(ax: Any, value: float, label: str) -> None:
    ax.axhline(value, color="red", linestyle="--", linewidth=1, label=label)


def _save(plt: Any, fig: Any, axes: tuple[Any, ...], path: Path) -> None:
    for a in axes:
        a.tick_params(axis="x", labelsize=8, rotation=20)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot(docs: list[tuple[str, dict[str, Any]]], path: Path) -> bool:
    """Stacked refit stage times per run, with the 60 s target; False without matplotlib."""
    plt = _pyplot()
    if plt is None:
        return False
    stages = ["load", "features", "clustering", "profiles", "aggregates", "write"]
    runs = [(n, d) for n, d in docs if _get(d, "refit.stages_s")]
    if not runs:
        return False
    fig, ax, ax2 = _two_panels(plt)
    bottom = [0.0] * len(runs)
    for st in stages:
        values = [float(_get(d, f"refit.stages_s.{st}") or 0.0) for _, d in runs]
        ax.bar([n for n, _ in runs], values, bottom=bottom, label=st)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    walls = [float(_get(d, "refit.wall_s") or 0.0) for _, d in runs]
    names = [n for n, _ in runs]
    ax.scatter(names, walls, color="black", marker="_", s=400, label="wall (process)")
    _target(ax, 60, "target at L: 60 s")
    ax.set_ylabel("seconds (median)")
    ax.set_title("refit: time per stage")
    ax.legend(fontsize=7, loc="upper left")
    rss = [float(_get(d, "refit.peak_rss_mb") or 0.0) for _, d in runs]
    ax2.bar([n for n, _ in runs], rss, color="#72B7B2")
    _target(ax2, 4096, "target at L: 4,096 MB")
    ax2.set_ylabel("MB")
    ax2.set_title("refit: peak RSS")
    ax2.legend(fontsize=7, loc="upper left")
    _save(plt, fig, (ax, ax2), path)
    return True


def plot_dashboard(docs: list[tuple[str, dict[str, Any]]], path: Path) -> bool:
    """Warm callback p95 per page per run (50 ms target), and the warm page load (2 s)."""
    plt = _pyplot()
    if plt is None:
        return False
    runs = [(n, d) for n, d in docs if _get(d, "callbacks.pages")]
    if not runs:
        return False
    pages = list(_get(runs[0][1], "callbacks.pages"))
    fig, ax, ax2 = _two_panels(plt)
    width = 0.8 / len(runs)
    for i, (name, d) in enumerate(runs):
        values = [float(_get(d, f"callbacks.pages.{p}.p95_ms") or 0.0) for p in pages]
        ax.bar([x + i * width for x in range(len(pages))], values, width=width, label=name)
    ax.set_xticks([x + width * (len(runs) - 1) / 2 for x in range(len(pages))], pages)
    _target(ax, 50, "target at L: 50 ms")
    ax.set_ylabel("ms (p95, warm)")
    ax.set_title("filter-change callback p95 per page")
    ax.legend(fontsize=7)
    loads = [(n, _get(d, "page_load.page_load_s")) for n, d in runs]
    ax2.bar([n for n, _ in loads], [float(v or 0.0) for _, v in loads], color="#72B7B2")
    _target(ax2, 2, "target at L: 2 s")
    ax2.set_ylabel("s (slowest page, median)")
    ax2.set_title("page load, headless Chromium")
    ax2.legend(fontsize=7)
    _save(plt, fig, (ax, ax2), path)
    return True


def load(paths: list[Path]) -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for p in paths:
        if p.is_file():
            docs.append((p.stem, json.loads(p.read_text())))
    return docs


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    latest = load([Path(a) for a in args] or [RESULTS / "M.json", RESULTS / "L.json"])
    if not latest:
        print("no results to report", file=sys.stderr)
        return 1
    body = table(latest)
    if plot(latest, RESULTS / "refit.png"):
        body += "\n\n![refit time per stage and peak RSS](results/refit.png)"
    if plot_dashboard(latest, RESULTS / "dashboard.png"):
        body += "\n\n![callback p95 per page and page load](results/dashboard.png)"
    if not args:
        refit = load([RESULTS / f"{s}{v}.json" for s in ("M", "L") for v in ("-before", "-phase1")])
        dash = load(
            [RESULTS / f"{s}-dash{v}.json" for s in ("M", "L") for v in ("-before", "")]
            + [RESULTS / "L-dash2-before.json", RESULTS / "L.json"]
        )
        if refit:
            body += "\n\nHistory: the refit before and after its fixes (`--only import refit`):\n\n"
            body += table(refit, PHASE1)
        if dash:
            body += (
                "\n\nHistory: the dashboard before and after its fixes (`--only callbacks "
                "page_load load` against kept databases; the last column is the latest L run):\n\n"
            )
            body += table(dash, tuple(n for n in ROWS if n not in PHASE1))
        shared = load([RESULTS / f"{s}-arrow{v}.json" for s in ("M", "L") for v in ("-before", "")])
        if shared:
            body += (
                "\n\nHistory: one copy of a snapshot per machine (`--only callbacks page_load`, "
                "main's code then this branch's, back to back against one kept database):\n\n"
            )
            body += table(shared, ("callbacks", "page_load"))
    text = README.read_text()
    if START not in text or END not in text:
        print(f"{README} has no {START} ... {END} markers", file=sys.stderr)
        return 1
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{START}\n{body}\n{END}{tail}")
    print(f"updated {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
