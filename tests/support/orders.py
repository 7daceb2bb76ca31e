"""Top-up orders on a real database: a band enrolled with money in its funding account, the
issuer that tops it up, and the phone that relays (and drops, and tears)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine

from applets.errors import PowerLoss
from common.relay import run_batch
from issuer import ledger
from issuer.accounts import IN_FLIGHT, funding_account
from issuer.db import Band as BandRow
from issuer.db import Card, CardStatus, OrderState, session_factory
from issuer.keys import DemoKeys
from issuer.orders import Orders
from issuer.products import TRANSIT
from reader import places
from tests.conftest import EXPIRY, START, seeded
from wallet.band import Band

NOW = datetime(2026, 11, 23, 9, 0)
AT = NOW  # when the tests' ledger postings are booked
FUNDS = 100_000


def topups(engine: Engine) -> Orders:
    return Orders(session_factory(engine), DemoKeys(), places.load_id(9),
                  lambda: NOW)


_serials = iter(range(1, 1_000_000))


def enrol(engine: Engine) -> tuple[int, Band, bytes]:
    """A band with a transit card known to the issuer, and money in its funding account."""
    number = next(_serials)
    serial = TRANSIT.serial(number)
    band = Band.new(f"b{number}", seeded(number))
    band.add_purse(TRANSIT.personalisation(serial, START, EXPIRY), TRANSIT.aid)
    sessions = session_factory(engine)
    with sessions.begin() as session:
        row = BandRow(cplc=f"{number:032X}", uid=band.uid.hex(), device_token_hash="x", created_at=AT)
        session.add(row)
        session.flush()
        session.add(Card(band_id=row.id, product="transit", aid=TRANSIT.aid.hex().upper(),
                         app_serial=serial.hex().upper(), status=CardStatus.ACTIVE, created_at=AT))
        ledger.post(session, "funding", [("bank:settlement", -FUNDS), (funding_account(row.id), FUNDS)],
                    f"fund:{row.id}:{number}", at=AT)
        band_id = row.id
    return band_id, band, serial


class Dropped(Exception):
    """The phone lost the band."""


def relay(service: Orders, order_id: int, band: Band, stop_after: int | None = None,
          tear: int | None = None, tear_ins: int = 0x52) -> OrderState:
    """The phone: relay until done, or lose the band once it has run ``stop_after`` APDUs (the
    batch in hand is not posted), or cut its power at the ``tear``-th write of the command
    ``tear_ins`` (CREDIT FOR LOAD by default)."""
    band.power_on()
    ran = 0

    def transmit(command: bytes) -> bytes:
        nonlocal ran
        if ran == stop_after:
            raise Dropped
        store = band.se.store
        if tear is not None and command[1] == tear_ins:
            store.tear_after = store.writes + tear
        try:
            return band.transmit(command)
        finally:
            store.tear_after = None
            ran += 1

    step = service.open(order_id)
    try:
        while step.commands:
            step = service.answer(step.session_id, step.step, run_batch(transmit, step.commands))
    except (Dropped, PowerLoss):
        pass
    return step.state


def money(engine: Engine, band_id: int, serial: bytes) -> tuple[int, int, int]:
    with session_factory(engine)() as session:
        return (ledger.balance(session, funding_account(band_id)),
                ledger.balance(session, f"card:{serial.hex().upper()}"),
                ledger.balance(session, IN_FLIGHT))
