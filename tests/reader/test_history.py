"""A card's history read back: typed lines in time order, balances after each, rides paired."""

from __future__ import annotations

from datetime import datetime

from applets import bcd
from applets.pboc.layouts import LogRecord, TxType
from reader import places
from reader.history import Kind, read, rides
from reader.metro import MetroNetwork

NETWORK = MetroNetwork.load()
XIZHIMEN, GUOMAO = NETWORK.find("Xizhimen"), NETWORK.find("Guomao")


def record(counter: int, amount: int, tx_type: TxType, terminal_id: bytes, when: str) -> LogRecord:
    date, time = bcd.date_time(datetime.fromisoformat(when))
    return LogRecord(counter, 0, amount, tx_type, terminal_id, date, time)


# as the card wrote them, newest first; the bus tap was stamped earlier than the ride (a
# validator whose clock is behind), so time order is not card order
LOG = [
    record(2, 500, TxType.EP_PURCHASE, places.bus_id("332"), "2026-11-23T08:10"),
    record(1, 400, TxType.CAPP_PURCHASE, places.gate_id(GUOMAO.code), "2026-11-23T08:40"),
    record(0, 0, TxType.CAPP_PURCHASE, places.gate_id(XIZHIMEN.code), "2026-11-23T08:00"),
    record(1, 2000, TxType.EP_LOAD, places.OTA_LOAD, "2026-11-23T07:05"),
    record(0, 3000, TxType.EP_LOAD, places.load_id(1), "2026-11-23T07:00"),
]


def test_lines_come_in_time_order_with_their_kinds_and_balances():
    history = read(4100, LOG, NETWORK)
    assert [(line.kind, line.amount, line.balance_after) for line in history.lines] == [
        (Kind.EXIT, -400, 4600), (Kind.BUS, -500, 4100), (Kind.ENTRY, 0, 5000),
        (Kind.TOP_UP, 2000, 5000), (Kind.LOAD, 3000, 3000)]
    assert [line.online for line in history.lines] == [False, False, False, True, True]
    assert history.dropped == 0


def test_a_full_log_says_how_many_older_records_it_lost():
    # the offline counter says 8 purchases happened, the online one 2 loads; 5 are left
    log = [record(7, 200, TxType.EP_PURCHASE, places.till_id(1), "2026-11-23T12:00"), *LOG]
    assert read(3900, log, NETWORK).dropped == (7 + 1 - 4) + (1 + 1 - 2)


def test_a_ride_pairs_its_exit_with_the_entry_before_it():
    (ride,) = rides(read(4100, LOG, NETWORK), NETWORK)
    assert (ride.origin, ride.destination, ride.fare, ride.minutes) == ("Xizhimen", "Guomao", 400, 40)
    assert ride.balance_after == 4600
    assert ride.km == NETWORK.distance_km(XIZHIMEN, GUOMAO)
