"""snapshot_orders without a foreign key (refit write speed)

Every row COPYed into snapshot_orders (one per order: 4.3M at 10M lines) fired the foreign-key
check on snapshots, about a third of the table's write time (11 of 29 s at 10M lines, measured
in bench/README.md). The refit writes these rows in the same transaction as their snapshot row
and deletes them explicitly with their snapshot, so the constraint guarded nothing the writer
does not. The rows and their meaning are unchanged.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"

FK = "fk_snapshot_orders_snapshot_id_snapshots"


def upgrade() -> None:
    with op.batch_alter_table("snapshot_orders", schema=None) as batch_op:
        batch_op.drop_constraint(FK, type_="foreignkey")


def downgrade() -> None:
    op.execute(
        sa.text("DELETE FROM snapshot_orders WHERE snapshot_id NOT IN (SELECT id FROM snapshots)")
    )
    with op.batch_alter_table("snapshot_orders", schema=None) as batch_op:
        batch_op.create_foreign_key(FK, "snapshots", ["snapshot_id"], ["id"], ondelete="CASCADE")
