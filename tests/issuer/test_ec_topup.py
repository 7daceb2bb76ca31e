"""Over-the-air top-ups of the bank card's e-cash balance: exactly once through drops, restarts,
tears, offline spending in between and a lying phone."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from applets import tlv
from applets.emv.records import ISSUER_DATA, amount
from common.relay import run_batch
from issuer import ecash
from issuer.clearing import clear_ecash
from issuer.db import OrderState, session_factory
from issuer.keys import DemoKeys
from issuer.procedure import OrderError
from reader.flow import run
from reader.pos import Pos
from reader.transport import in_field
from tests.conftest import NOW as AT
from tests.conftest import Clock, seeded
from tests.support.ecash import BALANCE, books, ec_balance, enrol
from tests.support.orders import FUNDS, relay, topups


def test_an_ec_top_up_over_the_air_settles_and_everyone_agrees(engine):
    band_id, band, serial = enrol(engine)
    order = topups(engine).topup(band_id, serial, 3000, f"ec-{band_id}")
    assert relay(topups(engine), order, band) is OrderState.SETTLED
    assert ec_balance(band) == BALANCE + 3000
    assert books(engine, band_id, serial) == (FUNDS - 3000, 3000)


@pytest.mark.parametrize("stop_after", range(5))
def test_a_relay_dropped_anywhere_is_finished_once_by_a_restarted_issuer(engine, stop_after):
    band_id, band, serial = enrol(engine)
    order = topups(engine).topup(band_id, serial, 700, f"ecdrop-{band_id}")
    relay(topups(engine), order, band, stop_after=stop_after)
    assert relay(topups(engine), order, band) is OrderState.SETTLED
    assert ec_balance(band) == BALANCE + 700
    assert books(engine, band_id, serial) == (FUNDS - 700, 700)


def test_a_torn_script_is_applied_exactly_once_even_after_offline_spending(engine):
    outcomes = set()
    for k in range(8):
        band_id, band, serial = enrol(engine)
        order = topups(engine).topup(band_id, serial, 900, f"ectear-{band_id}-{k}")
        relay(topups(engine), order, band, tear=k, tear_ins=0xDA)
        band.power_on()
        outcomes.add(ec_balance(band))
        with in_field(band) as link:  # lunch, offline, before the phone comes back
            run(Pos("Noodle Bar", Clock(), seeded(k)).purchase(150), link)
        assert relay(topups(engine), order, band) is OrderState.SETTLED
        assert ec_balance(band) == BALANCE - 150 + 900
        assert books(engine, band_id, serial) == (FUNDS - 900, 900)
    assert outcomes == {BALANCE, BALANCE + 900}, "both sides of the tear were seen"


def test_a_phone_that_inflates_the_reported_balance_gets_nothing(engine):
    band_id, band, serial = enrol(engine)
    service = topups(engine)
    order = service.topup(band_id, serial, 500, f"eclie-{band_id}")
    band.power_on()
    step = service.open(order)
    answers = run_batch(band.transmit, step.commands)
    gpo = answers[1]
    iad = tlv.find(gpo[:-2], 0x9F10) or b""
    lying = iad.replace(ISSUER_DATA.parse(iad).ec_balance, amount(40_000))
    with pytest.raises(OrderError, match="ARQC is wrong"):
        service.answer(step.session_id, step.step, [answers[0], gpo.replace(iad, lying)])
    assert books(engine, band_id, serial) == (FUNDS, 0) and ec_balance(band) == BALANCE


def test_above_the_ec_balance_limit_the_money_goes_back(engine):
    band_id, band, serial = enrol(engine)
    order = topups(engine).topup(band_id, serial, 49_000, f"eclimit-{band_id}")
    assert relay(topups(engine), order, band) is OrderState.REFUNDED
    assert ec_balance(band) == BALANCE and books(engine, band_id, serial) == (FUNDS, 0)


def test_the_bank_card_takes_no_cancellation_and_stays_when_the_band_is_lost(engine):
    band_id, band, serial = enrol(engine)
    with pytest.raises(OrderError, match="only top-ups"):
        topups(engine).cancel(band_id, serial, f"eccancel-{band_id}")
    new_band, _, _ = enrol(engine)
    assert topups(engine).report_lost(band_id, new_band, f"eclost-{band_id}") == []
    with in_field(band) as link:  # like cash, the bank's card stays and still pays ...
        assert run(Pos("Tea", Clock(), seeded(4)).purchase(100), link).offline
    with pytest.raises(OrderError, match="lost"):  # ... but a lost band orders nothing more
        topups(engine).topup(band_id, serial, 100, f"ecafter-{band_id}")


def test_clearing_books_an_offline_purchase_once_and_refuses_the_rest(engine):
    band_id, band, serial = enrol(engine)
    with in_field(band) as link:
        offline = run(Pos("Tea", Clock(), seeded(5)).purchase(250), link).purchase
    with in_field(band) as link:
        online = run(Pos("Tea", Clock(), seeded(6), acquirer=ecash.authorise).purchase(9_000),
                     link).purchase
    forged = replace(offline, amount=25, data={**offline.data, 0x9F02: amount(25)},
                     cryptogram=bytes(8))
    incomplete = replace(offline, atc=offline.atc + 7, data={0x9F02: amount(250)})
    with session_factory(engine).begin() as session:
        first = clear_ecash(session, DemoKeys(), [offline, online, forged, incomplete], AT)
    with session_factory(engine).begin() as session:
        again = clear_ecash(session, DemoKeys(), [offline], AT)
    assert (first.booked, again.booked, again.duplicates) == (1, 0, 1)
    assert [reason.split(": ", 1)[1][:20] for reason in first.refused] == [
        "not an offline appro", "the TC is wrong", "the data the TC cove"]
    assert books(engine, band_id, serial)[1] == -250, "the card's account: spent, no load yet"


def test_a_purchase_from_before_the_card_was_registered_is_in_its_opening_balance(engine):
    band_id, band, serial = enrol(engine)  # registered at AT
    with in_field(band) as link:
        earlier = run(Pos("Tea", Clock(AT - timedelta(hours=1)), seeded(8)).purchase(300),
                      link).purchase
    with session_factory(engine).begin() as session:
        cleared = clear_ecash(session, DemoKeys(), [earlier], AT)
    assert (cleared.booked, cleared.opening, cleared.refused) == (0, 1, [])
    assert books(engine, band_id, serial)[1] == 0
