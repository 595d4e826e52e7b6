"""Stage registry, run context, medians and the JSON result.

A stage is a function `run(ctx) -> dict` registered under a name with `@stage(name, keys)`;
`keys` are the result keys it promises (checked after the run, so a smoke run at scale S fails
when a stage stops producing one). Adding a stage is one module in `bench/stages/`, imported in
`bench/stages/__init__.py`.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.data import Dataset

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[Context], dict[str, Any]]
    keys: tuple[str, ...]
    doc: str


REGISTRY: dict[str, Stage] = {}


def stage(name: str, keys: tuple[str, ...]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register `fn(ctx) -> dict` as the stage `name`, promising result `keys`."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        REGISTRY[name] = Stage(name, fn, keys, (fn.__doc__ or "").strip().splitlines()[0])
        return fn

    return register


@dataclass
class Context:
    """What every stage gets: the scale, its data file, the database, repetitions, a log."""

    scale: str
    dataset: Dataset
    database_url: str  # SQLAlchemy URL of this run's database
    repeat: int
    results: dict[str, Any] = field(default_factory=dict)
    imported: bool = False  # transactions hold the dataset (imported by custseg)

    def log(self, message: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    @property
    def libpq_url(self) -> str:
        """The database URL as psycopg takes it (no SQLAlchemy driver suffix)."""
        return self.database_url.replace("postgresql+psycopg://", "postgresql://", 1)

    def ensure_imported(self) -> None:
        """Import the dataset with custseg (untimed) if no stage has done so yet."""
        if self.imported:
            return
        from db.importer import import_file
        from db.session import make_engine

        self.log(f"importing {self.dataset.path.name} (untimed: the import stage was not run)")
        engine = make_engine(self.database_url)
        try:
            import_file(engine, self.dataset.path)
        finally:
            engine.dispose()
        self.imported = True


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_avg_at_start": [round(v, 2) for v in os.getloadavg()],
    }
    try:
        import psutil

        info["memory_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    return info


def missing_keys(results: dict[str, Any], stages: list[Stage]) -> list[str]:
    missing = []
    for st in stages:
        section = results.get(st.name, {})
        missing += [f"{st.name}.{k}" for k in st.keys if k not in section]
    return missing


def run(ctx: Context, names: list[str]) -> dict[str, Any]:
    """Run the stages `names` in order; the result document (meta + one section per stage)."""
    stages = [REGISTRY[n] for n in names]
    meta: dict[str, Any] = {
        "scale": ctx.scale,
        "dataset": ctx.dataset.describe(),
        "stages": names,
        "repeat": ctx.repeat,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "machine": machine(),
    }
    ctx.results["meta"] = meta
    for st in stages:
        ctx.log(f"stage {st.name}: {st.doc}")
        started = time.perf_counter()
        ctx.results[st.name] = st.run(ctx)
        ctx.results[st.name]["stage_wall_s"] = round(time.perf_counter() - started, 2)
    meta["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    meta["missing_keys"] = missing_keys(ctx.results, stages)
    return ctx.results


def write_json(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=2, sort_keys=False, default=str) + "\n")
    tmp.replace(path)
