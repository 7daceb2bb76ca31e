"""Top-up orders on a real database: relay drops, issuer restarts, tears, retries, races."""

from __future__ import annotations

import threading
from datetime import datetime

import pytest

from common.relay import run_batch
from issuer.clearing import clear_loads
from issuer.db import Order, OrderState, session_factory
from issuer.keys import DemoKeys
from issuer.procedure import OrderError
from issuer.products import TRANSIT
from reader import places
from reader.flow import run
from reader.record import LoadRecord
from tests.support.orders import FUNDS, NOW, enrol, money, relay, topups
from wallet.band import Band


def test_a_top_up_settles_and_the_ledger_agrees_with_the_card(engine):
    band_id, band, serial = enrol(engine)
    service = topups(engine)
    order = service.topup(band_id, serial, 5000, f"k-{band_id}")
    assert service.topup(band_id, serial, 5000, f"k-{band_id}") == order, "same key, same order"
    assert relay(service, order, band) is OrderState.SETTLED
    funding, card, _ = money(engine, band_id, serial)
    assert (funding, card) == (FUNDS - 5000, 5000) and band.card("transit").balance == 5000


@pytest.mark.parametrize("stop_after", [0, 1, 2, 3])
def test_a_relay_dropped_anywhere_is_finished_by_a_restarted_issuer(engine, stop_after):
    band_id, band, serial = enrol(engine)
    order = topups(engine).topup(band_id, serial, 700, f"drop-{band_id}")
    relay(topups(engine), order, band, stop_after=stop_after)
    assert relay(topups(engine), order, band) is OrderState.SETTLED  # a new process, same database
    funding, card, _ = money(engine, band_id, serial)
    assert funding + card == FUNDS and card == band.card("transit").balance == 700


def test_a_torn_credit_is_settled_exactly_once(engine):
    outcomes = set()
    for k in range(8):
        band_id, band, serial = enrol(engine)
        order = topups(engine).topup(band_id, serial, 900, f"tear-{band_id}-{k}")
        relay(topups(engine), order, band, tear=k)
        band.power_on()
        outcomes.add(band.card("transit").balance)
        assert relay(topups(engine), order, band) is OrderState.SETTLED
        funding, card, _ = money(engine, band_id, serial)
        assert (funding, card) == (FUNDS - 900, 900) == (FUNDS - band.card("transit").balance,
                                                          band.card("transit").balance)
    assert outcomes == {0, 900}


def test_a_retried_answer_changes_nothing_and_a_busy_card_waits(engine):
    band_id, band, serial = enrol(engine)
    service = topups(engine)
    order = service.topup(band_id, serial, 300, f"retry-{band_id}")
    band.power_on()
    step = service.open(order)
    answers = run_batch(band.transmit, step.commands)
    second = service.answer(step.session_id, step.step, answers)
    again = service.answer(step.session_id, step.step, answers)  # the phone retried
    assert again.commands == second.commands and again.step == second.step
    with pytest.raises(OrderError, match="still unresolved"):
        service.topup(band_id, serial, 100, f"other-{band_id}")
    with pytest.raises(OrderError, match="different order"):
        service.topup(band_id, serial, 999, f"retry-{band_id}")


def test_many_companions_at_once(engine):
    enrolled = [enrol(engine) for _ in range(6)]
    errors: list[BaseException] = []

    def companion(band_id: int, band: Band, serial: bytes) -> None:
        try:
            service = topups(engine)
            for n in range(2):
                order = service.topup(band_id, serial, 100, f"many-{band_id}-{n}")
                if relay(service, order, band) is not OrderState.SETTLED:
                    raise AssertionError("not settled")
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=companion, args=e) for e in enrolled]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    for band_id, band, serial in enrolled:
        funding, card, _ = money(engine, band_id, serial)
        assert (funding, card, band.card("transit").balance) == (FUNDS - 200, 200, 200)
    with session_factory(engine)() as session:
        assert session.query(Order).count() >= 12


def test_a_batch_stops_at_the_first_refusal():
    sent: list[bytes] = []

    def transmit(command: bytes) -> bytes:
        sent.append(command)
        return b"\x6a\x82" if command == b"B" else b"\x90\x00"

    assert run_batch(transmit, [b"A", b"B", b"C"]) == [b"\x90\x00", b"\x6a\x82"]
    assert sent == [b"A", b"B"], "nothing runs after a refused command"


def test_a_top_up_batches_select_with_initialize_and_takes_a_prefix_of_the_answers(engine):
    band_id, band, serial = enrol(engine)
    service = topups(engine)
    order = service.topup(band_id, serial, 250, f"prefix-{band_id}")
    band.power_on()
    step = service.open(order)
    assert [command[1] for command in step.commands] == [0xA4, 0x50]  # SELECT, INITIALIZE
    with pytest.raises(OrderError, match="3 answers to a batch of 2"):
        service.answer(step.session_id, step.step, [b"\x90\x00"] * 3)
    select = band.transmit(step.commands[0])  # the link broke before INITIALIZE's answer came back
    step = service.answer(step.session_id, step.step, [select])
    assert [command[1] for command in step.commands] == [0x50]
    while step.commands:
        step = service.answer(step.session_id, step.step, run_batch(band.transmit, step.commands))
    assert step.state is OrderState.SETTLED and band.card("transit").balance == 250


def test_a_wrong_card_ends_the_batch_without_its_initialize_counting(engine):
    band_id, _, serial = enrol(engine)
    _, other, _ = enrol(engine)
    service = topups(engine)
    order = service.topup(band_id, serial, 250, f"wrong-{band_id}")
    other.power_on()
    step = service.open(order)
    done = service.answer(step.session_id, step.step, run_batch(other.transmit, step.commands))
    assert done.state is OrderState.FAILED and done.commands == ()
    assert money(engine, band_id, serial)[:2] == (FUNDS, 0)


def test_an_order_never_proven_is_closed_by_the_operator_only_after_the_clearing_window(engine):
    from datetime import timedelta  # noqa: PLC0415

    from issuer.orders import CLEARING_WINDOW  # noqa: PLC0415

    band_id, band, serial = enrol(engine)
    held = money(engine, band_id, serial)[2]  # what other orders hold in flight
    order = topups(engine).topup(band_id, serial, 800, f"window-{band_id}")
    relay(topups(engine), order, band, stop_after=2)  # MAC1 checked, debited; CREDIT never sent
    assert money(engine, band_id, serial) == (FUNDS - 800, 0, held + 800)
    with pytest.raises(OrderError, match="waits for its card's proof until"):
        topups(engine).resolve(order, NOW + CLEARING_WINDOW - timedelta(minutes=1))
    assert topups(engine).resolve(order, NOW + CLEARING_WINDOW) is OrderState.REFUNDED
    funding, card, _ = money(engine, band_id, serial)
    assert (funding, card) == (FUNDS, 0) == (FUNDS, band.card("transit").balance)
    with pytest.raises(OrderError, match="over"):
        topups(engine).resolve(order, NOW + 2 * CLEARING_WINDOW)
    assert relay(topups(engine), order, band) is OrderState.REFUNDED  # the band came back: over
    assert band.card("transit").balance == 0
    with session_factory(engine)() as session:
        assert "closed by the operator" in (session.get_one(Order, order).last_error or "")


def test_the_operators_refund_is_booked_as_such(engine):
    from issuer.db import Transaction  # noqa: PLC0415
    from issuer.orders import CLEARING_WINDOW  # noqa: PLC0415

    band_id, band, serial = enrol(engine)
    order = topups(engine).topup(band_id, serial, 300, f"booked-as-{band_id}")
    relay(topups(engine), order, band, stop_after=2)
    topups(engine).resolve(order, NOW + CLEARING_WINDOW)
    with session_factory(engine)() as session:
        kinds = {t.kind for t in session.query(Transaction).filter(Transaction.order_id == order)}
    assert kinds == {"topup-debit", "topup-refund-unproven"}


@pytest.mark.parametrize("credited", [False, True], ids=["credit never sent", "answer lost"])
def test_a_cash_load_before_the_next_contact_holds_the_top_up_and_never_settles_it(engine,
                                                                                    credited):
    """A station's cash load after our MAC2 went out moves the online counter too (its
    INITIALIZE kills our MAC2, so it may take the counter slot our credit was for): the counter
    alone proves nothing, and the order stays held rather than settle on it."""
    from reader.load import LoadKeys, LoadTerminal  # noqa: PLC0415
    from reader.transport import in_field  # noqa: PLC0415
    from tests.conftest import Clock  # noqa: PLC0415

    band_id, band, serial = enrol(engine)
    held = money(engine, band_id, serial)[2]
    order = topups(engine).topup(band_id, serial, 700, f"cash-between-{band_id}")
    band.power_on()
    service = topups(engine)
    step = service.open(order)
    step = service.answer(step.session_id, step.step, run_batch(band.transmit, step.commands))
    if credited:
        band.transmit(step.commands[0])  # CREDIT FOR LOAD runs; its answer never comes back
    station = LoadTerminal(places.load_id(), {TRANSIT.issuer_id: LoadKeys(
        TRANSIT.master.load, TRANSIT.master.tac)}, Clock(datetime(2026, 11, 23, 18, 0)))
    with in_field(band) as link:
        cash = run(station.load(300, TRANSIT.aid), link)
    assert relay(topups(engine), order, band) is OrderState.DEBITED
    assert money(engine, band_id, serial) == (FUNDS - 700, 0, held + 700), "held, not settled"
    assert band.card("transit").balance == 300 + (700 if credited else 0)
    with session_factory(engine)() as session:
        assert "a later load" in (session.get_one(Order, order).last_error or "")
    # The station's record, proven by its TAC, names the counter slot it took: our credit's
    # (refunded: only one credit takes a slot), or the one after it (ours came first: held on)
    with session_factory(engine).begin() as session:
        clear_loads(session, DemoKeys(), [LoadRecord(
            cash.app_serial, cash.amount, cash.balance_after, cash.card_counter,
            cash.terminal_id, cash.date, cash.time, cash.tac)], NOW, places.load_id(9))
        state = session.get_one(Order, order).state
    assert state is (OrderState.DEBITED if credited else OrderState.REFUNDED)
    assert money(engine, band_id, serial) == ((FUNDS - 700, 300, held + 700) if credited
                                              else (FUNDS, 300, held))
