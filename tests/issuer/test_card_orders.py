"""Issuance, cancellation and lost-band orders on a real database, through an untrusted relay.

Each test relays orders as the phone does and breaks the relay, the issuer
process and the band's power at every step it can; after the next contact
every order is in a definite state and ledger, issuer and card agree.
"""

from __future__ import annotations

from dataclasses import replace
from itertools import count

import pytest

from applets.sw import SW
from common.relay import run_batch
from issuer.clearing import clear
from issuer.db import CardStatus, Order, OrderKind, OrderState, session_factory
from issuer.keys import DemoKeys
from issuer.procedure import OrderError
from issuer.products import CANTEEN, TRANSIT
from reader import pboc, places
from reader.bus import bus_validator
from reader.flow import run
from reader.psam import Psam
from reader.record import PurchaseRecord
from reader.transport import in_field
from tests.support.cards import AT, FUNDS, NOW, Relay, books, card_row, issue, new_band, orders, serial, topup


def test_issued_cards_work_and_live_in_their_issuers_domains(engine):
    band_id, band = new_band(engine)
    transit = issue(engine, band_id, band, TRANSIT)
    canteen = issue(engine, band_id, band, CANTEEN)
    topup(engine, band_id, band, transit, 5000)
    topup(engine, band_id, band, canteen, 2000)
    assert (band.card("transit").balance, band.card("canteen").balance) == (5000, 2000)
    assert band.card("transit").issuer_file.app_serial.hex().upper() == transit
    domains = {entry.aid: entry.domain for entry in band.se.entries()}
    assert domains[TRANSIT.aid] == TRANSIT.domain_aid and domains[CANTEEN.aid] == CANTEEN.domain_aid
    assert books(engine, band_id, transit) == (FUNDS - 7000, 5000)
    with pytest.raises(OrderError, match="already holds"):
        orders(engine).issue(band_id, "transit", serial(TRANSIT, band_id, 9), f"again-{band_id}")


@pytest.mark.parametrize("restart", [False, True], ids=["same-process", "restart-each-step"])
def test_issuance_broken_after_any_answer_completes_at_the_next_contact(engine, restart):
    probe_id, probe = new_band(engine)
    first = orders(engine).issue(probe_id, "transit", serial(TRANSIT, probe_id), f"probe-{probe_id}")
    probe.power_on()
    step = orders(engine).open(first)
    apdus = 0
    while step.commands:
        step = orders(engine).answer(step.session_id, step.step,
                                     run_batch(probe.transmit, step.commands))
        apdus += 1
    for cut in range(apdus):
        band_id, band = new_band(engine)
        order = orders(engine).issue(band_id, "transit", serial(TRANSIT, band_id),
                                     f"cut-{band_id}")
        relay = Relay(engine, band)
        assert relay(order, answers=cut, restart_each_step=restart) is not OrderState.SETTLED
        assert relay(order, restart_each_step=restart) is OrderState.SETTLED, f"cut after {cut}"
        topup(engine, band_id, band, card_row(engine, order).app_serial, 100)
        assert band.card("transit").balance == 100


def test_issuance_torn_at_every_write_completes_at_the_next_contact(engine):
    tear = 1
    while True:
        band_id, band = new_band(engine)
        order = orders(engine).issue(band_id, "canteen", serial(CANTEEN, band_id),
                                     f"tear-{band_id}")
        relay = Relay(engine, band)
        if relay(order, tear=tear) is OrderState.SETTLED:
            break
        assert relay(order) is OrderState.SETTLED, f"torn at write {tear}"
        topup(engine, band_id, band, card_row(engine, order).app_serial, 100)
        tear += 1
    assert tear > 10, "the script writes more than that"


def test_a_cancelled_card_is_deleted_and_refunded_what_it_proves(engine):
    band_id, band = new_band(engine)
    serial = issue(engine, band_id, band)
    topup(engine, band_id, band, serial, 4200)
    order = orders(engine).cancel(band_id, bytes.fromhex(serial), f"cancel-{band_id}")
    with pytest.raises(OrderError, match="unresolved"):
        orders(engine).topup(band_id, bytes.fromhex(serial), 100, f"late-{band_id}")
    assert Relay(engine, band)(order) is OrderState.SETTLED
    assert books(engine, band_id, serial) == (FUNDS, 0)
    assert card_row(engine, order).status is CardStatus.CANCELLED
    band.power_on()
    assert band.transmit(pboc.select(TRANSIT.aid).encode())[-2:] == SW.FILE_NOT_FOUND.to_bytes(2)


@pytest.mark.parametrize("fault", ["drop", "tear"])
def test_cancellation_broken_anywhere_refunds_exactly_once(engine, fault):
    for cut in count(1):
        band_id, band = new_band(engine)
        serial = issue(engine, band_id, band, number=cut)
        topup(engine, band_id, band, serial, 1500)
        order = orders(engine).cancel(band_id, bytes.fromhex(serial), f"cancel-{band_id}")
        relay = Relay(engine, band)
        broken = relay(order, answers=cut) if fault == "drop" else relay(order, tear=cut)
        if broken is not OrderState.SETTLED:
            assert relay(order) is OrderState.SETTLED, f"{fault} at {cut}"
        assert books(engine, band_id, serial) == (FUNDS, 0), f"{fault} at {cut}"
        if broken is OrderState.SETTLED:
            break
    assert cut > 3


def test_a_lost_band_is_locked_at_its_next_contact_and_its_money_moves(engine):
    lost_id, lost = new_band(engine)
    new_id, _ = new_band(engine)
    serial = issue(engine, lost_id, lost)
    topup(engine, lost_id, lost, serial, 3000)
    locks = orders(engine).report_lost(lost_id, new_id, f"lost-{lost_id}")
    assert orders(engine).report_lost(lost_id, new_id, f"lost-{lost_id}") == locks
    # the money moves once the card proves the lock, never on the report alone
    assert books(engine, new_id, "none")[0] == FUNDS
    assert books(engine, lost_id, serial)[1] == 3000
    with pytest.raises(OrderError, match="lost"):
        orders(engine).topup(lost_id, bytes.fromhex(serial), 100, f"after-{lost_id}")
    with pytest.raises(OrderError, match="lost"):
        orders(engine).issue(lost_id, "canteen", CANTEEN.serial(lost_id), f"new-{lost_id}")
    (lock,) = locks
    assert Relay(engine, lost)(lock, answers=2) is not OrderState.SETTLED
    assert books(engine, new_id, "none")[0] == FUNDS
    assert Relay(engine, lost)(lock) is OrderState.SETTLED
    assert books(engine, new_id, "none")[0] == FUNDS + 3000
    assert books(engine, lost_id, serial)[1] == 0
    lost.power_on()
    assert lost.transmit(pboc.select(TRANSIT.aid).encode())[-2:] != SW.OK.to_bytes(2)
    with session_factory(engine)() as session:
        kinds = {o.kind for o in session.query(Order).filter(Order.band_id == lost_id)}
        assert OrderKind.LOST in kinds


def test_clearing_books_proven_purchases_once_and_refuses_forged_ones(engine):
    band_id, band = new_band(engine)
    serial = issue(engine, band_id, band)
    topup(engine, band_id, band, serial, 1000)
    psam = Psam(places.bus_id("1"), {TRANSIT.issuer_id: TRANSIT.master.purchase}, 0)
    validator = bus_validator(psam, lambda: NOW, route="1", fare=200)
    with in_field(band) as link:
        run(validator.tap(), link)
    (debit,) = validator.records
    record = PurchaseRecord(debit.app_serial, debit.tx_type, debit.amount, debit.card_counter,
                            debit.terminal_id, debit.terminal_seq, debit.date, debit.time, debit.tac)
    forged = replace(record, amount=20)
    with session_factory(engine).begin() as session:
        first = clear(session, DemoKeys(), [record, forged], AT)
    with session_factory(engine).begin() as session:
        again = clear(session, DemoKeys(), [record], AT)
    assert (first.booked, len(first.refused), again.booked, again.duplicates) == (1, 1, 0, 1)
    assert "TAC is wrong" in first.refused[0]
    assert books(engine, band_id, serial)[1] == band.card("transit").balance == 800


def test_a_garbled_answer_fails_the_script_with_a_reason(engine):
    band_id, band = new_band(engine)
    serial = issue(engine, band_id, band)
    service = orders(engine)
    order = service.cancel(band_id, bytes.fromhex(serial), f"garbled-{band_id}")
    step = service.open(order)
    garbled = bytes.fromhex("6F059F0C02AB") + SW.OK.to_bytes(2)  # an FCI with a truncated issuer file
    done = service.answer(step.session_id, step.step, [garbled])
    assert (done.commands, done.state) == ((), OrderState.FAILED)
    with session_factory(engine)() as session:
        assert "FCI" in (session.get_one(Order, order).last_error or "")
    assert card_row(engine, order).status is CardStatus.ACTIVE


def test_a_ride_before_the_lock_cleared_after_the_move_is_paid_from_the_moved_balance(engine):
    lost_id, lost = new_band(engine)
    new_id, _ = new_band(engine)
    serial = issue(engine, lost_id, lost)
    topup(engine, lost_id, lost, serial, 3000)
    psam = Psam(places.bus_id("7"), {TRANSIT.issuer_id: TRANSIT.master.purchase}, 0)
    validator = bus_validator(psam, lambda: NOW, route="7", fare=200)
    with in_field(lost) as link:  # the thief rides before the lock reaches the band
        run(validator.tap(), link)
    (lock,) = orders(engine).report_lost(lost_id, new_id, f"ride-lost-{lost_id}")
    assert Relay(engine, lost)(lock) is OrderState.SETTLED
    assert books(engine, new_id, "none")[0] == FUNDS + 3000, "the books' balance moved"
    (debit,) = validator.records
    record = PurchaseRecord(debit.app_serial, debit.tx_type, debit.amount, debit.card_counter,
                            debit.terminal_id, debit.terminal_seq, debit.date, debit.time, debit.tac)
    with session_factory(engine).begin() as session:
        assert clear(session, DemoKeys(), [record], AT).booked == 1
    assert books(engine, new_id, "none")[0] == FUNDS + 3000 - 200
    assert books(engine, lost_id, serial)[1] == 0, "the lost card's account never goes below zero"


def test_over_the_air_cards_carry_their_card_number_in_bcd(engine):
    """JT/T 978: file 0015's application serial is the issuer's prefix and 16 decimal
    digits; an over-the-air card holds the serial its order names, read back by identifier."""
    band_id, band = new_band(engine)
    for item in (TRANSIT, CANTEEN):
        ordered = issue(engine, band_id, band, item)
        band.power_on()
        with in_field(band) as link:
            issuer = run(pboc.read_issuer_file_by_fid(item.brand.file_id), link)
        assert issuer.app_serial.hex().upper() == ordered
        assert issuer.app_serial[:2] == item.issuer_id[:2]
        assert issuer.app_serial[2:].hex().isdigit()


@pytest.mark.parametrize(("product", "raw"), [
    ("transit", "100068A1322188A8C334"),  # the card of the issue: random bytes after the prefix
    ("transit", "1000" "00000000000003E8"),  # a counter in binary
    ("canteen", "1000" "0000000000000001"),  # the transit issuer's prefix
    ("transit", "1000" "00000000000001"),  # 9 bytes
])
def test_an_issuance_under_a_serial_no_card_takes_is_refused(engine, product, raw):
    band_id, _ = new_band(engine)
    with pytest.raises(OrderError, match="serial"):
        orders(engine).issue(band_id, product, bytes.fromhex(raw), f"bad-{band_id}")
