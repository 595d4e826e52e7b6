"""The exports: every chart's data, as pure functions of a snapshot's frames and the filters.

- `spec`: the filter object and the only validation of dates, segments, stages, snapshot,
  granularity;
- `registry`: one declaration per export (what it reads, its columns, its role, its row cap);
- `orders`, `customers`, `cohorts`, `model`, `lifecycle`, `predictions`, `campaigns`: the
  exports, by subject (importing this package registers them all; the ones every shop automates
  first);
- `files`: CSV / XLSX with provenance and formula neutralization.

`db/exporter.py` runs them against the database for pages, downloads and `custseg export`.
"""

from analytics.exports import campaigns, cohorts, customers, lifecycle, model, orders, predictions
from analytics.exports.files import FORMATS, FORMULA_PREFIXES, neutralize, to_bytes
from analytics.exports.registry import (
    REGISTRY,
    Export,
    SnapshotInfo,
    Sources,
    allowed,
    compute,
    get,
    put_first,
)
from analytics.exports.spec import (
    FIRST_DAY,
    GRANULARITIES,
    LAST_DAY,
    MAX_RETENTION_MONTH,
    FilterError,
    Filters,
    View,
)

# The six exports a team automates first; then one per further chart.
put_first(
    ("kpis", "segments", "sales", "retention", "migration", "members", "lifecycle", "predictions")
)

__all__ = [
    "FIRST_DAY",
    "FORMATS",
    "FORMULA_PREFIXES",
    "GRANULARITIES",
    "LAST_DAY",
    "MAX_RETENTION_MONTH",
    "REGISTRY",
    "Export",
    "FilterError",
    "Filters",
    "SnapshotInfo",
    "Sources",
    "View",
    "allowed",
    "campaigns",
    "cohorts",
    "compute",
    "customers",
    "get",
    "lifecycle",
    "model",
    "neutralize",
    "orders",
    "predictions",
    "to_bytes",
]
