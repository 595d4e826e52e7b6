"""campaigns: frozen audiences, their treatment / holdout members, results and log

A campaign keeps its members (ids with their segment, stage and the rule's values as of the
snapshot it was drawn from) without a foreign key to that snapshot, so pruning the snapshot
leaves it whole. The members have no foreign key to their campaign either (its per-row check
doubled the time to write an audience); db/campaigns.py deletes them with it. The
`campaign_results` job writes the results tables; the log (`campaign_events`) has no foreign
key either, so a deletion stays on record.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

from db.migrations.shapes import create_child_table, create_id_table

revision: str = "0009"
down_revision: str | None = "0008"


def upgrade() -> None:
    create_id_table(
        "campaigns",
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("snapshot_id", sa.Integer(), nullable=False),
        sa.Column("snapshot_as_of", sa.Date(), nullable=True),
        sa.Column("snapshot_fitted_at", sa.DateTime(), nullable=True),
        sa.Column("rule", sa.JSON(), nullable=False),
        sa.Column("rule_text", sa.String(length=1000), nullable=False),
        sa.Column("segment_names", sa.JSON(), nullable=False),
        sa.Column("holdout_share", sa.Float(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.Column("treatment_size", sa.Integer(), nullable=False),
        sa.Column("holdout_size", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=254), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("results_at", sa.DateTime(), nullable=True),
        sa.Column("results_through", sa.Date(), nullable=True),
        sa.Column("results_note", sa.Text(), nullable=True),
    )
    op.create_table(
        "campaign_members",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("holdout", sa.Boolean(), nullable=False),
        sa.Column("segment_id", sa.Integer(), nullable=False),
        sa.Column("lifecycle_stage", sa.String(length=32), nullable=True),
        sa.Column("attributes", sa.Text(), nullable=True),
        # No foreign key: its per-row check doubled the time to write 100k members.
        sa.PrimaryKeyConstraint("campaign_id", "customer_id", name=op.f("pk_campaign_members")),
    )
    create_child_table(
        "campaign_results",
        "campaign_id",
        "campaigns",
        sa.Column("group", sa.String(length=16), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.Column("buyers", sa.Integer(), nullable=False),
        sa.Column("conversion", sa.Float(), nullable=True),
        sa.Column("orders", sa.Integer(), nullable=False),
        sa.Column("revenue", sa.Float(), nullable=False),
        sa.Column("revenue_per_customer", sa.Float(), nullable=True),
        sa.Column("aov", sa.Float(), nullable=True),
        key=["group", "period"],
    )
    create_child_table(
        "campaign_lifts",
        "campaign_id",
        "campaigns",
        sa.Column("metric", sa.String(length=32), nullable=False),
        sa.Column("treatment", sa.Float(), nullable=True),
        sa.Column("holdout", sa.Float(), nullable=True),
        sa.Column("lift", sa.Float(), nullable=True),
        sa.Column("low", sa.Float(), nullable=True),
        sa.Column("high", sa.Float(), nullable=True),
        sa.Column("mde", sa.Float(), nullable=True),
        sa.Column("verdict", sa.String(length=400), nullable=False),
        sa.Column("method", sa.String(length=120), nullable=False),
        key=["metric"],
    )
    create_child_table(
        "campaign_daily",
        "campaign_id",
        "campaigns",
        sa.Column("group", sa.String(length=16), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("revenue_per_customer", sa.Float(), nullable=True),
        sa.Column("conversion", sa.Float(), nullable=True),
        key=["group", "day"],
    )
    create_id_table(
        "campaign_events",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("campaign_name", sa.String(length=120), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=254), nullable=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("treatment", sa.Integer(), nullable=True),
        sa.Column("holdout", sa.Integer(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
    )
    op.create_index("ix_campaign_events_campaign_id", "campaign_events", ["campaign_id"])


def downgrade() -> None:
    for table in (
        "campaign_events",
        "campaign_daily",
        "campaign_lifts",
        "campaign_results",
        "campaign_members",
        "campaigns",
    ):
        op.drop_table(table)
