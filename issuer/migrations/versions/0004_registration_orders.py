"""Three order kinds, proven by the card like every other: ``rekey`` replaces the card
manager's test keys with the issuer's, ``register`` takes a card made elsewhere over at the
balance the card proves, ``unlock`` gives a found band's card back to its owner.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BEFORE = ("issue", "topup", "cancel", "lost")
AFTER = (*BEFORE, "rekey", "register", "unlock")


def _kinds(kinds: tuple[str, ...]) -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_constraint("order_kind", type_="check")
        batch.create_check_constraint("order_kind", f"kind IN ({', '.join(map(repr, kinds))})")


def upgrade() -> None:
    _kinds(AFTER)


def downgrade() -> None:
    op.execute("DELETE FROM relay_sessions WHERE order_id IN (SELECT id FROM orders "
               "WHERE kind IN ('rekey', 'register', 'unlock'))")
    op.execute("UPDATE ledger_transactions SET order_id = NULL WHERE order_id IN "
               "(SELECT id FROM orders WHERE kind IN ('rekey', 'register', 'unlock'))")
    op.execute("DELETE FROM orders WHERE kind IN ('rekey', 'register', 'unlock')")
    _kinds(BEFORE)
