"""The bank card's e-cash over the air: a band with a bank card of its own, enrolled with money
in its funding account, and what its books and its card hold."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine

from applets.emv.records import ECASH_AID, pan_for_certificate
from issuer import ecash, ledger
from issuer.accounts import funding_account
from issuer.db import Band as BandRow
from issuer.db import Card, CardStatus, session_factory
from issuer.emv_pki import DemoPki
from reader.clock import instant
from tests.conftest import NOW as AT
from tests.conftest import seeded
from tests.support.orders import FUNDS
from wallet.band import Band

BALANCE = 2_000
_numbers = iter(range(1, 1_000_000))


def enrol(engine: Engine) -> tuple[int, Band, bytes]:
    """A band with a bank card of its own, known to the issuer, with money in its funding
    account."""
    number = next(_numbers)
    band, serial = bank_band(number)
    with session_factory(engine).begin() as session:
        row = BandRow(cplc=f"EC{number:030X}", uid=band.uid.hex(), device_token_hash="x", created_at=AT)
        session.add(row)
        session.flush()
        session.add(Card(band_id=row.id, product=ecash.PRODUCT, aid=ECASH_AID.hex().upper(),
                         app_serial=serial.hex().upper(), status=CardStatus.ACTIVE,
                         created_at=instant(AT)))
        ledger.post(session, "funding", [("bank:settlement", -FUNDS),
                                         (funding_account(row.id), FUNDS)], f"ecfund:{row.id}", at=AT)
        return row.id, band, serial


def bank_band(number: int) -> tuple[Band, bytes]:
    """A band with a bank card holding BALANCE, and the card's serial (its PAN padded with F)."""
    profile = ecash.profile_for(ecash.pan_for(500_000 + number), "OTA", date(2026, 1, 1))
    data = ecash.personalisation(profile, DemoPki.load(), balance=BALANCE, balance_limit=50_000)
    band = Band.new(f"ec{number}", seeded(number))
    band.add_ecash(data)
    return band, pan_for_certificate(data.profile.pan)


def books(engine: Engine, band_id: int, serial: bytes) -> tuple[int, int]:
    with session_factory(engine)() as session:
        return (ledger.balance(session, funding_account(band_id)),
                ledger.balance(session, f"card:{serial.hex().upper()}"))


def ec_balance(band: Band) -> int:
    return band.balances()["ecash"]
