"""drop snapshot_sales_daily (no page read it)

The pages compute sales by day, week and month from `snapshot_orders` (one row per order with
its segment and day, kept in memory as `analytics.orderindex.OrderIndex`): that gives the
distinct customers of any period and the order-value distribution, which a day x segment
rollup cannot. The rollup was written at every refit and read by nothing (2.7 s of a 46 s refit
at 10M lines, bench/profiles/refit-L-after.txt). Downgrade recreates the table empty; a refit
after the downgrade fills it again with the code of that revision.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"


def upgrade() -> None:
    op.drop_table("snapshot_sales_daily")


def downgrade() -> None:
    op.create_table(
        "snapshot_sales_daily",
        sa.Column("snapshot_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("segment_id", sa.Integer(), nullable=False),
        sa.Column("orders", sa.Integer(), nullable=False),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.Column("new_customers", sa.Integer(), nullable=False),
        sa.Column("returns", sa.Integer(), nullable=False),
        sa.Column("gross_revenue", sa.Float(), nullable=False),
        sa.Column("net_revenue", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["snapshots.id"],
            name=op.f("fk_snapshot_sales_daily_snapshot_id_snapshots"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "snapshot_id", "day", "segment_id", name=op.f("pk_snapshot_sales_daily")
        ),
    )
