"""The demo network's terminals as the issuer equips them: a PSAM holding the product's
purchase key, and a POS purchase in the form the issuer's clearing takes.

They join the readers (``reader``) to the issuer's products and clearing (``issuer``) and the
world's saved sequence numbers (``commands.home``), packages that may not import each other in
that direction, so they sit above them, here.
"""

from __future__ import annotations

from typing import Any

from commands.home import Home
from issuer.products import PRODUCTS, Product
from reader.load import LoadKeys
from reader.pos import Purchase
from reader.psam import Psam


def psam_for(home: Home, item: Product, terminal_id: bytes) -> Psam:
    """The PSAM of a terminal that takes ``item``'s cards, with its saved sequence number."""
    return Psam(terminal_id, {item.issuer_id: item.master.purchase}, home.terminal_seq(terminal_id))


def load_keys() -> dict[bytes, LoadKeys]:
    """A station's load machine's keys: every product's load and TAC keys, by issuer id."""
    return {p.issuer_id: LoadKeys(p.master.load, p.master.tac) for p in PRODUCTS.values()}


def clearing_record(purchase: Purchase) -> dict[str, Any]:
    """A POS purchase as ``POST /v1/clearing/ecash`` takes it."""
    return {"pan": purchase.pan, "psn": purchase.psn, "amount": purchase.amount,
            "atc": purchase.atc, "cryptogram": purchase.cryptogram.hex().upper(),
            "cid": purchase.cid, "iad": purchase.iad.hex().upper(),
            "data": {f"{tag:X}": value.hex().upper() for tag, value in purchase.data.items()},
            "merchant": purchase.merchant}
