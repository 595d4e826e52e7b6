"""The admin's k setting (a range or a fixed k), stored with who and when, and the effective
setting of the next refit (precedence in analytics.pipeline.resolve_k_setting)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, insert, select

from analytics.pipeline import DEFAULT_K_RANGE, KChoice, resolve_k_setting
from config import Settings
from db.models import KSetting

K_LIMITS = (2, 30)  # as CUSTSEG_K_MIN / CUSTSEG_K_MAX and `custseg refit --k`


def get_k_setting(engine: Engine) -> dict[str, Any] | None:
    """The admin's current setting: k, k_min, k_max, set_by, set_at; None if there is none."""
    with engine.connect() as conn:
        row = conn.execute(
            select(KSetting.k, KSetting.k_min, KSetting.k_max, KSetting.set_by, KSetting.set_at)
            .order_by(KSetting.id.desc())
            .limit(1)
        ).first()
    if row is None or (row.k is None and row.k_min is None):
        return None
    return dict(row._mapping)


def _check(name: str, value: int) -> None:
    lo, hi = K_LIMITS
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be a whole number from {lo} to {hi} (got {value})")


def set_k_setting(
    engine: Engine,
    *,
    k: int | None = None,
    k_min: int | None = None,
    k_max: int | None = None,
    by: str | None = None,
) -> dict[str, Any] | None:
    """Store a fixed `k`, or a range `k_min`..`k_max`, or nothing (all None: clear the setting,
    so the environment or the default applies again). Returns the setting now in force."""
    if k is not None and (k_min is not None or k_max is not None):
        raise ValueError("give either a fixed k or a range k_min..k_max, not both")
    if (k_min is None) != (k_max is None):
        raise ValueError("a range needs both k_min and k_max")
    if k is not None:
        _check("k", k)
    if k_min is not None and k_max is not None:
        _check("k_min", k_min)
        _check("k_max", k_max)
        if k_min > k_max:
            raise ValueError(f"k_min ({k_min}) is above k_max ({k_max})")
    with engine.begin() as conn:
        conn.execute(insert(KSetting).values(k=k, k_min=k_min, k_max=k_max, set_by=by))
    return get_k_setting(engine)


def effective_k_setting(engine: Engine, settings: Settings, cli_k: int | None = None) -> KChoice:
    """What the next refit uses: `cli_k`, then the admin's setting, the environment, the default."""
    from_env = {"k_min", "k_max"} & settings.model_fields_set
    env = (settings.k_min, settings.k_max) if from_env else None
    return resolve_k_setting(cli_k, get_k_setting(engine), env, DEFAULT_K_RANGE)
