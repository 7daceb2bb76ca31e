"""A lying phone: at every relay step of every order, drop, forge, alter, replay or withhold,
then one honest contact; money is conserved and the books agree with the card.

The phone is not trusted (``../shared/DESIGN.md``): the issuer may settle, refund or move
money only on what the card's keys vouch for. Each case runs an order through a phone
that is honest except at one command of one batch of the honest run (every position is
tested), where it tells one lie whose content hypothesis chooses; then the phone relays
honestly once more. After that the order is over, nothing is held in flight, and what
left the funding account is exactly what the card holds, or it came back.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from applets.gp.cplc import cplc
from applets.gp.domain import ISD_AID
from applets.sw import SW
from issuer.db import Band as BandRow
from issuer.db import Card, CardStatus, Order, OrderState, session_factory
from issuer.gp import Diversifier
from issuer.issuance import factory_keys, open_domain
from issuer.keys import DemoKeys
from issuer.keystore import CARD_MANAGER, TEST_KEY_SET
from issuer.orders import Orders
from issuer.procedure import OrderError
from issuer.products import TRANSIT
from reader.flow import run
from reader.transport import in_field
from tests.support import cards
from tests.support.ecash import BALANCE, bank_band, books, ec_balance
from tests.support.ecash import enrol as enrol_ecash
from tests.support.factory import ON_CARD, factory_purse
from tests.support.orders import FUNDS, enrol, money, relay, topups
from wallet.band import Band

OK = SW.OK.to_bytes(2)
LIES = ("lost", "unsent", "status", "altered", "replayed", "withheld")
EXAMPLES = max(1, int(os.environ.get("KOALA_FUZZ_EXAMPLES", "150")) // 150)


@dataclass(frozen=True)
class Lie:
    """What the phone does to one command: ``lost`` (the band ran it, the answer never came
    back), ``unsent`` (never sent, nothing posted), ``status`` (ran it, reported a status word
    of its own), ``altered`` (ran it, one byte changed), ``replayed`` (ran it, reported an
    earlier answer), ``withheld`` (never sent, reported a status word of its own)."""

    kind: str
    sw: bytes
    position: int
    mask: int


#: Status words a lying phone likes best: success, and the refusals a genuine card gives.
TELLING = [OK, *(sw.to_bytes(2) for sw in (0x6985, 0x6A82, 0x6A88, 0x6A80, 0x6982, 0x9406,
                                           0x6D00, 0x6F00, 0x6300))]


def lies(kind: str) -> st.SearchStrategy[Lie]:
    status = st.one_of(st.sampled_from(TELLING), st.binary(min_size=2, max_size=2))
    return st.builds(Lie, st.just(kind), status, st.integers(0, 255), st.integers(1, 255))


class LyingPhone:
    """Relays one contact honestly but at command ``index`` of batch ``batch``."""

    def __init__(self, band: Band, batch: int, index: int, lie: Lie) -> None:
        self.band, self.batch, self.index, self.lie = band, batch, index, lie
        self.heard: list[bytes] = []
        self.lied = False  # the honest run reached the position of the lie

    def contact(self, service: Orders, order_id: int) -> None:
        self.band.power_on()
        try:
            step = service.open(order_id)
            number = 0
            while step.commands:
                answers, over = self._run(step.commands, number)
                if not answers:
                    return
                step = service.answer(step.session_id, step.step, answers)
                if over:
                    return
                number += 1
        except OrderError:
            return  # the issuer refused what the phone said: the contact ends

    def _run(self, commands: tuple[bytes, ...], number: int) -> tuple[list[bytes], bool]:
        answers: list[bytes] = []
        for index, command in enumerate(commands):
            if (number, index) == (self.batch, self.index):
                answer = self._tell(command)
                if answer is None:
                    return answers, True
            else:
                answer = self.band.transmit(command)
            answers.append(answer)
            self.heard.append(answer)
            if answer[-2:] != OK:
                break
        return answers, False

    def _tell(self, command: bytes) -> bytes | None:
        lie, self.lied = self.lie, True
        if lie.kind in ("unsent", "withheld"):
            return lie.sw if lie.kind == "withheld" else None
        answer = self.band.transmit(command)
        if lie.kind == "lost":
            return None
        if lie.kind == "status":
            return lie.sw
        if lie.kind == "altered":
            at = lie.position % len(answer)
            return answer[:at] + bytes((answer[at] ^ lie.mask,)) + answer[at + 1:]
        return self.heard[lie.position % len(self.heard)] if self.heard else OK


@dataclass(frozen=True)
class Case:
    """An order ready to relay, and how to check money and card afterwards: ``check(False)``
    while the order may hold money in flight, ``check(True)`` once it is over."""

    order_id: int
    band: Band
    check: Callable[[bool], None]


def conserved(funding: int, booked: int, on_card: int, held: int, over: bool) -> None:
    """Every fen is in the funding account, on the card's books or held; the card holds what
    its books say, or (while held) at most the held money more."""
    assert funding + booked + held == FUNDS
    assert booked <= on_card <= booked + held
    assert not over or held == 0


def purse_topup(engine: Engine) -> Case:
    band_id, band, serial = enrol(engine)
    order = topups(engine).topup(band_id, serial, 700, f"lie-{band_id}")

    def check(over: bool) -> None:
        funding, card, in_flight = money(engine, band_id, serial)
        conserved(funding, card, band.card("transit").balance, in_flight, over)

    return Case(order, band, check)


def ecash_topup(engine: Engine) -> Case:
    band_id, band, serial = enrol_ecash(engine)
    order = topups(engine).topup(band_id, serial, 500, f"lie-ec-{band_id}")

    def check(over: bool) -> None:
        funding, card = books(engine, band_id, serial)
        conserved(funding, card, ec_balance(band) - BALANCE, FUNDS - funding - card, over)

    return Case(order, band, check)


ISSUANCE_BATCHES = 19
TAKEOVER_BATCHES = 7


def transit_card(engine: Engine, factory: bool) -> tuple[int, Band, str]:
    """A band with a transit card holding ON_CARD, known to the issuer: issued over the air
    and topped up, or made at the factory and registered at the balance it proved."""
    if not factory:
        band_id, band = cards.new_band(engine)
        serial = cards.issue(engine, band_id, band)
        cards.topup(engine, band_id, band, serial, ON_CARD)
        return band_id, band, serial
    band_id, band, number = factory_purse(engine)
    order, _ = cards.orders(engine).register(band_id, "transit", number)
    assert order is not None and relay(topups(engine), order, band) is OrderState.SETTLED
    return band_id, band, number.hex().upper()


def state_of(engine: Engine, order_id: int) -> OrderState:
    with session_factory(engine)() as session:
        return session.get_one(Order, order_id).state


def purse_on(band: Band) -> int | None:
    """The life cycle of the band's transit purse; None when it is gone."""
    return next((e.lifecycle for e in band.se.entries() if e.aid == TRANSIT.aid), None)


def cancel(factory: bool) -> Callable[[Engine], Case]:
    def make(engine: Engine) -> Case:
        band_id, band, serial = transit_card(engine, factory)
        order = cards.orders(engine).cancel(band_id, bytes.fromhex(serial), f"lie-cancel-{band_id}")
        total = FUNDS + (ON_CARD if factory else 0)

        def check(over: bool) -> None:
            funding, booked = cards.books(engine, band_id, serial)
            assert funding + booked == total
            settled = state_of(engine, order) is OrderState.SETTLED
            if purse_on(band) is not None:  # still there: it holds what the books say
                assert not settled and booked == band.card("transit").balance
            else:
                assert booked == (0 if settled else ON_CARD)
            assert not over or state_of(engine, order) in (OrderState.SETTLED, OrderState.FAILED)

        return Case(order, band, check)

    return make


def lost(factory: bool) -> Callable[[Engine], Case]:
    def make(engine: Engine) -> Case:
        band_id, band, serial = transit_card(engine, factory)
        new_id, _ = cards.new_band(engine)
        (order,) = cards.orders(engine).report_lost(band_id, new_id, f"lie-lost-{band_id}")

        def check(over: bool) -> None:
            moved = cards.books(engine, new_id, "none")[0] - FUNDS
            booked = cards.books(engine, band_id, serial)[1]
            settled = state_of(engine, order) is OrderState.SETTLED
            assert moved + booked == ON_CARD
            assert (moved, booked) == ((ON_CARD, 0) if settled else (0, ON_CARD))
            lifecycle = purse_on(band)
            assert not settled or lifecycle is None or lifecycle & 0x80, "moved, yet not locked"
            assert not over or settled

        return Case(order, band, check)

    return make


def issuance(engine: Engine) -> Case:
    band_id, band = cards.new_band(engine)
    serial = cards.serial(TRANSIT, band_id, 7)
    order = cards.orders(engine).issue(band_id, "transit", serial, f"lie-issue-{band_id}")

    def check(over: bool) -> None:
        state = state_of(engine, order)
        assert state is not OrderState.FAILED, "an issuance is finished, never abandoned"
        if state is OrderState.SETTLED:  # the band holds the very card the books hold
            assert band.card("transit").issuer_file.app_serial == serial
        assert not over or state is OrderState.SETTLED

    return Case(order, band, check)


def registration(engine: Engine) -> Case:
    """A factory card comes under the issuer at the balance it proves (MAC1), never at one
    the phone tells."""
    band_id, band, number = factory_purse(engine)
    order, _ = cards.orders(engine).register(band_id, "transit", number)
    assert order is not None
    return Case(order, band, opened(engine, band, order, "transit", number, ON_CARD))


def bank_registration(engine: Engine) -> Case:
    """The bank's card comes under the issuer at the e-cash balance its ARQC proves."""
    band_id, _ = cards.new_band(engine)
    band, serial = bank_band(200_000 + band_id)
    order, _ = cards.orders(engine).register(band_id, "ecash", serial)
    assert order is not None
    return Case(order, band, opened(engine, band, order, "ecash", serial, BALANCE))


def opened(engine: Engine, band: Band, order: int, card: str, serial: bytes,
           proven: int) -> Callable[[bool], None]:
    def check(over: bool) -> None:
        state = state_of(engine, order)
        assert state is not OrderState.FAILED, "a card registered is taken over, never dropped"
        assert band.balances()[card] == proven, "a registration loads and spends nothing"
        booked = cards.books(engine, 0, serial.hex().upper())[1]
        assert booked == (proven if state is OrderState.SETTLED else 0)
        assert not over or state is OrderState.SETTLED

    return check


def takeover(engine: Engine) -> Case:
    """The band's card manager gets the issuer's keys; the books say so once the card proves
    it, and then only those keys open it."""
    band_id, band = cards.new_band(engine)
    with session_factory(engine).begin() as session:
        session.get_one(BandRow, band_id).cplc = cplc(band.uid).hex().upper()
    order = cards.orders(engine).take_over(band_id)
    assert order is not None

    def check(over: bool) -> None:
        state = state_of(engine, order)
        with session_factory(engine)() as session:
            key_set = session.get_one(BandRow, band_id).isd_key_set
        assert state is not OrderState.FAILED
        if state is OrderState.SETTLED:
            assert key_set == CARD_MANAGER
            assert opens(band, DemoKeys().domain_keys(CARD_MANAGER), band.uid)
            assert not opens(band, factory_keys, band.uid), "the test keys still open it"
        else:
            assert key_set == TEST_KEY_SET
        assert not over or state is OrderState.SETTLED

    return Case(order, band, check)


def opens(band: Band, keys: Diversifier, uid: bytes) -> bool:
    """Whether ``keys`` (diversified for the band) open its card manager."""
    band.power_on()
    with in_field(band) as link:
        channel = run(open_domain(ISD_AID, lambda _: keys(bytes(3) + uid), os.urandom), link)
    return channel is not None


def unlock(factory: bool) -> Callable[[Engine], Case]:
    """A found band's card is unlocked: issued over the air with nothing on it, locked at the
    band's contact after it was lost (nothing to move); or made at the factory with money on
    it, locked at a contact whose last answer never came back (its lock never proven, its
    money never moved)."""

    def make(engine: Engine) -> Case:
        if factory:
            band_id, band, serial = transit_card(engine, factory=True)
        else:
            band_id, band = cards.new_band(engine)
            serial = cards.issue(engine, band_id, band)
        new_id, _ = cards.new_band(engine)
        (lost,) = cards.orders(engine).report_lost(band_id, new_id, f"lie-found-{band_id}")
        if factory:  # SET STATUS, the 6th command of the lock, runs; its answer is lost
            LyingPhone(band, 5, 0, Lie("lost", OK, 0, 1)).contact(topups(engine), lost)
            assert state_of(engine, lost) is OrderState.IN_RELAY
        else:
            assert relay(topups(engine), lost, band) is OrderState.SETTLED
        assert (purse_on(band) or 0) & 0x80, "locked on the band"
        (order,) = cards.orders(engine).found(band_id, f"lie-found-{band_id}", "found")
        before = cards.books(engine, band_id, serial)

        def check(over: bool) -> None:
            state = state_of(engine, order)
            assert cards.books(engine, band_id, serial) == before, "an unlock moves no money"
            with session_factory(engine)() as session:
                status = session.get_one(Card, session.get_one(Order, order).card_id).status
            assert state is not OrderState.FAILED
            if state is OrderState.SETTLED:
                assert status is CardStatus.ACTIVE and not (purse_on(band) or 0) & 0x80
            else:
                assert status is CardStatus.LOCKED
            assert not over or state is OrderState.SETTLED

        return Case(order, band, check)

    return make


#: Each order kind, and the (batch, command) positions of its honest run.
CASES: dict[str, tuple[Callable[[Engine], Case], list[tuple[int, int]]]] = {
    "purse top-up": (purse_topup, [(0, 0), (0, 1), (1, 0)]),
    "e-cash top-up": (ecash_topup, [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]),
    "cancel": (cancel(factory=False), [(n, 0) for n in range(6)]),
    "cancel of a factory card": (cancel(factory=True), [(n, 0) for n in range(8)]),
    "lost": (lost(factory=False), [(n, 0) for n in range(4)]),
    "lost, a factory card": (lost(factory=True), [(n, 0) for n in range(6)]),
    "issuance": (issuance, [(n, 0) for n in range(ISSUANCE_BATCHES)]),
    "registration of a factory card": (registration, [(0, 0), (1, 0)]),
    "registration of the bank's card": (bank_registration, [(0, 0), (1, 0)]),
    "card manager take-over": (takeover, [(n, 0) for n in range(TAKEOVER_BATCHES)]),
    "unlock": (unlock(factory=False), [(n, 0) for n in range(4)]),
    "unlock of a factory card": (unlock(factory=True), [(n, 0) for n in range(6)]),
}


@pytest.mark.parametrize(("kind", "batch", "index"), [
    (kind, batch, index) for kind, (_, positions) in CASES.items() for batch, index in positions])
@pytest.mark.parametrize("lie_kind", LIES)
def test_a_lie_at_any_step_then_one_honest_contact_conserves_money(engine, kind, batch, index,
                                                                   lie_kind):
    make = CASES[kind][0]

    @settings(max_examples=EXAMPLES)
    @given(lie=lies(lie_kind))
    def lying_then_honest(lie: Lie) -> None:
        case = make(engine)
        phone = LyingPhone(case.band, batch, index, lie)
        phone.contact(topups(engine), case.order_id)
        assert phone.lied, "no such position in the honest run"
        case.check(False)  # whatever the lie did, no money was created or lost by it
        final = relay(topups(engine), case.order_id, case.band)
        assert final in (OrderState.SETTLED, OrderState.REFUNDED, OrderState.FAILED)
        case.check(True)

    lying_then_honest()
