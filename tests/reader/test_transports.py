"""The same terminals over every transport: in process, PC/SC through pcscd, nfcpy over UDP.

Each transport is real: pcscd runs with the vsmartcard vpcd driver and the
band is the card in its reader; nfcpy's UDP driver carries ISO 14443 frames
between a reader and the band in listen mode. The same day on each leaves
the card byte for byte as the in-process day does.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from issuer.products import TRANSIT
from reader import places
from reader.bus import bus_validator
from reader.errors import CardRemoved
from reader.flow import run
from reader.gate import Direction, GateConfig, MetroGate
from reader.load import LoadKeys, LoadTerminal
from reader.metro import MetroNetwork
from reader.psam import Psam
from reader.transport import Transport
from tests.conftest import NOW, Clock, make_band
from tests.fields import InProcessField, NfcField, PcscField
from wallet.band import Band

NETWORK = MetroNetwork.load()
KEYS = {TRANSIT.issuer_id: TRANSIT.master.purchase}


def _field(request):
    made: InProcessField | PcscField | NfcField
    if request.param == "pcsc":
        made = PcscField(request.getfixturevalue("pcscd"))
    elif request.param == "nfc":
        made = NfcField()
    else:
        made = InProcessField()
    return made


@pytest.fixture(params=["inproc", "pcsc", "nfc"])
def field(request):
    made = _field(request)
    yield made
    made.close()


@pytest.fixture(params=["pcsc", "nfc"])
def link_field(request):
    """A field with a real link to pull (in process, tears do that: test_gate)."""
    made = _field(request)
    yield made
    made.close()


def gate(clock: Clock, station: str, direction: Direction) -> MetroGate:
    here = NETWORK.find(station)
    return MetroGate(Psam(places.gate_id(here.code), KEYS), clock,
                     GateConfig(NETWORK, here, direction))


def a_day(field, band: Band) -> list[object]:
    """Load, metro in and out, a bus: every transaction over ``field``."""
    clock = Clock(NOW)
    loader = LoadTerminal(places.load_id(), {TRANSIT.issuer_id: LoadKeys(TRANSIT.master.load,
                                                                         TRANSIT.master.tac)},
                          clock)
    results: list[object] = []
    steps = [loader.load(5000), gate(clock, "Bagou", Direction.ENTRY).tap()]
    for flow in steps:
        with field.tap(band) as link:
            results.append(run(flow, link))
    clock.now += timedelta(minutes=40)
    with field.tap(band) as link:
        results.append(run(gate(clock, "Dawanglu", Direction.EXIT).tap(), link))
    bus = bus_validator(Psam(places.bus_id("332"), KEYS), clock, "332", 200)
    with field.tap(band) as link:
        results.append(run(bus.tap(), link))
    return results


def test_a_day_leaves_the_same_card_on_every_transport(field):
    reference_band = make_band(TRANSIT)
    reference = a_day(InProcessField(), reference_band)
    band = make_band(TRANSIT)
    assert a_day(field, band) == reference
    assert band.se.store.snapshot() == reference_band.se.store.snapshot()
    assert band.card("transit").balance == 5000 - 600 - 200


class _PullAfter:
    """Passes APDUs to the real link, and pulls the card out after ``count`` of them."""

    def __init__(self, link: Transport, field, count: int) -> None:
        self.link, self.field, self.count = link, field, count
        self.trace = link.trace

    def transmit(self, apdu: bytes) -> bytes:
        if self.count == 0:
            self.field.pull()
        self.count -= 1
        return self.link.transmit(apdu)


def _entered(field) -> tuple[Band, Clock]:
    band = make_band(TRANSIT)
    clock = Clock(NOW)
    loader = LoadTerminal(places.load_id(), {TRANSIT.issuer_id: LoadKeys(TRANSIT.master.load,
                                                                         TRANSIT.master.tac)},
                          clock)
    with field.tap(band) as link:
        run(loader.load(2000), link)
    with field.tap(band) as link:
        run(gate(clock, "Bagou", Direction.ENTRY).tap(), link)
    clock.now += timedelta(minutes=40)
    return band, clock


@pytest.mark.parametrize("after", [2, 3, 4], ids=["before INIT", "before UPDATE", "before DEBIT"])
def test_a_card_pulled_between_apdus_is_charged_once(link_field, after):
    field = link_field
    band, clock = _entered(field)
    exit_gate = gate(clock, "Dawanglu", Direction.EXIT)
    with pytest.raises(CardRemoved), field.tap(band) as link:
        run(exit_gate.tap(), _PullAfter(link, field, after))
    assert band.card("transit").balance == 2000, "nothing happened to the card"
    with field.tap(band) as link:
        result = run(exit_gate.tap(), link)
    assert (result.fare, result.recovered) == (600, False)
    assert band.card("transit").balance == 1400 and len(exit_gate.records) == 1


def test_a_card_pulled_as_the_debit_commits_is_not_charged_again(link_field):
    """The DEBIT reaches the card and commits, but its answer never leaves the band."""
    field = link_field
    band, clock = _entered(field)
    exit_gate = gate(clock, "Dawanglu", Direction.EXIT)
    band.on_change = lambda changed: field.pull()
    with pytest.raises(CardRemoved), field.tap(band) as link:
        run(exit_gate.tap(), link)
    band.on_change = None
    assert band.card("transit").balance == 1400, "the card was charged"
    assert exit_gate.pending, "the gate knows the tap is incomplete"
    with field.tap(band) as link:
        result = run(exit_gate.tap(), link)
    assert result.recovered and result.fare == 600
    assert band.card("transit").balance == 1400
    assert [r.amount for r in exit_gate.records] == [600]
