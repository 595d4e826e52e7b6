"""Refits for tests: `db.refit.refit` with the default settings, changed by keyword.

`refit(engine, k=3, keep=1, force=True)` reads as the test means it; the defaults are the
app's (`config.Settings` as declared, not this shell's environment).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

from sqlalchemy import Engine

from analytics.pipeline import RefitSettings
from config import Settings
from db import refit as job
from db.models import Trigger


def refit_settings(**changes: Any) -> RefitSettings:
    """The default refit settings with `changes` (k, k_max, keep, keep_monthly, ...); a fixed
    `k` is recorded as given on the command line, as `custseg refit --k` records it."""
    if changes.get("k") is not None:
        changes.setdefault("k_source", "command line")
    return replace(
        RefitSettings.from_settings(Settings.model_construct(predictions=False)), **changes
    )


def refit(
    engine: Engine,
    *,
    as_of: date | None = None,
    force: bool = False,
    trigger: Trigger = Trigger.CLI,
    **changes: Any,
) -> job.RefitOutcome:
    return job.refit(engine, refit_settings(**changes), as_of=as_of, force=force, trigger=trigger)
