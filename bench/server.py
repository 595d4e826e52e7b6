"""The app served as production serves it: gunicorn `wsgi:server`, docker-compose's settings.

docker-compose.yml runs `gunicorn --bind 0.0.0.0:8050 --workers 3 --timeout 120
--access-logfile - wsgi:server` with `CUSTSEG_ENV=production` and a real `SECRET_KEY`; the bench
binds to 127.0.0.1 on a free port, writes the access log to a file under the run's temporary
directory, and serves plain HTTP (so `CUSTSEG_COOKIE_SECURE` stays off: behind compose's TLS
proxy it is on). Redis holds the rate limits in compose; here each worker keeps its own
(`memory://`), which only matters for failed logins (the only ones counted).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import appenv
from bench.harness import ROOT, Context

WORKERS = 3
TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    url: str
    pid: int
    log: Path
    rss_mb: dict[str, float] = field(default_factory=dict)

    def worker_rss_mb(self) -> dict[str, float]:
        """Resident memory of the master and each worker now, in MB."""
        return self.worker_memory_mb("rss")

    def worker_memory_mb(self, kind: str = "rss") -> dict[str, float]:
        """Memory of the master and each worker now, in MB: `rss` (resident, pages shared
        with other processes included), `uss` (private: what the process alone holds, freed
        when it exits; a mapped file's pages that no other process has touched count here),
        `pss` (private plus its share of every shared page) or `anon` (anonymous memory: the
        process's own data, a mapped file's pages never included)."""
        import psutil

        def of(p: psutil.Process) -> float:
            if kind == "anon":  # anonymous memory: the process's own data, never a file's pages
                with open(f"/proc/{p.pid}/smaps_rollup") as fh:
                    kb = next(int(line.split()[1]) for line in fh if line.startswith("Anonymous:"))
                return round(kb / 1024, 1)
            info = p.memory_info() if kind == "rss" else p.memory_full_info()
            return round(getattr(info, kind) / 2**20, 1)

        master = psutil.Process(self.pid)
        out = {"master": of(master)}
        for i, child in enumerate(sorted(master.children(), key=lambda c: c.pid)):
            out[f"worker{i + 1}"] = of(child)
        return out

    def memory(self) -> dict[str, dict[str, float]]:
        kinds = ("rss", "uss", "pss", "anon")
        return {f"{kind}_mb": self.worker_memory_mb(kind) for kind in kinds}


@contextmanager
def gunicorn(
    ctx: Context, workers: int = WORKERS, cache_dir: Path | None = None, **env: str
) -> Iterator[Served]:
    """Serve the app on a free local port until the block ends; the RSS at the end is kept.

    `cache_dir`: the snapshot files' directory (`CUSTSEG_CACHE_DIR`); default a new, empty one,
    so the first worker to need a snapshot builds its files, as on a machine after a publish.
    """
    port = free_port()
    gunicorn_bin = str(Path(sys.executable).with_name("gunicorn"))
    tmp = Path(tempfile.mkdtemp(prefix="custseg-bench-"))
    env.setdefault("CUSTSEG_CACHE_DIR", str(cache_dir or tmp / "cache"))
    log = tmp / "gunicorn.log"
    argv = [
        gunicorn_bin,
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--timeout",
        str(TIMEOUT_S),
        "--access-logfile",
        str(tmp / "access.log"),
        "wsgi:server",
    ]
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=appenv.production_env(ctx, **env), stdout=fh, stderr=fh
        )
    served = Served(f"http://127.0.0.1:{port}", proc.pid, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(served.url + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not answer /health: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        ctx.log(f"  gunicorn {workers} workers on {served.url} (pid {proc.pid})")
        yield served
    finally:
        try:
            served.rss_mb = served.worker_rss_mb()
        except Exception:  # noqa: BLE001 - memory is a report, not a reason to fail
            pass
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def summary(served: Served) -> dict[str, Any]:
    return {"rss_mb_at_end": served.rss_mb, "workers": WORKERS, "timeout_s": TIMEOUT_S}


def warm_up(served: Served, email: str, facts: appenv.SnapshotFacts, sessions: int = 6) -> float:
    """Post every page's callback from `sessions` concurrent logged-in sessions, twice, so that
    each gunicorn worker has most likely read the snapshot's caches; the seconds it took."""
    import random
    import re
    from concurrent.futures import ThreadPoolExecutor

    import requests

    from bench import dashpost

    def one(seed: int) -> None:
        s = requests.Session()
        token = re.search(r'name="csrf_token" value="([^"]+)"', s.get(served.url + "/login").text)
        assert token is not None
        form = {"email": email, "password": appenv.PASSWORD, "csrf_token": token.group(1)}
        s.post(served.url + "/login", data=form, allow_redirects=False)
        deps = s.get(served.url + "/_dash-dependencies").json()
        rng = random.Random(seed)
        for _ in range(2):
            for page, output in dashpost.PAGES.items():
                spec = dashpost.spec_for(deps, output)
                work = dashpost.scenarios(
                    page, facts.last_day, facts.segment_ids, facts.snapshot_ids, rng
                )
                values, changed = rng.choice(work)
                s.post(
                    served.url + "/_dash-update-component",
                    json=dashpost.body(spec, values, changed),
                    timeout=TIMEOUT_S,
                ).raise_for_status()

    started = time.perf_counter()
    with ThreadPoolExecutor(sessions) as pool:
        list(pool.map(one, range(sessions)))
    return time.perf_counter() - started
