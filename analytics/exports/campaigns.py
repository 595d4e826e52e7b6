"""The export of a campaign's treatment group: the list the sending tool gets.

One row per treatment customer (the holdout is never in it): the customer id (the sending tool
joins its contact data on it), segment, lifecycle stage and the values of the rule's other
fields, as frozen when the campaign was created; the provenance names the campaign, its rule,
split and snapshot. Only `custseg campaign export` and the Campaigns page ask for it, and both
record the export in the campaign's log (db/campaigns.py::export_treatment).
"""

from __future__ import annotations

import pandas as pd

from analytics.campaigns import ATTRIBUTE_FIELDS, LIST_COLUMNS, treatment_rows
from analytics.exports.registry import Sources, export
from analytics.exports.spec import Filters

# A campaign's list is whole or useless: far above CUSTSEG_EXPORT_ROW_CAP's default.
LIST_ROW_CAP = 5_000_000


@export(
    "campaign_treatment",
    reads=("campaign",),
    columns=LIST_COLUMNS,
    row="customer of a campaign's treatment group (`custseg campaign export ID`)",
    role="analyst",
    row_cap=LIST_ROW_CAP,
    optional=ATTRIBUTE_FIELDS,
)
def campaign_treatment(src: Sources, f: Filters) -> pd.DataFrame:
    """A campaign's treatment group for the sending tool (never its holdout)."""
    if f.campaign is None:
        raise ValueError("campaign_treatment needs a campaign: custseg campaign export ID")
    got = src.campaign(f.campaign)
    out = treatment_rows(got)
    out.attrs["provenance"] = dict(got.provenance)
    return out
