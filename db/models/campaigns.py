"""Campaigns: a frozen audience split into treatment and holdout, its results, and its log.

A campaign names the snapshot its audience was drawn from but holds no foreign key to it: the
members (ids with their segment, stage and the rule's values as of that snapshot) are stored
here, so pruning the snapshot leaves the campaign whole. Members and results go with their
campaign (db/campaigns.py deletes them; the results tables also by ON DELETE CASCADE); the log
(`campaign_events`) outlives it, so a deletion stays on record.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, parent_key
from db.models.users import utcnow

CAMPAIGN_FK = "campaigns.id"


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    # The snapshot the audience was drawn from (no foreign key: it may be pruned), with what
    # its exports' provenance says of it.
    snapshot_id: Mapped[int] = mapped_column(Integer)
    snapshot_as_of: Mapped[date | None] = mapped_column(Date, nullable=True)
    snapshot_fitted_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    rule: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # analytics.campaigns
    rule_text: Mapped[str] = mapped_column(String(1000), default="")
    segment_names: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)  # at creation
    holdout_share: Mapped[float] = mapped_column(Float)
    seed: Mapped[int] = mapped_column(BigInteger)
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    treatment_size: Mapped[int] = mapped_column(Integer)
    holdout_size: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str | None] = mapped_column(String(254), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # The last measurement (the `campaign_results` job): when, up to which day, and why
    # there is nothing to show yet when there is not.
    results_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    results_through: Mapped[date | None] = mapped_column(Date, nullable=True)
    results_note: Mapped[str | None] = mapped_column(Text, nullable=True)


class CampaignMember(Base):
    """One customer of a campaign's frozen audience, as of the campaign's snapshot."""

    __tablename__ = "campaign_members"

    # No foreign key (as snapshot_orders): its per-row check doubled the time to write an
    # audience of 100k members. db/campaigns.py deletes the members with their campaign.
    campaign_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    holdout: Mapped[bool] = mapped_column(Boolean)
    segment_id: Mapped[int] = mapped_column(Integer)
    lifecycle_stage: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # The values of the rule's other fields (recency, spend, country, ...) as a JSON object by
    # field name, stored as text: encoded in one pass by pandas, not one json.dumps per member.
    attributes: Mapped[str | None] = mapped_column(Text, nullable=True)


class CampaignResult(Base):
    """Per group (treatment / holdout) and period (window / before): the window's figures."""

    __tablename__ = "campaign_results"

    campaign_id: Mapped[int] = parent_key(CAMPAIGN_FK)
    group: Mapped[str] = mapped_column(String(16), primary_key=True)
    period: Mapped[str] = mapped_column(String(16), primary_key=True)
    first_day: Mapped[date] = mapped_column(Date)
    last_day: Mapped[date] = mapped_column(Date)
    customers: Mapped[int] = mapped_column(Integer)
    buyers: Mapped[int] = mapped_column(Integer)
    conversion: Mapped[float | None] = mapped_column(Float, nullable=True)
    orders: Mapped[int] = mapped_column(Integer)
    revenue: Mapped[float] = mapped_column(Float)
    revenue_per_customer: Mapped[float | None] = mapped_column(Float, nullable=True)
    aov: Mapped[float | None] = mapped_column(Float, nullable=True)


class CampaignLift(Base):
    """Treatment - holdout for one metric over the window, with its 95% interval."""

    __tablename__ = "campaign_lifts"

    campaign_id: Mapped[int] = parent_key(CAMPAIGN_FK)
    metric: Mapped[str] = mapped_column(String(32), primary_key=True)
    treatment: Mapped[float | None] = mapped_column(Float, nullable=True)
    holdout: Mapped[float | None] = mapped_column(Float, nullable=True)
    lift: Mapped[float | None] = mapped_column(Float, nullable=True)
    low: Mapped[float | None] = mapped_column(Float, nullable=True)
    high: Mapped[float | None] = mapped_column(Float, nullable=True)
    mde: Mapped[float | None] = mapped_column(Float, nullable=True)
    verdict: Mapped[str] = mapped_column(String(400))
    method: Mapped[str] = mapped_column(String(120))


class CampaignDaily(Base):
    """Per group and day since the start: cumulative revenue per customer and conversion."""

    __tablename__ = "campaign_daily"

    campaign_id: Mapped[int] = parent_key(CAMPAIGN_FK)
    group: Mapped[str] = mapped_column(String(16), primary_key=True)
    day: Mapped[int] = mapped_column(Integer, primary_key=True)
    revenue_per_customer: Mapped[float | None] = mapped_column(Float, nullable=True)
    conversion: Mapped[float | None] = mapped_column(Float, nullable=True)


class CampaignEvent(Base):
    """Who created, exported or deleted a campaign, when, and the sizes at the time."""

    __tablename__ = "campaign_events"
    __table_args__ = (Index("ix_campaign_events_campaign_id", "campaign_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(Integer)  # no foreign key: outlives the campaign
    campaign_name: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(16))  # create | export | delete
    actor: Mapped[str | None] = mapped_column(String(254), nullable=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    treatment: Mapped[int | None] = mapped_column(Integer, nullable=True)
    holdout: Mapped[int | None] = mapped_column(Integer, nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
