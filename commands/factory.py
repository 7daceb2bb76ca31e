"""The factory's personalisation of a new band (until over-the-air issuance).

It needs both the band (``wallet``) and the issuer's products, bank and site (``issuer``),
which may not import each other, so it sits above both, here.
"""

from __future__ import annotations

from datetime import datetime

from applets.validity import Validity
from commands.home import Home
from issuer import ecash, site
from issuer.emv_pki import DemoPki
from issuer.products import Product
from wallet.band import Band

CARD_VALIDITY_YEARS = 10
ECASH_LIMIT = 100_000  # the EC balance limit (9F77), fen: PBOC caps e-cash at ¥1,000


def create_band(home: Home, name: str, products: list[Product], holder: str,
                today: datetime, ecash_balance: int | None = None, access: bool = False) -> Band:
    """A new band named ``name`` with the factory's cards on it, saved in ``home``."""
    new = Band.new(name)
    start, expiry = Validity.for_years(today.date(), CARD_VALIDITY_YEARS).bcd()
    for item in products:
        new.add_purse(item.personalisation(item.factory_serial(new.uid), start, expiry, holder),
                      item.aid)
    if ecash_balance is not None:
        profile = ecash.profile_for(ecash.pan_for(ecash.account_for(new.uid)), holder or "KOALA",
                                   today.date())
        limit = max(ecash_balance, ECASH_LIMIT)
        new.add_ecash(ecash.personalisation(profile, DemoPki.load(), balance=ecash_balance,
                                            balance_limit=limit))
    if access:
        new.add_access_card(site.resident_card(int.from_bytes(new.uid), today.date()))
    home.save_band(new)
    return new
