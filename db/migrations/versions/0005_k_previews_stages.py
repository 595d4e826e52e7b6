"""k previews, the admin's k setting, RFM scores and lifecycle stages, suggested actions

- `snapshot_k_previews`: for every k a refit fitted, each cluster's size and medians, so an admin
  can preview a k without a refit.
- `k_settings`: an admin's k range or fixed k, with who and when (the latest row counts).
- `snapshot_customers`: R, F, M scores (1-5) and the lifecycle stage; `snapshot_stages`: one row
  per stage with its figures and suggested action; `snapshot_stage_migration`: customers moving
  between the stages of the previous snapshot and this one.
- `snapshot_segments.action`, `.action_basis`: the suggested action and the numbers behind it.
- `snapshots.k_selection`: why the refit chose its k.

Columns added to existing tables are nullable: snapshots from before stay readable, and show no
stage. Downgrade drops all of it.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

from db.migrations.shapes import add_columns, create_id_table, create_snapshot_table, drop_columns

revision: str = "0005"
down_revision: str | None = "0004"


def upgrade() -> None:
    create_id_table(
        "k_settings",
        sa.Column("k_min", sa.Integer(), nullable=True),
        sa.Column("k_max", sa.Integer(), nullable=True),
        sa.Column("k", sa.Integer(), nullable=True),
        sa.Column("set_by", sa.String(length=254), nullable=True),
        sa.Column("set_at", sa.DateTime(), nullable=False),
    )
    create_snapshot_table(
        "snapshot_k_previews",
        sa.Column("k", sa.Integer(), nullable=False),
        sa.Column("cluster", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.Column("share", sa.Float(), nullable=False),
        sa.Column("gross_revenue", sa.Float(), nullable=False),
        sa.Column("recency_days", sa.Float(), nullable=False),
        sa.Column("frequency", sa.Float(), nullable=False),
        sa.Column("monetary", sa.Float(), nullable=False),
        key=["k", "cluster"],
    )
    create_snapshot_table(
        "snapshot_stage_migration",
        sa.Column("from_snapshot_id", sa.Integer(), nullable=False),
        sa.Column("from_stage", sa.String(length=32), nullable=False),
        sa.Column("to_stage", sa.String(length=32), nullable=False),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.Column("gross_revenue", sa.Float(), nullable=False),
        key=["from_snapshot_id", "from_stage", "to_stage"],
    )
    create_snapshot_table(
        "snapshot_stages",
        sa.Column("stage", sa.String(length=32), nullable=False),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.Column("share", sa.Float(), nullable=False),
        sa.Column("gross_revenue", sa.Float(), nullable=False),
        sa.Column("aov", sa.Float(), nullable=True),
        sa.Column("repeat_rate", sa.Float(), nullable=True),
        sa.Column("recency_days", sa.Float(), nullable=True),
        sa.Column("frequency", sa.Float(), nullable=True),
        sa.Column("monetary", sa.Float(), nullable=True),
        sa.Column("action", sa.String(length=300), nullable=True),
        sa.Column("action_basis", sa.JSON(), nullable=True),
        key=["stage"],
    )
    add_columns(
        "snapshot_customers",
        sa.Column("r_score", sa.SmallInteger(), nullable=True),
        sa.Column("f_score", sa.SmallInteger(), nullable=True),
        sa.Column("m_score", sa.SmallInteger(), nullable=True),
        sa.Column("lifecycle_stage", sa.String(length=32), nullable=True),
    )
    add_columns(
        "snapshot_segments",
        sa.Column("action", sa.String(length=300), nullable=True),
        sa.Column("action_basis", sa.JSON(), nullable=True),
    )
    add_columns("snapshots", sa.Column("k_selection", sa.JSON(), nullable=True))


def downgrade() -> None:
    drop_columns("snapshots", "k_selection")
    drop_columns("snapshot_segments", "action_basis", "action")
    drop_columns("snapshot_customers", "lifecycle_stage", "m_score", "f_score", "r_score")
    op.drop_table("snapshot_stages")
    op.drop_table("snapshot_stage_migration")
    op.drop_table("snapshot_k_previews")
    op.drop_table("k_settings")
