"""snapshot_predictions, snapshots.predictions_status and snapshots.predictions

Each published snapshot gets, from its own job after publishing, every customer's expected orders
in 90 days, churn risk and 12-month CLV, and the models and backtest behind them.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

from db.migrations.shapes import add_columns, create_snapshot_table, drop_columns

revision: str = "0007"
down_revision: str | None = "0006"


def upgrade() -> None:
    create_snapshot_table(
        "snapshot_predictions",
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("expected_orders_90d", sa.Float(), nullable=True),
        sa.Column("churn_risk", sa.Float(), nullable=True),
        sa.Column("clv_12m", sa.Float(), nullable=True),
        sa.Column("unscored_reason", sa.String(length=120), nullable=True),
        key=["customer_id"],
    )
    add_columns(
        "snapshots",
        sa.Column(
            "predictions_status",
            sa.String(length=16),
            nullable=False,
            server_default="off",  # snapshots published before predictions existed
        ),
        sa.Column("predictions", sa.JSON(), nullable=True),
    )


def downgrade() -> None:
    drop_columns("snapshots", "predictions", "predictions_status")
    op.drop_table("snapshot_predictions")
