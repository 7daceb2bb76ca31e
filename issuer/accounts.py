"""The ledger's account names, in one place: every posting names its accounts through these."""

from __future__ import annotations

from issuer.db import Card

IN_FLIGHT = "issuer:in-flight"  # top-ups debited from funding, not yet proven on the card


def funding_account(band_id: int) -> str:
    return f"funding:band:{band_id}"


def card_account(card: Card) -> str:
    return f"card:{card.app_serial}"
