"""Time, peak memory and backtest of the prediction stage on a CSV (normalized layout).

    python -m bench.predictions FILE [--as-of YYYY-MM-DD] [--purchase-model bg_nbd|pareto_nbd]

Reads the lines, sums them per order (as the refit's SQL does), then runs
`analytics.predictions.run` as of the last order day (or --as-of) and prints one JSON object:
the order table's size, the import of pymc-marketing, the stage's wall time and the process's
peak RSS before and after it, the predictions' metadata and the backtest. The refit stage
itself is not wired yet: this measures the pure function it will call.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from datetime import date

import pandas as pd

from analytics import predictions


def _peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("file")
    parser.add_argument("--as-of", type=date.fromisoformat)
    parser.add_argument("--purchase-model", choices=predictions.PURCHASE_MODELS)
    args = parser.parse_args()

    lines = pd.read_csv(
        args.file,
        usecols=["customer_id", "order_id", "ordered_at", "amount"],
        dtype={"customer_id": str, "order_id": str},
    )
    lines["ordered_at"] = pd.to_datetime(lines["ordered_at"], format="ISO8601")
    orders = lines.groupby(["customer_id", "order_id"], as_index=False, sort=False).agg(
        ordered_at=("ordered_at", "min"), total=("amount", "sum")
    )
    del lines
    as_of = args.as_of or orders["ordered_at"].max().date()
    out: dict = {
        "file": args.file,
        "as_of": as_of.isoformat(),
        "orders": len(orders),
        "customers": int(orders["customer_id"].nunique()),
        "load_avg": os.getloadavg()[0],
        "peak_rss_mb_before": _peak_mb(),
    }
    predictions.configure_compile_dir(None)
    started = time.perf_counter()
    import pymc_marketing.clv  # noqa: F401

    out["import_seconds"] = round(time.perf_counter() - started, 2)
    out["peak_rss_mb_after_import"] = _peak_mb()
    settings = predictions.PredictionSettings(purchase_model=args.purchase_model)
    started = time.perf_counter()
    result, bt = predictions.run(orders, as_of, settings)
    out["stage_seconds"] = round(time.perf_counter() - started, 2)
    out["peak_rss_mb_after"] = _peak_mb()
    out["predictions"] = result.as_dict()
    scored = result.customers.dropna(subset=["churn_risk"])
    out["means"] = {c: round(float(scored[c].mean()), 4) for c in predictions.PREDICTION_COLUMNS}
    out["backtest"] = bt.as_dict() if bt is not None else None
    print(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
