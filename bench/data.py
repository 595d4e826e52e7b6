"""The data of each scale, generated once and cached under bench/.data/ (gitignored).

S is the Online Retail sample shipped with the tests; M and L are `custseg demo-data` shops
(100k and 1M customers, ~1.2M and ~11.7M order lines), written by `analytics.demo.write_demo_csv`
and keyed by scale and seed, so L's 800 MB CSV is generated only once per machine.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(__file__).resolve().parent / ".data"
SAMPLE = ROOT / "tests" / "data" / "online_retail_sample.csv"
CUSTOMERS = {"M": 100_000, "L": 1_000_000, "XL": 3_000_000}
SCALES = ("S", *CUSTOMERS)


@dataclass(frozen=True)
class Dataset:
    scale: str
    path: Path
    seed: int | None
    customers: int | None  # generated customers (None for the sample)
    lines: int

    def describe(self) -> dict[str, Any]:
        return {
            "file": str(self.path.relative_to(ROOT)) if self.path.is_relative_to(ROOT) else "",
            "seed": self.seed,
            "customers_generated": self.customers,
            "lines": self.lines,
            "bytes": self.path.stat().st_size,
        }


def _count_lines(path: Path) -> int:
    n = 0
    with path.open("rb") as fh:
        while block := fh.read(1 << 24):
            n += block.count(b"\n")
    return n - 1  # the header


def prepare(scale: str, seed: int = 42) -> Dataset:
    """The CSV of `scale`, generated into the cache if it is not there yet."""
    if scale == "S":
        return Dataset("S", SAMPLE, None, None, _count_lines(SAMPLE))
    customers = CUSTOMERS[scale]
    path = CACHE / f"{scale}-seed{seed}.csv"
    if not path.is_file():
        from analytics.demo import write_demo_csv

        CACHE.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(CACHE).free
        need = customers * 900  # ~800 bytes of CSV per customer, with room to spare
        if free < 2 * need:
            raise SystemExit(f"not enough disk for {path}: {free / 2**30:.1f} GB free")
        tmp = path.with_name(path.stem + ".partial.csv")
        print(f"generating {path} ({customers:,} customers) ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        write_demo_csv(tmp, customers, seed)
        tmp.replace(path)
        seg = tmp.with_name(tmp.stem + ".segments.csv")
        if seg.exists():
            seg.replace(path.with_name(path.stem + ".segments.csv"))
        print(f"generated in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    return Dataset(scale, path, seed, customers, _count_lines(path))
