"""jobs (the queue the scheduler process works) and snapshots.fingerprint

"Refit now" records a queued job instead of starting a process from a web worker; the scheduler
process claims and runs it. A snapshot keeps the fingerprint of the data, settings and as-of
date it was made from, so a refit that would read the same publishes nothing.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

from db.migrations.shapes import add_columns, create_id_table, drop_columns

revision: str = "0006"
down_revision: str | None = "0005"


def upgrade() -> None:
    create_id_table(
        "jobs",
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("trigger", sa.String(length=32), nullable=False),
        sa.Column("requested_by", sa.String(length=254), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("stage", sa.String(length=64), nullable=True),
        sa.Column("snapshot_id", sa.Integer(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
    )
    op.create_index("ix_jobs_status_id", "jobs", ["status", "id"])
    add_columns("snapshots", sa.Column("fingerprint", sa.String(length=64), nullable=True))


def downgrade() -> None:
    drop_columns("snapshots", "fingerprint")
    op.drop_table("jobs")
