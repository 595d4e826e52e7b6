"""The pure parts of a database sync (db/sources.py): line keys, watermarks, and which pulled
lines are new, changed or the same as the stored ones.

A source's line key (its order-line id) names a line across syncs: a pulled line whose key is
stored with other values replaces it, one with the same values is left alone, one with a new
key is added. The watermark (an `updated_at` or an increasing id) says where the last sync
ended; it is kept as JSON with its type, so the next sync compares it as the source does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from analytics.ingest import NORMALIZED_COLUMNS, as_text

MAX_KEY_LENGTH = 128
TEXT_COLUMNS = ("customer_id", "order_id", "category", "country")


def line_keys(cells: pd.Series) -> pd.Series:
    """A source's line keys as text: 1042 and 1042.0 are "1042", text is stripped."""
    return as_text(cells).astype(object)


def key_problem(keys: pd.Series) -> tuple[int, str] | None:
    """(position, what) of the first key a sync cannot use: empty, too long or repeated."""
    lengths = keys.str.len().to_numpy()
    empty = np.flatnonzero(lengths == 0)
    if len(empty):
        return int(empty[0]), "is empty"
    long = np.flatnonzero(lengths > MAX_KEY_LENGTH)
    if len(long):
        return int(long[0]), f"is longer than {MAX_KEY_LENGTH} characters"
    repeated = np.flatnonzero(keys.duplicated().to_numpy())
    if len(repeated):
        return int(repeated[0]), f"{keys.iloc[repeated[0]]!r} appears twice: it is not a line key"
    return None


@dataclass(frozen=True)
class Changes:
    """What a sync does with pulled lines: masks over them, and the stored ids they replace."""

    new: np.ndarray
    changed: np.ndarray
    unchanged: np.ndarray
    replaced_ids: np.ndarray


def _comparable(frame: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=frame.index)
    for column in TEXT_COLUMNS:
        out[column] = frame[column].astype(object).where(frame[column].notna(), "").astype(str)
    out["ordered_at"] = pd.to_datetime(frame["ordered_at"]).astype("datetime64[us]")
    out["amount"] = frame["amount"].astype("float64")
    return out


def compare_lines(pulled: pd.DataFrame, stored: pd.DataFrame) -> Changes:
    """Sort pulled lines (normalized columns and `source_key`) against the stored lines of the
    same keys (normalized columns, `source_key` and `id`): new, changed (their stored id is
    replaced) or unchanged. Values compare exactly, as stored (text, microseconds, float)."""
    n = len(pulled)
    if stored.empty:
        nothing = np.zeros(n, dtype=bool)
        return Changes(np.ones(n, dtype=bool), nothing, nothing.copy(), np.array([], np.int64))
    known = stored.drop_duplicates("source_key").set_index("source_key")
    position = known.index.get_indexer(pulled["source_key"])
    new = position < 0
    old = _comparable(known.iloc[position[~new]].reset_index(drop=True))
    now = _comparable(pulled.loc[~new].reset_index(drop=True))
    same = np.ones(len(now), dtype=bool)
    for column in NORMALIZED_COLUMNS:
        same &= (old[column] == now[column]).to_numpy()
    changed = np.zeros(n, dtype=bool)
    changed[np.flatnonzero(~new)[~same]] = True
    unchanged = ~new & ~changed
    replaced = known["id"].to_numpy()[position[changed]].astype(np.int64)
    return Changes(new, changed, unchanged, replaced)


# --- watermarks ---------------------------------------------------------------------------


def encode_watermark(value: Any) -> dict[str, Any]:
    """A watermark value as JSON, with its type (datetime, date, int, decimal, float, text)."""
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, datetime):
        return {"type": "datetime", "value": value.isoformat()}
    if isinstance(value, date):
        return {"type": "date", "value": value.isoformat()}
    if isinstance(value, bool):
        raise ValueError("a true/false column cannot be a watermark")
    if isinstance(value, int | np.integer):
        return {"type": "int", "value": int(value)}
    if isinstance(value, Decimal):
        return {"type": "decimal", "value": str(value)}
    if isinstance(value, float | np.floating):
        return {"type": "float", "value": float(value)}
    if isinstance(value, str):
        return {"type": "text", "value": value}
    raise ValueError(f"a watermark of type {type(value).__name__} is not supported")


def decode_watermark(stored: dict[str, Any]) -> Any:
    """The watermark value `encode_watermark` stored, as the source's driver takes it."""
    kind, value = stored["type"], stored["value"]
    if kind == "datetime":
        return datetime.fromisoformat(value)
    if kind == "date":
        return date.fromisoformat(value)
    if kind == "int":
        return int(value)
    if kind == "decimal":
        return Decimal(value)
    if kind == "float":
        return float(value)
    return str(value)


def show_watermark(stored: dict[str, Any] | None) -> str:
    """A stored watermark as people read it ("-" when none)."""
    if not stored:
        return "-"
    return str(stored["value"]).replace("T", " ")
