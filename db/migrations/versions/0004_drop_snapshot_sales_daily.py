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

from alembic import op

from db.migrations.shapes import create_snapshot_sales_daily

revision: str = "0004"
down_revision: str | None = "0003"


def upgrade() -> None:
    op.drop_table("snapshot_sales_daily")


def downgrade() -> None:
    create_snapshot_sales_daily()
