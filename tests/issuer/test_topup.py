"""Over-the-air top-up through a relay that may drop at any APDU, to a band that may tear.

Every run ends settled or failed after the next contacts, and money is
conserved: what left the funding account is on the card or was refunded.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from applets.apdu import ResponseAPDU
from applets.errors import PowerLoss
from issuer.keys import DemoKeys, LoadKeysOf
from issuer.products import TRANSIT
from issuer.topup import Debit, Effect, Fail, Hold, Settle, Step, Topup, command, receive
from reader import places
from tests.conftest import make_band, serial_for
from wallet.band import Band

NOW = datetime(2026, 11, 23, 9, 0)
AMOUNT = 3000


KEYS = LoadKeysOf(DemoKeys(), "transit")


def order() -> Topup:
    return Topup(TRANSIT.aid, serial_for(TRANSIT), AMOUNT, places.load_id(7))


def contact(state: Topup, band: Band, effects: list[Effect], drop: tuple[int, str] | None = None,
            tear: int | None = None) -> Topup:
    """One relay session: from the first APDU until done or the link drops."""
    band.power_on()
    state = state.resume()
    number = 0
    while (apdu := command(state)) is not None:
        number += 1
        if drop == (number, "before"):
            return state  # the relay lost the command
        store = band.se.store
        if tear is not None and apdu.ins == 0x52:
            store.tear_after = store.writes + tear
        try:
            raw = band.transmit(apdu.encode())
        except PowerLoss:
            return state  # the band tore: no answer
        finally:
            store.tear_after = None
        if drop == (number, "after"):
            return state  # the card acted, the answer was lost
        state, effect = receive(state, ResponseAPDU.parse(raw), KEYS, NOW)
        if effect is not None:
            effects.append(effect)
    return state


def settle_everything(state: Topup, band: Band, effects: list[Effect]) -> Topup:
    for _ in range(3):
        if state.step in (Step.SETTLED, Step.FAILED):
            return state
        state = contact(state, band, effects)
    return state


def check_money(band: Band, effects: list[Effect], state: Topup) -> None:
    debited = sum(e.amount for e in effects if isinstance(e, Debit))
    settled = sum(e.amount for e in effects if isinstance(e, Settle))
    refunded = sum(e.refund for e in effects if isinstance(e, Fail))
    assert debited == settled + refunded, effects
    assert band.card("transit").balance == settled
    assert state.step in (Step.SETTLED, Step.FAILED)
    assert len([e for e in effects if isinstance(e, Settle | Fail)]) == 1


def test_a_clean_top_up_debits_then_settles():
    band, effects = make_band(TRANSIT), list[Effect]()
    state = contact(order(), band, effects)
    assert state.step is Step.SETTLED
    assert [type(e) for e in effects] == [Debit, Settle]
    check_money(band, effects, state)


@pytest.mark.parametrize("number", [1, 2, 3])
@pytest.mark.parametrize("when", ["before", "after"])
def test_a_relay_dropped_at_any_apdu_ends_in_one_definite_state(number, when):
    band, effects = make_band(TRANSIT), list[Effect]()
    state = contact(order(), band, effects, drop=(number, when))
    state = settle_everything(state, band, effects)
    check_money(band, effects, state)
    assert state.step is Step.SETTLED, "a top-up interrupted by the relay completes later"


def test_a_band_torn_at_every_write_of_the_credit():
    probe = make_band(TRANSIT)
    probe.power_on()
    before = probe.se.store.writes
    contact(order(), probe, [])
    writes = probe.se.store.writes - before
    outcomes = set()
    for k in range(writes):
        band, effects = make_band(TRANSIT), list[Effect]()
        state = contact(order(), band, effects, tear=k)
        band.power_on()
        outcomes.add(band.card("transit").balance)
        state = settle_everything(state, band, effects)
        check_money(band, effects, state)
    assert outcomes == {0, AMOUNT}, "tears before and after the commit both happened"


def test_a_later_load_holds_our_credit_rather_than_settle_it_on_the_counter():
    """Our answer is lost, then the card is loaded again: its last load is no longer ours, and
    a counter beyond ours would say the same had the later load taken our counter slot (a
    station's INITIALIZE kills our MAC2). The money stays held, nothing settles on it."""
    band, effects = make_band(TRANSIT), list[Effect]()
    first = contact(order(), band, effects, drop=(3, "after"))
    assert first.step is Step.CREDIT and band.card("transit").balance == AMOUNT
    second_effects: list[Effect] = []
    second = contact(order(), band, second_effects)  # another load of the same card
    assert second.step is Step.SETTLED
    first = settle_everything(first, band, effects)
    assert first.step is Step.AWAIT and isinstance(effects[-1], Hold)
    assert not any(isinstance(effect, Settle | Fail) for effect in effects)
    assert band.card("transit").balance == 2 * AMOUNT


def test_the_wrong_card_fails_before_any_money_moves():
    band, effects = make_band(TRANSIT), list[Effect]()
    wrong = Topup(TRANSIT.aid, serial_for(TRANSIT, 99), AMOUNT, places.load_id(7))
    state = contact(wrong, band, effects)
    assert state.step is Step.FAILED and effects == [Fail("this band holds another card than the "
                                                          "one ordered", 0)]


def test_a_top_up_over_the_cards_maximum_names_the_maximum_and_moves_nothing():
    band = make_band(TRANSIT)
    state, effects = Topup(TRANSIT.aid, serial_for(TRANSIT), TRANSIT.max_balance + 1,
                           places.load_id(7)), list[Effect]()
    band.power_on()
    while (apdu := command(state)) is not None:
        state, effect = receive(state, ResponseAPDU.parse(band.transmit(apdu.encode())), KEYS,
                                NOW, TRANSIT.max_balance)
        effects += [effect] if effect is not None else []
    assert state.step is Step.FAILED and band.card("transit").balance == 0
    (failed,) = effects
    assert isinstance(failed, Fail) and failed.refund == 0
    assert "top-up of ¥1,000.01 would take the card over its maximum balance of ¥1,000.00" \
        in failed.reason
