"""Issuance, cancellation and lost-band orders on a real database: a funded band, the issuer
process (a new one per call is a restart), and the phone relaying its orders."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine

from applets.errors import PowerLoss
from common.relay import run_batch
from issuer import ledger
from issuer.accounts import funding_account
from issuer.db import Band as BandRow
from issuer.db import Card, Order, OrderState, session_factory
from issuer.keys import DemoKeys
from issuer.orders import Orders
from issuer.products import TRANSIT, Product
from reader import places
from tests.conftest import seeded
from wallet.band import Band

NOW = datetime(2026, 11, 23, 9, 0)
AT = NOW  # when the tests' ledger postings are booked
FUNDS = 100_000
_numbers = iter(range(1, 1_000_000))


def orders(engine: Engine) -> Orders:
    """An issuer process; a new one per call is an issuer restarted between two requests."""
    return Orders(session_factory(engine), DemoKeys(), places.load_id(9), lambda: NOW)


def new_band(engine: Engine) -> tuple[int, Band]:
    number = next(_numbers)
    band = Band.new(f"o{number}", seeded(number))
    with session_factory(engine).begin() as session:
        row = BandRow(cplc=f"C{number:031X}", uid=band.uid.hex(), device_token_hash="x", created_at=AT)
        session.add(row)
        session.flush()
        ledger.post(session, "funding", [("bank:settlement", -FUNDS), (funding_account(row.id), FUNDS)],
                    f"fund:{row.id}", at=AT)
        return row.id, band


class Relay:
    """The phone: relays an order until it is over, or breaks after ``answers`` answers, or cuts
    the band's power after its ``tear``-th persistent write in this session."""

    def __init__(self, engine: Engine, band: Band) -> None:
        self.engine, self.band = engine, band

    def __call__(self, order_id: int, answers: int | None = None, tear: int | None = None,
                 restart_each_step: bool = False) -> OrderState:
        self.band.power_on()
        service = orders(self.engine)
        step = service.open(order_id)
        store = self.band.se.store
        store.tear_after = None if tear is None else store.writes + tear
        try:
            while step.commands:
                if answers is not None and step.step == answers:
                    return step.state
                try:
                    responses = run_batch(self.band.transmit, step.commands)
                except PowerLoss:
                    return step.state
                if restart_each_step:
                    service = orders(self.engine)
                step = service.answer(step.session_id, step.step, responses)
            return step.state
        finally:
            store.tear_after = None


def card_row(engine: Engine, order_id: int) -> Card:
    with session_factory(engine)() as session:
        order = session.get_one(Order, order_id)
        return session.get_one(Card, order.card_id)


def books(engine: Engine, band_id: int, serial: str) -> tuple[int, int]:
    with session_factory(engine)() as session:
        return (ledger.balance(session, funding_account(band_id)),
                ledger.balance(session, f"card:{serial}"))


def issue(engine: Engine, band_id: int, band: Band, item: Product = TRANSIT, number: int = 1) -> str:
    order = orders(engine).issue(band_id, item.name, serial(item, band_id, number),
                                 f"issue-{band_id}-{item.name}-{number}")
    assert Relay(engine, band)(order) is OrderState.SETTLED
    return card_row(engine, order).app_serial


def serial(item: Product, band_id: int, number: int = 0) -> bytes:
    return item.serial(band_id * 1000 + number)


def topup(engine: Engine, band_id: int, band: Band, serial: str, amount: int) -> None:
    order = orders(engine).topup(band_id, bytes.fromhex(serial), amount, f"top-{serial}-{amount}")
    assert Relay(engine, band)(order) is OrderState.SETTLED
