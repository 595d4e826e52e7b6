"""users transactions import batches

Revision ID: 0001
Revises:
Create Date: 2026-11-28 10:28:04.385045
"""

import sqlalchemy as sa
from alembic import op

from db.migrations.shapes import create_big_id_table, create_id_table, foreign_key

revision: str = "0001"
down_revision: str | None = None


def upgrade() -> None:
    create_id_table(
        "import_batches",
        sa.Column("file_name", sa.String(length=500), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("layout", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("lines_read", sa.Integer(), nullable=False),
        sa.Column("lines_imported", sa.Integer(), nullable=False),
        sa.Column("orders", sa.Integer(), nullable=False),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.Column("first_ordered_at", sa.DateTime(), nullable=True),
        sa.Column("last_ordered_at", sa.DateTime(), nullable=True),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=254), nullable=True),
        sa.UniqueConstraint("content_hash", name=op.f("uq_import_batches_content_hash")),
    )
    create_id_table(
        "users",
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("session_version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_login_at", sa.DateTime(), nullable=True),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    create_big_id_table(
        "transactions",
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=True),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("ordered_at", sa.DateTime(), nullable=False),
        sa.Column("amount", sa.Float(precision=53), nullable=False),
        sa.Column("category", sa.String(length=128), nullable=True),
        sa.Column("country", sa.String(length=64), nullable=True),
        foreign_key("transactions", "batch_id", "import_batches", ondelete="CASCADE"),
    )
    op.create_index("ix_transactions_batch_id", "transactions", ["batch_id"])
    op.create_index(
        "ix_transactions_customer_id_ordered_at", "transactions", ["customer_id", "ordered_at"]
    )
    op.create_index("ix_transactions_ordered_at", "transactions", ["ordered_at"])


def downgrade() -> None:
    op.drop_table("transactions")
    op.drop_table("users")
    op.drop_table("import_batches")
