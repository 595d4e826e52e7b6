"""database sources, their sync history, source line keys, snapshots built from removed batches

- `sources`: a read-only shop database (URL without password; the password's environment
  variable or secret file), its query or table, column mapping, line key and watermark columns,
  and the last watermark synced.
- `source_syncs`: one row per sync (when, lines new / changed / removed, outcome).
- `transactions.source_id`, `.source_key`: a synced line's source and its order-line id, unique
  per source (a partial index: lines from files have none), so a changed line replaces its
  earlier version. `import_batches.source_id`: the source of a sync batch.
- `snapshots.removed_batches`: batches removed since the snapshot was built from them.

Every added column is nullable: existing rows are lines from files and snapshots with nothing
removed. Downgrade drops all of it.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

from db.migrations.shapes import add_columns, create_id_table, drop_columns, foreign_key

revision: str = "0010"
down_revision: str | None = "0009"


def upgrade() -> None:
    create_id_table(
        "sources",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("url", sa.String(length=1000), nullable=False),
        sa.Column("password_env", sa.String(length=128), nullable=True),
        sa.Column("password_file", sa.String(length=500), nullable=True),
        sa.Column("table_name", sa.String(length=255), nullable=True),
        sa.Column("query", sa.Text(), nullable=True),
        sa.Column("mapping", sa.JSON(), nullable=False),
        sa.Column("key_column", sa.String(length=128), nullable=False),
        sa.Column("watermark_column", sa.String(length=128), nullable=False),
        sa.Column("watermark", sa.JSON(), nullable=True),
        sa.Column("last_synced_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=254), nullable=True),
        sa.UniqueConstraint("name", name=op.f("uq_sources_name")),
    )
    create_id_table(
        "source_syncs",
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("full", sa.Boolean(), nullable=False),
        sa.Column("trigger", sa.String(length=32), nullable=False),
        sa.Column("requested_by", sa.String(length=254), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("lines_read", sa.Integer(), nullable=False),
        sa.Column("lines_new", sa.Integer(), nullable=False),
        sa.Column("lines_changed", sa.Integer(), nullable=False),
        sa.Column("lines_removed", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=True),
        sa.Column("since", sa.String(length=64), nullable=True),
        sa.Column("until", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        foreign_key("source_syncs", "source_id", "sources", ondelete="CASCADE"),
    )
    op.create_index("ix_source_syncs_source_id_id", "source_syncs", ["source_id", "id"])
    add_columns("import_batches", sa.Column("source_id", sa.Integer(), nullable=True))
    add_columns(
        "transactions",
        sa.Column("source_id", sa.Integer(), nullable=True),
        sa.Column("source_key", sa.String(length=128), nullable=True),
    )
    op.create_index(
        "uq_transactions_source_id_source_key",
        "transactions",
        ["source_id", "source_key"],
        unique=True,
        postgresql_where=sa.text("source_key IS NOT NULL"),
        sqlite_where=sa.text("source_key IS NOT NULL"),
    )
    add_columns("snapshots", sa.Column("removed_batches", sa.JSON(), nullable=True))


def downgrade() -> None:
    drop_columns("snapshots", "removed_batches")
    op.drop_index("uq_transactions_source_id_source_key", table_name="transactions")
    drop_columns("transactions", "source_key", "source_id")
    drop_columns("import_batches", "source_id")
    op.drop_table("source_syncs")
    op.drop_table("sources")
