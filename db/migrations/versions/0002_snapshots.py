"""snapshots

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 10:38:18.466798
"""

import sqlalchemy as sa
from alembic import op

from db.migrations.shapes import (
    create_big_id_table,
    create_id_table,
    create_snapshot_sales_daily,
    create_snapshot_table,
    foreign_key,
)

revision: str = "0002"
down_revision: str | None = "0001"


def upgrade() -> None:
    op.create_table(
        "segment_labels",
        sa.Column("segment_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("renamed_by", sa.String(length=254), nullable=True),
        sa.Column("renamed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("segment_id", name=op.f("pk_segment_labels")),
    )
    create_id_table(
        "snapshots",
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=True),
        sa.Column("data_start", sa.Date(), nullable=True),
        sa.Column("data_end", sa.Date(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("k", sa.Integer(), nullable=True),
        sa.Column("k_requested", sa.String(length=8), nullable=False),
        sa.Column("silhouette", sa.Float(), nullable=True),
        sa.Column("customers", sa.Integer(), nullable=True),
        sa.Column("previous_id", sa.Integer(), nullable=True),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("data_quality", sa.JSON(), nullable=False),
        sa.Column("timings", sa.JSON(), nullable=False),
        sa.Column("matching", sa.JSON(), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("stage", sa.String(length=64), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("trigger", sa.String(length=32), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=True),
    )
    op.create_index("ix_snapshots_status_id", "snapshots", ["status", "id"])

    create_snapshot_table(
        "snapshot_customers",
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("segment_id", sa.Integer(), nullable=False),
        sa.Column("recency_days", sa.Integer(), nullable=False),
        sa.Column("frequency", sa.Integer(), nullable=False),
        sa.Column("monetary", sa.Float(), nullable=False),
        sa.Column("aov", sa.Float(), nullable=False),
        sa.Column("tenure_days", sa.Integer(), nullable=False),
        sa.Column("return_rate", sa.Float(), nullable=False),
        sa.Column("category_breadth", sa.Integer(), nullable=False),
        sa.Column("first_order_day", sa.Date(), nullable=False),
        sa.Column("last_order_day", sa.Date(), nullable=False),
        key=["customer_id"],
    )
    op.create_index(
        "ix_snapshot_customers_snapshot_segment",
        "snapshot_customers",
        ["snapshot_id", "segment_id"],
    )

    create_snapshot_table(
        "snapshot_migration",
        sa.Column("from_snapshot_id", sa.Integer(), nullable=False),
        sa.Column("from_segment", sa.Integer(), nullable=False),
        sa.Column("to_segment", sa.Integer(), nullable=False),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.Column("gross_revenue", sa.Float(), nullable=False),
        key=["from_snapshot_id", "from_segment", "to_segment"],
    )
    create_big_id_table(
        "snapshot_orders",
        sa.Column("snapshot_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("segment_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("total", sa.Float(), nullable=False),
        foreign_key("snapshot_orders", "snapshot_id", "snapshots", ondelete="CASCADE"),
    )
    op.create_index("ix_snapshot_orders_snapshot_day", "snapshot_orders", ["snapshot_id", "day"])

    create_snapshot_table(
        "snapshot_retention",
        sa.Column("cohort", sa.Date(), nullable=False),
        sa.Column("months_since_first", sa.Integer(), nullable=False),
        sa.Column("segment_id", sa.Integer(), nullable=False),
        sa.Column("cohort_size", sa.Integer(), nullable=False),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.Column("revenue", sa.Float(), nullable=False),
        key=["cohort", "months_since_first", "segment_id"],
    )
    create_snapshot_sales_daily()  # dropped by 0004, whose downgrade creates it again
    create_snapshot_table(
        "snapshot_scores",
        sa.Column("k", sa.Integer(), nullable=False),
        sa.Column("silhouette", sa.Float(), nullable=False),
        sa.Column("inertia", sa.Float(), nullable=False),
        sa.Column("davies_bouldin", sa.Float(), nullable=False),
        key=["k"],
    )
    create_snapshot_table(
        "snapshot_segments",
        sa.Column("segment_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("description", sa.String(length=400), nullable=False),
        sa.Column("color", sa.String(length=16), nullable=False),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.Column("share", sa.Float(), nullable=False),
        sa.Column("gross_revenue", sa.Float(), nullable=False),
        sa.Column("revenue_share", sa.Float(), nullable=False),
        sa.Column("orders", sa.Integer(), nullable=False),
        sa.Column("aov", sa.Float(), nullable=True),
        sa.Column("repeat_rate", sa.Float(), nullable=False),
        sa.Column("recency_days", sa.Float(), nullable=False),
        sa.Column("frequency", sa.Float(), nullable=False),
        sa.Column("monetary", sa.Float(), nullable=False),
        sa.Column("centroid", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        key=["segment_id"],
    )


def downgrade() -> None:
    op.drop_table("snapshot_segments")
    op.drop_table("snapshot_scores")
    op.drop_table("snapshot_sales_daily")
    op.drop_table("snapshot_retention")
    op.drop_table("snapshot_orders")
    op.drop_table("snapshot_migration")
    op.drop_table("snapshot_customers")
    op.drop_table("snapshots")
    op.drop_table("segment_labels")
