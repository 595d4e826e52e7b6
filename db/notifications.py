"""Subscriptions, alert rules and their history, as the Notifications page and the unsubscribe
link change and read them. Every value is checked here, whoever sends it (NotificationError says
which and why). Who may change what (own digest, admins any, analysts the rules) is the page's
role check (webapp/pages/notifications.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from analytics.alerts import RULE_KINDS, RuleError, RuleState, parse_rule
from config import Settings
from db import snapshots
from db.delivery import DeliveryFailed, webhook_target
from db.models import (
    AlertEvent,
    AlertRule,
    Delivery,
    Frequency,
    Subscription,
    User,
)
from db.models.users import utcnow

PERIODS = (7, 30, 90)  # the KPI periods a digest may compare (days)
MAX_NAME = 120


class NotificationError(ValueError):
    """A subscription or rule that cannot be saved; the message says why."""


def _id(value: object, label: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**31:
        raise NotificationError(f"Choose a {label}.")
    return value


# --- subscriptions -----------------------------------------------------------------------------


def get_subscription(engine: Engine, user_id: int) -> Subscription | None:
    with Session(engine, expire_on_commit=False) as db:
        return db.scalar(select(Subscription).where(Subscription.user_id == user_id))


def save_subscription(
    engine: Engine,
    user_id: int,
    frequency: object,
    weekday: object = None,
    period_days: object = 30,
    *,
    by: str | None = None,
) -> Subscription | None:
    """Subscribe `user_id` (frequency "refit" or "weekly" on `weekday`, 0 = Monday), or
    unsubscribe (frequency "off"); the subscription (None when off). A new subscription, or one
    switched to "after every refit", starts with the next refit: the latest snapshot counts as
    sent."""
    user_id = _id(user_id, "user")
    if frequency == "off":
        with Session(engine) as db, db.begin():
            db.execute(delete(Subscription).where(Subscription.user_id == user_id))
        return None
    if not isinstance(frequency, str) or frequency not in {f.value for f in Frequency}:
        raise NotificationError("Choose when the digest comes: after every refit, or weekly.")
    if frequency == Frequency.WEEKLY:
        weekday = _weekday(weekday)
    else:
        weekday = None
    if period_days not in PERIODS or isinstance(period_days, bool):
        raise NotificationError(
            f"The KPI period must be one of {', '.join(map(str, PERIODS))} days."
        )
    latest = snapshots.latest_published(engine)
    now = utcnow()
    with Session(engine, expire_on_commit=False) as db, db.begin():
        user = db.get(User, user_id)
        if user is None or not user.active:
            raise NotificationError("That user does not exist or is deactivated.")
        sub = db.scalar(select(Subscription).where(Subscription.user_id == user_id))
        if sub is None:
            sub = Subscription(user_id=user_id, created_at=now)
            db.add(sub)
            sub.last_snapshot_id = latest.id if latest else None
        elif sub.frequency != frequency and frequency == Frequency.REFIT:
            sub.last_snapshot_id = (
                max(sub.last_snapshot_id or 0, latest.id if latest else 0) or None
            )
        sub.frequency = Frequency(frequency)
        sub.weekday = weekday
        sub.period_days = int(period_days)  # type: ignore[call-overload]
        sub.updated_at, sub.updated_by = now, by
    return sub


def _weekday(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 6:
        raise NotificationError("Choose the day of the week the digest comes.")
    return value


def list_subscriptions(engine: Engine) -> pd.DataFrame:
    """Every subscription with its user (admins' table)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                Subscription.id,
                Subscription.user_id,
                User.email,
                User.role,
                User.active,
                Subscription.frequency,
                Subscription.weekday,
                Subscription.period_days,
                Subscription.last_sent_at,
                Subscription.last_snapshot_id,
            )
            .join(User, User.id == Subscription.user_id)
            .order_by(User.email)
        ).all()
    return pd.DataFrame(
        rows,
        columns=[
            "id",
            "user_id",
            "email",
            "role",
            "active",
            "frequency",
            "weekday",
            "period_days",
            "last_sent_at",
            "last_snapshot_id",
        ],
    )


# --- alert rules -------------------------------------------------------------------------------


def check_webhook(settings: Settings, url: object) -> str | None:
    """The webhook URL when it passes the policy now (its host resolves to allowed addresses),
    None for none; NotificationError with the reason otherwise."""
    if url is None or (isinstance(url, str) and not url.strip()):
        return None
    try:
        webhook_target(url, settings.webhook_host_list)
    except DeliveryFailed as exc:
        raise NotificationError(str(exc)) from None
    assert isinstance(url, str)
    return url.strip()


def create_rule(
    engine: Engine,
    settings: Settings,
    *,
    name: object,
    kind: object,
    params: object,
    email_user_ids: Sequence[object] = (),
    webhook_url: object = None,
    by: str | None = None,
) -> AlertRule:
    """Record a rule (armed: it fires the first time its condition holds)."""
    try:
        kind_name, checked = parse_rule(kind, params)
    except RuleError as exc:
        raise NotificationError(str(exc)) from None
    if not isinstance(name, str) or not name.strip():
        name = RULE_KINDS[kind_name].describe(checked, {})
    name = " ".join(name.split())
    if len(name) > MAX_NAME or not name.isprintable():
        raise NotificationError(f"The rule's name must be printable, up to {MAX_NAME} characters.")
    if "segment_id" in checked:
        latest = snapshots.latest_published(engine)
        if latest is not None:
            known = set(snapshots.segments(engine, latest.id)["segment_id"].astype(int))
            if checked["segment_id"] not in known:
                raise NotificationError(
                    f"Segment {checked['segment_id']} is not in the latest snapshot."
                )
    ids = [_id(i, "recipient") for i in email_user_ids]
    url = check_webhook(settings, webhook_url)
    with Session(engine, expire_on_commit=False) as db, db.begin():
        found = set(db.scalars(select(User.id).where(User.id.in_(ids), User.active.is_(True))))
        missing = sorted(set(ids) - found)
        if missing:
            raise NotificationError(f"Recipient(s) {missing} are not active users.")
        if not ids and url is None:
            raise NotificationError("Choose at least one recipient or a webhook URL.")
        rule = AlertRule(
            name=name,
            kind=kind_name,
            params=checked,
            email_user_ids=sorted(set(ids)),
            webhook_url=url,
            enabled=True,
            state=RuleState.ARMED,
            created_by=by,
            created_at=utcnow(),
        )
        db.add(rule)
    return rule


def set_rule_enabled(engine: Engine, rule_id: object, enabled: bool) -> AlertRule:
    """Turn a rule on or off; turning it on arms it again."""
    rule_id = _id(rule_id, "rule")
    with Session(engine, expire_on_commit=False) as db, db.begin():
        rule = db.get(AlertRule, rule_id)
        if rule is None:
            raise NotificationError(f"There is no rule {rule_id}.")
        rule.enabled = enabled
        if enabled and rule.state != RuleState.ARMED:
            rule.state, rule.state_changed_at = RuleState.ARMED, utcnow()
    return rule


def delete_rule(engine: Engine, rule_id: object) -> str:
    """Remove a rule (its history stays); its name."""
    rule_id = _id(rule_id, "rule")
    with Session(engine) as db, db.begin():
        rule = db.get(AlertRule, rule_id)
        if rule is None:
            raise NotificationError(f"There is no rule {rule_id}.")
        name = rule.name
        db.delete(rule)
    return name


def list_rules(engine: Engine) -> list[AlertRule]:
    with Session(engine, expire_on_commit=False) as db:
        return list(db.scalars(select(AlertRule).order_by(AlertRule.id)))


def describe_rule(rule: AlertRule, segment_names: dict[int, str] | None = None) -> str:
    kind = RULE_KINDS.get(rule.kind)
    if kind is None:
        return f"unknown kind {rule.kind}"
    return kind.describe(rule.params, segment_names or {})


# --- history and the delivery log --------------------------------------------------------------


def list_events(engine: Engine, limit: int = 50) -> pd.DataFrame:
    """The latest firings, newest first, each with to whom it went ("a@b.c: sent; …")."""
    with Session(engine) as db:
        events = list(db.scalars(select(AlertEvent).order_by(AlertEvent.id.desc()).limit(limit)))
        ids = [e.id for e in events]
        sent: dict[int | None, list[str]] = {}
        if ids:
            for event_id, recipient, status in db.execute(
                select(Delivery.event_id, Delivery.recipient, Delivery.status)
                .where(Delivery.event_id.in_(ids))
                .order_by(Delivery.id)
            ):
                sent.setdefault(event_id, []).append(f"{recipient}: {status}")
        rows = [
            {
                "id": e.id,
                "fired_at": e.fired_at,
                "rule": e.rule_name,
                "snapshot_id": e.snapshot_id,
                "message": e.message,
                "to": "; ".join(sent.get(e.id, [])) or "nobody",
            }
            for e in events
        ]
    return pd.DataFrame(rows, columns=["id", "fired_at", "rule", "snapshot_id", "message", "to"])


DELIVERY_COLUMNS = (
    "id",
    "created_at",
    "what",
    "channel",
    "recipient",
    "subject",
    "status",
    "attempts",
    "error",
    "sent_at",
)


def list_deliveries(engine: Engine, limit: int = 50, user_id: int | None = None) -> pd.DataFrame:
    """The latest deliveries, newest first (`user_id`: only that user's)."""
    d = Delivery
    stmt = select(*(getattr(d, c) for c in DELIVERY_COLUMNS)).order_by(d.id.desc()).limit(limit)
    if user_id is not None:
        stmt = stmt.where(d.user_id == user_id)
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return pd.DataFrame(rows, columns=list(DELIVERY_COLUMNS))


def delivery_counts(engine: Engine) -> dict[str, int]:
    """How many deliveries are in each status."""
    from sqlalchemy import func

    with engine.connect() as conn:
        rows = conn.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all()
    return {str(status): int(n) for status, n in rows}


# --- unsubscribe -------------------------------------------------------------------------------


def unsubscribe_target(
    engine: Engine, what: str, ident: int, user_id: int
) -> dict[str, Any] | None:
    """What an unsubscribe link would stop (for its confirmation page); None when it is already
    stopped (or gone)."""
    with Session(engine) as db:
        user = db.get(User, user_id)
        if user is None:
            return None
        if what == "digest":
            sub = db.get(Subscription, ident)
            if sub is None or sub.user_id != user_id:
                return None
            return {"email": user.email, "what": "the digest"}
        rule = db.get(AlertRule, ident)
        if rule is None or user_id not in (rule.email_user_ids or []):
            return None
        return {"email": user.email, "what": f"the alert “{rule.name}”"}


def unsubscribe(engine: Engine, what: str, ident: int, user_id: int) -> bool:
    """Stop what a signed unsubscribe link names; whether anything changed (a second click, or
    a mail client's one-click POST after the user's, changes nothing)."""
    with Session(engine) as db, db.begin():
        if what == "digest":
            sub = db.get(Subscription, ident)
            if sub is None or sub.user_id != user_id:
                return False
            db.delete(sub)
            return True
        rule = db.get(AlertRule, ident)
        if rule is None or user_id not in (rule.email_user_ids or []):
            return False
        rule.email_user_ids = [i for i in rule.email_user_ids if i != user_id]
        return True
