"""A lost band is marked so its device token can only sync; a lost card's order names the band
its balance moves to once the card is proven locked.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("bands") as batch:
        batch.add_column(sa.Column("lost_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("moved_to", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_orders_moved_to_bands", "bands", ["moved_to"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_constraint("fk_orders_moved_to_bands", type_="foreignkey")
        batch.drop_column("moved_to")
    with op.batch_alter_table("bands") as batch:
        batch.drop_column("lost_at")
