"""The export registry: one declaration per export, the only list of them.

An export is what a chart draws and what its download, `custseg export NAME` and any later
report hold: a pure function of a snapshot's frames and the filters. Its declaration says what it
reads, its columns, who may receive its data and its row cap; pages, downloads, the CLI, its
`--list` and the README's table (a test compares them) all take them from here.

Adding a chart: one `@export(...)` function in the module of its subject, one figure in
`webapp/charts.py`, one place in a page (see docs/ARCHITECTURE.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, Literal, Protocol

import pandas as pd

from analytics.exports.spec import Filters

if TYPE_CHECKING:
    from analytics.campaigns import AudienceList
    from analytics.orderindex import OrderIndex

Role = Literal["viewer", "analyst", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "analyst", "admin")
# What an export may read of a snapshot (a `Sources` attribute each).
Source = Literal[
    "snapshot",
    "orders",
    "customers",
    "predictions",
    "segments",
    "profiles",
    "customer_sample",
    "retention",
    "migration",
    "scores",
    "history",
    "stages",
    "k_previews",
    "stage_migration",
    "campaign",
]


@dataclass(frozen=True)
class SnapshotInfo:
    """What an export may know of its snapshot besides its frames."""

    id: int
    as_of: date | None
    data_start: date | None
    data_end: date | None
    k: int | None
    previous_id: int | None
    active_days: int = 90  # CUSTSEG_ACTIVE_DAYS, for the KPIs' active customers
    high_risk: float = 0.7  # CUSTSEG_HIGH_RISK: churn risk from which a customer is at high risk
    high_value_share: float = 0.2  # CUSTSEG_HIGH_VALUE_SHARE: the top share by 12-month CLV
    predictions_status: str = "off"  # pending, running, done, failed or off
    predictions: dict[str, Any] | None = None  # models, backtest (db/predictions.py)


class Sources(Protocol):
    """A snapshot's frames as an export's compute function reads them (read lazily, cached by
    the caller). `db/exporter.py` serves them from the database; tests serve frames directly."""

    @property
    def snapshot(self) -> SnapshotInfo: ...

    @property
    def orders(self) -> OrderIndex: ...

    @property
    def customers(self) -> pd.DataFrame: ...

    @property
    def predictions(self) -> pd.DataFrame:
        """Each scored or unscored customer's predictions: customer_id, segment_id,
        expected_orders_90d, churn_risk, clv_12m, unscored_reason (no rows while pending)."""
        ...

    @property
    def segments(self) -> pd.DataFrame: ...

    @property
    def profiles(self) -> pd.DataFrame: ...

    @property
    def customer_sample(self) -> pd.DataFrame: ...

    @property
    def retention(self) -> pd.DataFrame: ...

    @property
    def scores(self) -> pd.DataFrame: ...

    @property
    def history(self) -> pd.DataFrame: ...

    def migration(self, compare_to: int | None) -> tuple[pd.DataFrame, int | None]:
        """Moves from snapshot `compare_to` (default: the previous one) into this one, and the
        id of the snapshot they come from (None for the first snapshot: nobody moved yet)."""
        ...

    @property
    def stages(self) -> pd.DataFrame:
        """The snapshot's lifecycle stages (`snapshot_stages`): one row per stage, with the
        medians, the action and its basis; empty for a snapshot from before stages."""
        ...

    @property
    def k_previews(self) -> pd.DataFrame:
        """The clusters of every k the refit fitted (`snapshot_k_previews`)."""
        ...

    def stage_migration(self, compare_to: int | None) -> tuple[pd.DataFrame, int | None]:
        """As `migration`, between lifecycle stages ("(new)" / "(gone)" for customers who
        joined or left); empty when the earlier snapshot has no stages."""
        ...

    def campaign(self, campaign_id: int) -> AudienceList:
        """A campaign's frozen members (stored with the campaign, whatever snapshots remain)."""
        ...


Compute = Callable[[Sources, Filters], pd.DataFrame]


@dataclass(frozen=True)
class Export:
    """One export: its name, what it reads, how it is computed, what comes out, who gets it."""

    name: str
    compute: Compute
    reads: tuple[Source, ...]
    columns: tuple[str, ...]
    row: str  # "one row per ..." (for --list and the README)
    role: Role = "viewer"  # who may receive its data; customer-level data is for analysts
    row_cap: int | None = None  # None: CUSTSEG_EXPORT_ROW_CAP
    options: tuple[str, ...] = ()  # the Filters fields it reads beyond dates and segments
    optional: tuple[str, ...] = ()  # columns only some filters bring (e.g. retention's split)
    summary: str = ""


REGISTRY: dict[str, Export] = {}


def export(
    name: str,
    *,
    reads: tuple[Source, ...],
    columns: tuple[str, ...],
    row: str,
    role: Role = "viewer",
    row_cap: int | None = None,
    options: tuple[str, ...] = (),
    optional: tuple[str, ...] = (),
) -> Callable[[Compute], Compute]:
    """Declare the decorated function as export `name` (its docstring's first line is its
    summary)."""

    def register(fn: Compute) -> Compute:
        if name in REGISTRY:
            raise ValueError(f"export {name!r} is declared twice")
        summary = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        REGISTRY[name] = Export(
            name, fn, reads, columns, row, role, row_cap, options, optional, summary
        )
        return fn

    return register


def in_segments(
    frame: pd.DataFrame, segments: Sequence[int], column: str = "segment_id"
) -> pd.DataFrame:
    """The rows of `frame` in `segments` (all rows when none is chosen)."""
    return frame[frame[column].isin(segments)] if segments else frame


def put_first(names: tuple[str, ...]) -> None:
    """Order the registry (lists, the README) with `names` first."""
    ordered = [n for n in names if n in REGISTRY] + [n for n in REGISTRY if n not in names]
    for name in ordered:
        REGISTRY[name] = REGISTRY.pop(name)


def get(name: str) -> Export:
    """The export called `name`, or a ValueError listing them."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown export {name!r}: choose one of {', '.join(REGISTRY)}") from None


def role_rank(role: str) -> int:
    return ROLES.index(role) if role in ROLES else -1  # type: ignore[arg-type]


def allowed(export_role: str, user_role: str | None) -> bool:
    """Whether a user of `user_role` may receive data of `export_role` (None: the command line,
    which is for whoever runs the server)."""
    return user_role is None or role_rank(user_role) >= role_rank(export_role)


def compute(name: str, src: Sources, f: Filters) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The frame of export `name` (columns in declared order) and what its compute function
    added to the provenance (`frame.attrs["provenance"]`)."""
    spec = get(name)
    frame = spec.compute(src, f)
    extra = dict(frame.attrs.pop("provenance", {}))
    expected = [c for c in spec.columns if c not in spec.optional or c in frame.columns]
    if list(frame.columns) != expected:
        raise RuntimeError(f"export {name} gave columns {list(frame.columns)}, not {expected}")
    return frame, extra
