"""The ledger's account names, in one place: every posting names its accounts through these."""

from __future__ import annotations

from issuer.db import Card
from issuer.records import CardRow

IN_FLIGHT = "issuer:in-flight"  # top-ups debited from funding, not yet proven on the card
SETTLEMENT = "bank:settlement"  # the bank's side of money paid in: funding, opening balances
CASH_LOADS = "bank:cash-loads"  # what station load machines took in cash, owed to the issuer


def funding_account(band_id: int) -> str:
    return f"funding:band:{band_id}"


def card_account(card: Card | CardRow) -> str:
    return f"card:{card.app_serial}"


def merchant_account(product: str) -> str:
    """What a product's merchants (the metro, the buses, the canteen, the shops) are owed."""
    return f"merchant:{product}"
