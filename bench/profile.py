"""Profile page callbacks with pyinstrument, as the `callbacks` stage posts them.

    python -m bench.profile --reuse URL [--page sales ...] [--cold] [--calls 30] -o out.txt

`URL` is a kept bench database (`python -m bench ... --keep` prints it; it needs two published
snapshots, which any dashboard stage makes). Without `--cold` the caches are read first as a
worker's warm-up thread reads them (unprofiled), and the profile covers `--calls` warm filter
changes per page; with `--cold` it covers each page's first call after the caches are emptied.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from bench import appenv, dashpost, data
from bench.harness import Context
from bench.stages.callbacks import LoggedIn


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.profile")
    p.add_argument("--reuse", required=True, metavar="URL")
    p.add_argument("--scale", default="M")
    p.add_argument("--page", nargs="+", choices=list(dashpost.PAGES), default=list(dashpost.PAGES))
    p.add_argument("--cold", action="store_true")
    p.add_argument("--calls", type=int, default=30)
    p.add_argument("-o", "--out", type=Path, required=True)
    args = p.parse_args(argv)

    from pyinstrument import Profiler

    from db import snapshots
    from webapp import warmup

    ctx = Context(args.scale, data.prepare("S", 42), args.reuse, 1, imported=True)
    [email] = appenv.ensure_users(ctx, 1)
    facts = appenv.snapshot_facts(ctx)
    app = LoggedIn(ctx, email)
    rng = random.Random(6)
    specs = {p: dashpost.spec_for(app.deps, dashpost.PAGES[p]) for p in args.page}
    work = {
        p: dashpost.scenarios(p, facts.last_day, facts.segment_ids, facts.snapshot_ids, rng)
        for p in specs
    }
    if not args.cold:  # what a worker's warm-up thread reads, then one call per page
        for snap in snapshots.published(app.engine)[:2]:
            warmup.warm(app.state.exporter, snap)
        for page, spec in specs.items():
            app.post(dashpost.body(spec, *work[page][0]))
    profiler = Profiler(interval=0.0005)
    for page, spec in specs.items():
        if args.cold:
            app.state.cache.clear()
            profiler.start()
            app.post(dashpost.body(spec, *work[page][-1]))
            profiler.stop()
            continue
        profiler.start()
        for i in range(args.calls):
            app.post(dashpost.body(spec, *work[page][i % len(work[page])]))
        profiler.stop()
    args.out.write_text(profiler.output_text(unicode=True, show_all=False))
    app.close()


if __name__ == "__main__":
    main()
