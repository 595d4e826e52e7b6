"""python -m bench --scale S|M|L|XL [--only STAGE ...] --out FILE.json"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import nullcontext
from pathlib import Path

from bench import data
from bench.database import DEFAULT_SERVER, fresh_database, has_transactions
from bench.harness import REGISTRY, Context, run, write_json
from bench.stages import OPTIONAL, ORDER

DEFAULT_REPEAT = {"S": 3, "M": 3, "L": 2, "XL": 1}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark import and refit (more stages to come) against same-run baselines.",
    )
    p.add_argument("--scale", choices=data.SCALES, default="S")
    p.add_argument(
        "--only",
        nargs="+",
        choices=(*ORDER, *OPTIONAL),
        metavar="STAGE",
        help=", ".join(ORDER) + "; only when named: " + ", ".join(OPTIONAL),
    )
    p.add_argument("--out", type=Path, required=True, help="JSON file to write")
    p.add_argument(
        "--database-url",
        default=DEFAULT_SERVER,
        help="PostgreSQL server; a fresh database is made on it per run (default: %(default)s)",
    )
    p.add_argument("--keep", action="store_true", help="keep the run's database (prints its URL)")
    p.add_argument(
        "--reuse",
        metavar="URL",
        help="use this existing database instead (kept; its transactions, if any, count as "
        "imported): for iterating on one stage at L without re-importing",
    )
    p.add_argument("--repeat", type=int, default=None, help="repetitions (default S/M 3, L 2)")
    p.add_argument("--seed", type=int, default=42, help="seed of the generated shop (M, L)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    names = [n for n in ORDER if not args.only or n in args.only]
    names += [n for n in OPTIONAL if args.only and n in args.only]
    dataset = data.prepare(args.scale, args.seed)
    repeat = args.repeat or DEFAULT_REPEAT[args.scale]
    database = (
        nullcontext(args.reuse)
        if args.reuse
        else fresh_database(args.database_url, args.scale, keep=args.keep)
    )
    with database as url:
        ctx = Context(args.scale, dataset, url, repeat)
        if args.reuse:
            ctx.imported = has_transactions(ctx.libpq_url)
        elif args.keep:
            ctx.log(f"database kept: {url}")
        results = run(ctx, names)
    write_json(results, args.out)
    summary = {n: {k: results[n].get(k) for k in REGISTRY[n].keys} for n in names}
    print(json.dumps(summary, indent=2))
    missing = results["meta"]["missing_keys"]
    if missing:
        print(f"missing result keys: {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
