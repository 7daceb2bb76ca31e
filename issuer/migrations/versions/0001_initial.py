"""Initial schema: bands, cards, orders, relay sessions and the double-entry ledger.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=16)


def upgrade() -> None:
    op.create_table(
        "bands",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("cplc", sa.String(128), nullable=False, unique=True),
        sa.Column("uid", sa.String(32), nullable=False),
        sa.Column("device_token_hash", sa.String(128), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "cards",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("band_id", sa.Integer, sa.ForeignKey("bands.id"), nullable=False, index=True),
        sa.Column("product", sa.String(32), nullable=False),
        sa.Column("aid", sa.String(32), nullable=False),
        sa.Column("app_serial", sa.String(20), nullable=False, unique=True),
        sa.Column("status", _enum("card_status", "issuing", "active", "locked", "cancelled", "moved"),
                  nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "orders",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("idempotency_key", sa.String(128), nullable=False, unique=True),
        sa.Column("kind", _enum("order_kind", "issue", "topup", "cancel", "lost"), nullable=False),
        sa.Column("band_id", sa.Integer, sa.ForeignKey("bands.id"), nullable=False, index=True),
        sa.Column("card_id", sa.Integer, sa.ForeignKey("cards.id"), nullable=True, index=True),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("state", _enum("order_state", "pending", "in_relay", "debited", "settled",
                                 "refunded", "failed"), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
    )
    op.create_table(
        "relay_sessions",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("order_id", sa.Integer, sa.ForeignKey("orders.id"), nullable=False, index=True),
        sa.Column("step", sa.String(32), nullable=False),
        sa.Column("state", sa.JSON, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
    )
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.String(128), nullable=False, unique=True),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "ledger_transactions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("order_id", sa.Integer, sa.ForeignKey("orders.id"), nullable=True, index=True),
        sa.Column("idempotency_key", sa.String(128), nullable=False, unique=True),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "entries",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("transaction_id", sa.Integer, sa.ForeignKey("ledger_transactions.id"),
                  nullable=False, index=True),
        sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id"), nullable=False, index=True),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )


def downgrade() -> None:
    for table in ("entries", "ledger_transactions", "accounts", "relay_sessions", "orders", "cards",
                  "bands"):
        op.drop_table(table)
