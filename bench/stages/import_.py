"""import: `custseg import` of the scale's CSV against a raw PostgreSQL COPY of the same file.

Both load the same file into the same empty `transactions` table (same indexes, same foreign
key), alternately, `repeat` times each, after a TRUNCATE and a CHECKPOINT; medians are quoted.
The COPY baseline is the most this machine's PostgreSQL can take in: it parses nothing, checks
nothing and reports nothing, so `ratio_vs_copy` (COPY time / import time) is the share of that
limit the importer reaches.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bench.database import checkpoint, truncate_all
from bench.harness import Context, median, stage

COPY_COLUMNS = ("customer_id", "order_id", "ordered_at", "amount", "category", "country")


def raw_copy(libpq_url: str, path: Path) -> int:
    """COPY the file into `transactions` as one batch; the lines loaded."""
    with psycopg.connect(libpq_url) as conn:
        batch = conn.execute(
            "INSERT INTO import_batches (file_name, content_hash, layout, status, lines_read, "
            "lines_imported, orders, customers, report, created_at) VALUES "
            "(%s, %s, 'normalized', 'done', 0, 0, 0, 0, '{}', now()) RETURNING id",
            (f"COPY {path.name}", f"bench-copy-{time.time_ns()}"),
        ).fetchone()
        assert batch is not None
        conn.execute(
            sql.SQL("ALTER TABLE transactions ALTER COLUMN batch_id SET DEFAULT {}").format(
                sql.Literal(batch[0])
            )
        )
        copy_sql = sql.SQL("COPY transactions ({}) FROM STDIN WITH (FORMAT csv, HEADER true)")
        columns = sql.SQL(", ").join(map(sql.Identifier, COPY_COLUMNS))
        with conn.cursor() as cur:
            with cur.copy(copy_sql.format(columns)) as copy, path.open("rb") as fh:
                while block := fh.read(1 << 20):
                    copy.write(block)
            loaded = cur.rowcount
        conn.execute("ALTER TABLE transactions ALTER COLUMN batch_id DROP DEFAULT")
    return int(loaded)


def custseg_import(database_url: str, path: Path) -> dict[str, Any]:
    from db.importer import import_file
    from db.session import make_engine

    engine = make_engine(database_url)
    try:
        report = import_file(engine, path)
    finally:
        engine.dispose()
    return {"lines_imported": report.lines_imported, "orders": report.orders}


@stage("import", keys=("lines_per_s", "ratio_vs_copy", "wall_s", "copy_wall_s"))
def run(ctx: Context) -> dict[str, Any]:
    """custseg import vs raw COPY of the same file, alternately, medians."""
    path = ctx.dataset.path
    copy_s: list[float] = []
    import_s: list[float] = []
    lines = 0
    report: dict[str, Any] = {}
    for i in range(ctx.repeat):
        for kind in ("copy", "import"):  # the last one leaves custseg's import in place
            truncate_all(ctx.libpq_url)
            checkpoint(ctx.libpq_url)
            started = time.perf_counter()
            if kind == "copy":
                lines = raw_copy(ctx.libpq_url, path)
            else:
                report = custseg_import(ctx.database_url, path)
            took = time.perf_counter() - started
            (copy_s if kind == "copy" else import_s).append(took)
            ctx.log(f"  {kind} #{i + 1}: {took:.2f} s")
    ctx.imported = True
    wall = median(import_s)
    copy = median(copy_s)
    return {
        "lines": lines,
        "lines_imported": report.get("lines_imported"),
        "orders": report.get("orders"),
        "wall_s": round(wall, 3),
        "copy_wall_s": round(copy, 3),
        "lines_per_s": round(lines / wall),
        "copy_lines_per_s": round(lines / copy),
        "ratio_vs_copy": round(copy / wall, 3),
        "runs_s": [round(v, 3) for v in import_s],
        "copy_runs_s": [round(v, 3) for v in copy_s],
        "baseline": "COPY transactions (...) FROM STDIN (FORMAT csv) of the same file, "
        "same table and indexes, alternating with the import",
    }
