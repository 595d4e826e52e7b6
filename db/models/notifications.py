"""Notifications: digest subscriptions, alert rules and what they fired, and the delivery log.

What a digest or an alert says is computed by `analytics/digest.py` and `analytics/alerts.py`;
`db/notify.py` decides what is due and records it here; `db/delivery.py` sends it (SMTP,
webhooks) and logs every attempt on its delivery row.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from analytics.alerts import RuleState  # armed / fired: the firing rule is analytics.alerts
from db.base import Base, text_enum
from db.models.users import utcnow


class Frequency(StrEnum):
    """When a subscriber gets the digest."""

    REFIT = "refit"  # after every published refit
    WEEKLY = "weekly"  # on `weekday`, with the daily notification run


class Channel(StrEnum):
    EMAIL = "email"
    WEBHOOK = "webhook"


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # recorded, not sent yet (or waiting for its next attempt)
    SENT = "sent"
    FAILED = "failed"  # every attempt failed: see `error` and `log`
    REFUSED = "refused"  # never attempted: a webhook address outside the policy, no SMTP


class Subscription(Base):
    """A user's digest (one per user)."""

    __tablename__ = "notification_subscriptions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), unique=True, index=True
    )
    frequency: Mapped[Frequency] = mapped_column(text_enum(Frequency, 16))
    weekday: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)  # 0 = Monday
    period_days: Mapped[int] = mapped_column(Integer, default=30)  # of the KPI comparison
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(254), nullable=True)
    last_sent_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # The snapshot of the last digest: the next one compares with it, and a refit digest is
    # sent once per snapshot.
    last_snapshot_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class AlertRule(Base):
    """A condition on a snapshot's figures (`analytics.alerts.RULE_KINDS`) and who hears of it."""

    __tablename__ = "alert_rules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(32))  # a key of analytics.alerts.RULE_KINDS
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    email_user_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    # Incoming-webhook URLs carry their own secret: never shown whole once saved.
    webhook_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    state: Mapped[RuleState] = mapped_column(text_enum(RuleState, 16), default=RuleState.ARMED)
    state_changed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    last_checked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    last_snapshot_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_message: Mapped[str | None] = mapped_column(Text, nullable=True)  # the last check's
    created_by: Mapped[str | None] = mapped_column(String(254), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class AlertEvent(Base):
    """A rule firing: the history of what fired, when, and (through its deliveries) to whom.
    Kept when its rule is deleted (the rule's name is copied)."""

    __tablename__ = "alert_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rule_id: Mapped[int | None] = mapped_column(
        ForeignKey("alert_rules.id", ondelete="SET NULL"), nullable=True, index=True
    )
    rule_name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(32))
    snapshot_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    fired_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    message: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    link: Mapped[str | None] = mapped_column(String(2000), nullable=True)


class Delivery(Base):
    """One message to one recipient, and every attempt to send it (`log`)."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (Index("ix_notification_deliveries_status_id", "status", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    job_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    what: Mapped[str] = mapped_column(String(16))  # digest | alert
    channel: Mapped[Channel] = mapped_column(text_enum(Channel, 16))
    # An e-mail address, or a webhook URL shortened to scheme://host/… (never its secret path).
    recipient: Mapped[str] = mapped_column(String(300))
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    subject: Mapped[str] = mapped_column(String(300))
    snapshot_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    subscription_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    event_id: Mapped[int | None] = mapped_column(
        ForeignKey("alert_events.id", ondelete="SET NULL"), nullable=True, index=True
    )
    rule_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # What is sent: the whole e-mail (RFC 5322 text) or the webhook's JSON body.
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[DeliveryStatus] = mapped_column(
        text_enum(DeliveryStatus, 16), default=DeliveryStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)  # the last attempt's
    log: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
