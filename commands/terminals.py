"""The demo network's terminals as the issuer equips them: a PSAM holding the product's
purchase key, a load machine holding every product's load keys.

They join the readers (``reader``) to the issuer's products (``issuer``) and the
world's saved sequence numbers (``commands.home``), packages that may not import each other in
that direction, so they sit above them, here.
"""

from __future__ import annotations

from commands.home import Home
from issuer.products import PRODUCTS, Product
from reader.load import LoadKeys
from reader.psam import Psam


def psam_for(home: Home, item: Product, terminal_id: bytes) -> Psam:
    """The PSAM of a terminal that takes ``item``'s cards, with its saved sequence number and
    the maintenance key that blocks a blacklisted card."""
    return Psam(terminal_id, {item.issuer_id: item.master.purchase}, home.terminal_seq(terminal_id),
                {item.issuer_id: item.master.maintenance})


def load_keys() -> dict[bytes, LoadKeys]:
    """A station's load machine's keys: every product's load and TAC keys, by issuer id."""
    return {p.issuer_id: LoadKeys(p.master.load, p.master.tac) for p in PRODUCTS.values()}
