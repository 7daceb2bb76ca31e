"""Money as people read it: yuan with the sign before the symbol (¥12.50, -¥2.00).

Amounts are integer fen everywhere else (cards, ledger, JSON); this is the one place they
become text, so a message, a table and an error all say the same thing the same way.
"""

from __future__ import annotations


def yuan(fen: int) -> str:
    """``fen`` as yuan: ``yuan(1250) == "¥12.50"``, ``yuan(-200) == "-¥2.00"``, thousands
    grouped (``¥42,949,672.95``)."""
    whole, cents = divmod(abs(fen), 100)
    return f"{'-' if fen < 0 else ''}¥{whole:,}.{cents:02d}"
