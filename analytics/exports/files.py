"""An export's file: CSV or XLSX, its provenance, and cells a spreadsheet would run neutralized.

Provenance (snapshot, as-of date, filters, export time) travels with every file: `#` comment
lines at the top of a CSV, a "provenance" sheet in an XLSX. Text that a spreadsheet would run as
a formula gets a leading apostrophe, in the data and in the provenance; control characters in a
provenance value (which comes partly from the request) become spaces, so no value can start a
line of its own.
"""

from __future__ import annotations

import io
import re
from typing import Any

import pandas as pd

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "|", "%")
FORMATS = ("csv", "xlsx")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# A separator, then blanks or quotes, then a formula start: where a spreadsheet's next cell
# would begin with a formula.
_CELL_FORMULA = re.compile(r'([,;][\s"]*)(?=[=+\-@|%])')


def neutralize(frame: pd.DataFrame) -> pd.DataFrame:
    """Text cells a spreadsheet would run as a formula get a leading apostrophe."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            # As objects: Arrow-backed text (the snapshot files) maps to text, not booleans.
            s = out[col].astype(object)
            is_text = pd.Series([isinstance(v, str) for v in s], index=s.index, dtype=bool)
            starts = s.where(is_text, "").astype(str).str.startswith(FORMULA_PREFIXES)
            risky = is_text & starts.astype(bool)
            if risky.any():
                out[col] = s.where(~risky, "'" + s.astype(str))
    return out


def provenance_text(value: Any) -> str:
    """A provenance value as one inert line of text.

    A CSV's provenance lines are not quoted, so a spreadsheet splits them at commas (or
    semicolons, in locales where that is the separator): a formula start after one of them gets
    the apostrophe too, or `12350,=1+2` would put a formula in the line's second cell.
    """
    text = _CONTROL.sub(" ", str(value))
    text = _CELL_FORMULA.sub(r"\1'", text)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def to_bytes(frame: pd.DataFrame, fmt: str, provenance: dict[str, Any]) -> bytes:
    """The file content of an export: CSV (comment header) or XLSX (data + provenance sheet)."""
    safe = neutralize(frame)
    prov = {provenance_text(k): provenance_text(v) for k, v in provenance.items()}
    if fmt == "csv":
        # CRLF rows (RFC 4180): the writer then quotes any cell holding a bare CR, which a
        # spreadsheet would otherwise read as a new row starting with what follows the CR.
        head = "".join(f"# {k}: {v}\r\n" for k, v in prov.items())
        return (head + safe.to_csv(index=False, lineterminator="\r\n")).encode("utf-8")
    if fmt == "xlsx":
        buf = io.BytesIO()
        sheet = pd.DataFrame({"key": list(prov), "value": list(prov.values())})
        with pd.ExcelWriter(buf, engine="openpyxl") as writer:
            safe.to_excel(writer, sheet_name="data", index=False)
            sheet.to_excel(writer, sheet_name="provenance", index=False)
        return buf.getvalue()
    raise ValueError(f"format must be csv or xlsx, not {fmt!r}")
