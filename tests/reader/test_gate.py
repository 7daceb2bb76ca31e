"""Metro gates and bus validators against a real band, in process."""

from __future__ import annotations

from datetime import timedelta

import pytest

from applets.pboc.layouts import TRANSIT_RECORD, JourneyStatus
from issuer.products import TRANSIT
from reader import pboc
from reader.bus import bus_validator
from reader.errors import CardRemoved, TransactionRefused
from reader.flow import run
from reader.gate import Direction, GateConfig, MetroGate
from reader.metro import MetroNetwork
from reader.psam import Psam
from reader.transport import in_field
from tests.conftest import Clock, TearDuring, make_band
from wallet.band import Band

NETWORK = MetroNetwork.load()
PSAM_KEYS = {TRANSIT.issuer_id: TRANSIT.master.purchase}


def gate(clock: Clock, station: str, direction: Direction, number: int = 1) -> MetroGate:
    here = NETWORK.find(station)
    terminal_id = b"\x10\x00" + here.code.to_bytes(2) + number.to_bytes(2)
    return MetroGate(Psam(terminal_id, PSAM_KEYS), clock, GateConfig(NETWORK, here, direction))


def tap(band, terminal):
    with in_field(band) as link:
        return run(terminal.tap(), link)


@pytest.fixture
def rider(load_terminal):
    band = make_band(TRANSIT)
    with in_field(band) as link:
        run(load_terminal.load(2000), link)
    return band


def balance(band: Band) -> int:
    return band.card("transit").balance


def transit_record(band):
    with in_field(band) as link:
        run(pboc.select_purse(), link)
        return run(pboc.read_transit_record(0x01), link)


def test_a_ride_is_charged_by_distance(rider, clock):
    entered = tap(rider, gate(clock, "Bagou", Direction.ENTRY))
    assert (entered.fare, entered.balance) == (0, 2000)
    assert transit_record(rider).status == JourneyStatus.ENTERED
    clock.now += timedelta(minutes=50)
    left = tap(rider, gate(clock, "Dawanglu", Direction.EXIT))
    assert left.fare == 600  # 22.44 km
    assert left.balance == balance(rider) == 1400
    assert "Bagou → Dawanglu" in left.journey
    record = transit_record(rider)
    assert record.status == JourneyStatus.EXITED and record.fare == 600
    assert record.entry_station == NETWORK.find("Bagou").code


def nothing_changes(band, action) -> str:
    before = band.se.store.snapshot()
    with pytest.raises(TransactionRefused) as refusal:
        action()
    assert band.se.store.snapshot() == before
    return refusal.value.reason


def test_exit_without_entry_is_refused_and_free(rider, clock):
    reason = nothing_changes(rider, lambda: tap(rider, gate(clock, "Xidan", Direction.EXIT)))
    assert "no entry" in reason


def test_an_exit_stamped_before_its_entry_is_refused_and_free(rider, clock):
    tap(rider, gate(clock, "Xidan", Direction.ENTRY))
    clock.now -= timedelta(minutes=30)  # a gate whose clock is behind, or a replayed --at
    reason = nothing_changes(rider, lambda: tap(rider, gate(clock, "Guomao", Direction.EXIT)))
    assert "before the card's entry" in reason


def test_second_entry_is_refused_while_the_first_is_fresh(rider, clock):
    tap(rider, gate(clock, "Xidan", Direction.ENTRY))
    clock.now += timedelta(minutes=5)
    reason = nothing_changes(rider, lambda: tap(rider, gate(clock, "Guomao", Direction.ENTRY)))
    assert "already entered at Xidan" in reason


def test_a_stale_entry_is_refused_at_exit_and_replaced_at_entry(rider, clock):
    tap(rider, gate(clock, "Xidan", Direction.ENTRY))
    clock.now += timedelta(hours=5)
    reason = nothing_changes(rider, lambda: tap(rider, gate(clock, "Guomao", Direction.EXIT)))
    assert "expired" in reason
    assert tap(rider, gate(clock, "Guomao", Direction.ENTRY)).fare == 0


def test_insufficient_balance_at_exit_charges_nothing(clock, load_terminal):
    band = make_band(TRANSIT)
    with in_field(band) as link:
        run(load_terminal.load(350), link)
    tap(band, gate(clock, "Bagou", Direction.ENTRY))
    reason = nothing_changes(band, lambda: tap(band, gate(clock, "Dawanglu", Direction.EXIT)))
    assert "insufficient balance" in reason


def test_entry_needs_the_minimum_fare(clock, load_terminal):
    band = make_band(TRANSIT)
    with in_field(band) as link:
        run(load_terminal.load(299), link)
    reason = nothing_changes(band, lambda: tap(band, gate(clock, "Xidan", Direction.ENTRY)))
    assert "below the 3.00" in reason


def test_an_expired_card_is_refused(rider, clock):
    clock.now = clock.now.replace(year=2037)
    reason = nothing_changes(rider, lambda: tap(rider, gate(clock, "Xidan", Direction.ENTRY)))
    assert "expired" in reason


def test_a_blocked_card_is_refused(rider, clock):
    cell = f"app/{TRANSIT.aid.hex().upper()}/tries/dpk"
    rider.se.store.put(cell, b"\x00")
    rider.se.store.commit()
    reason = nothing_changes(rider, lambda: tap(rider, gate(clock, "Xidan", Direction.ENTRY)))
    assert "blocked" in reason


def test_bus_charges_a_flat_fare(rider, clock):
    validator = bus_validator(Psam(b"\x20" * 6, PSAM_KEYS), clock, "332", 200)
    assert tap(rider, validator).balance == 1800
    assert validator.records[0].amount == 200 and validator.records[0].mac2_verified


@pytest.mark.parametrize("direction", [Direction.ENTRY, Direction.EXIT])
def test_a_card_pulled_during_debit_is_charged_once(rider, clock, direction):
    """Tear at every write of the DEBIT: the next tap settles it, never charging twice."""
    if direction is Direction.EXIT:
        tap(rider, gate(clock, "Bagou", Direction.ENTRY))
    image = rider.to_image()
    probe = Band.from_image(image)
    probe.se.store.writes = 0
    station = "Dawanglu" if direction is Direction.EXIT else "Xidan"
    tap(probe, gate(clock, station, direction))
    writes = probe.se.store.writes
    for k in range(writes):
        band = Band.from_image(image)
        terminal = gate(clock, station, direction)
        with pytest.raises(CardRemoved):
            tap(TearDuring(band, 0x54, k), terminal)
        assert terminal.pending, "the gate knows the tap is incomplete"
        again = tap(band, terminal)
        charged = sum(record.amount for record in terminal.records)
        expected_fare = 600 if direction is Direction.EXIT else 0
        assert charged == expected_fare, f"tear at write {k}"
        assert balance(band) + charged == 2000
        assert len(terminal.records) == 1
        record = TRANSIT_RECORD.parse(
            band.se.store.require(f"app/{TRANSIT.aid.hex().upper()}/ef/0017/0"))
        wanted = JourneyStatus.EXITED if direction is Direction.EXIT else JourneyStatus.ENTERED
        assert record.status == wanted
        assert again.fare == expected_fare




def test_a_blacklisted_card_is_refused_and_its_application_blocked(rider, clock):
    listed = MetroGate(Psam(b"\x10\x00" + NETWORK.find("Xizhimen").code.to_bytes(2) + b"\x00\x01",
                            PSAM_KEYS, maintenance={TRANSIT.issuer_id: TRANSIT.master.maintenance}),
                       clock, GateConfig(NETWORK, NETWORK.find("Xizhimen"), Direction.ENTRY),
                       blacklist={TRANSIT.serial(1)})
    before = balance(rider)
    with pytest.raises(TransactionRefused, match="reported lost"):
        tap(rider, listed)
    assert balance(rider) == before
    with pytest.raises(TransactionRefused, match="blocked by its issuer"):
        tap(rider, gate(clock, "Xizhimen", Direction.ENTRY, 2))  # an unlisted gate: the card stops
