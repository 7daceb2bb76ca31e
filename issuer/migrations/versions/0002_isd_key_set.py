"""Bands name the key set that opens their card manager.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("bands") as batch:
        batch.add_column(sa.Column("isd_key_set", sa.String(64), nullable=False,
                                   server_default="test"))


def downgrade() -> None:
    with op.batch_alter_table("bands") as batch:
        batch.drop_column("isd_key_set")
