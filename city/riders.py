"""Riders through the network's gates: each a band with a real transit card (Beijing's, or
another T-Union city's), each tap a real PBOC transaction at a gate with its PSAM, each
record kept in that gate's outbox before the next rider comes.

Deterministic from a seed and the morning's first minute, so a day can be made again.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Container, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from applets.validity import Validity
from backoffice.members import TIANJIN
from city.demand import Demand
from issuer.products import TRANSIT, Product
from reader import places
from reader.clock import fixed
from reader.errors import ReaderError
from reader.flow import run
from reader.gate import Direction, GateConfig, MetroGate
from reader.load import LoadKeys, LoadTerminal
from reader.metro import MetroNetwork, Station
from reader.outbox import Outbox
from reader.psam import Psam
from reader.transport import in_field
from wallet.band import Band

OPENING_FEN = 10_000  # what each rider's card holds before the morning
ISSUERS = (TRANSIT, TIANJIN)
VISITORS = 0.1  # the part of riders on another city's card
NOON = 12  # riders who enter before it go to work, after it home


@dataclass(frozen=True, slots=True)
class Rider:
    band: Band
    product: Product
    serial: bytes
    origin: Station
    destination: Station
    enters: datetime
    minutes: int


def _peak_minute(rng: random.Random, minutes: int) -> int:
    """A minute of the morning, most riders at its middle (a triangular peak)."""
    return min(minutes - 1, int(rng.triangular(0, minutes, minutes / 2)))


def riders(network: MetroNetwork, count: int, start: datetime, end: datetime,
           seed: int = 1) -> Iterator[Rider]:
    """``count`` riders between ``start`` and ``end`` (the network's wall time), each loaded
    with :data:`OPENING_FEN` at a station machine, from one station to another as
    :mod:`city.demand` weighs them (homes to jobs before noon, jobs to homes after)."""
    rng = random.Random(seed)
    demand = Demand.of(sorted(network.stations.values(), key=lambda station: station.code))
    span = max(1, int((end - start).total_seconds() // 60))
    loader = LoadTerminal(places.load_id(1), {p.issuer_id: LoadKeys(p.master.load, p.master.tac)
                                              for p in ISSUERS}, fixed(start))
    validity = Validity.for_years(start.date(), 5).bcd()
    for number in range(count):
        product = TIANJIN if rng.random() < VISITORS else TRANSIT
        band = Band.new(f"rider{number}", rng=rng.randbytes)
        serial = product.serial(seed * 10_000_000 + number)
        band.add_purse(product.personalisation(serial, *validity), product.aid)
        with in_field(band) as link:
            run(loader.load(OPENING_FEN), link)
        enters = start + timedelta(minutes=_peak_minute(rng, span))
        origin, destination = demand.trip(rng, morning=enters.hour < NOON)
        minutes = max(4, int(network.distance_km(origin, destination) * 2))
        yield Rider(band, product, serial, origin, destination, enters, minutes)


class Gates:
    """Every station's entry and exit gates, PSAMs for every member issuer, outboxes in
    ``directory``; ``blacklist`` is what they refuse (and block)."""

    def __init__(self, network: MetroNetwork, directory: Path, gate_number: int = 1,
                 blacklist: Container[bytes] = frozenset()) -> None:
        self.network = network
        self.directory = directory
        self.blacklist = blacklist
        self.gate_number = gate_number
        self._gates: dict[tuple[int, Direction], MetroGate] = {}
        self._written: dict[bytes, list[bytes]] = {}
        self.now = datetime(2000, 1, 1)

    def gate(self, station: Station, direction: Direction) -> MetroGate:
        key = (station.code, direction)
        if key not in self._gates:
            number = self.gate_number * 2 + (direction is Direction.EXIT)
            terminal = places.gate_id(station.code, number)
            psam = Psam(terminal, {p.issuer_id: p.master.purchase for p in ISSUERS},
                        maintenance={p.issuer_id: p.master.maintenance for p in ISSUERS})
            self._gates[key] = MetroGate(psam, lambda: self.now,
                                         GateConfig(self.network, station, direction),
                                         self.blacklist)
        return self._gates[key]

    def tap(self, band: Band, station: Station, direction: Direction, at: datetime) -> str | None:
        """One tap, its record in the gate's outbox before this returns; the refusal, if any."""
        gate = self.gate(station, direction)
        self.now = at
        try:
            with in_field(band) as link:
                run(gate.tap(), link)
        except ReaderError as refusal:
            return str(refusal)
        finally:
            lines = Outbox(self.directory, gate.terminal_id).append(gate.records)
            if lines:
                self._written.setdefault(gate.terminal_id, []).extend(lines)
            gate.records.clear()
        return None

    def written(self) -> dict[bytes, list[bytes]]:
        """The lines the gates kept since the last call, by terminal id, in the order made."""
        written, self._written = self._written, {}
        return written


def ride(gates: Gates, rider: Rider, on_tap: Callable[[], None] | None = None) -> list[str]:
    """The rider in at the origin, out at the destination; the refusals met."""
    refusals = []
    for station, direction, at in ((rider.origin, Direction.ENTRY, rider.enters),
                                   (rider.destination, Direction.EXIT,
                                    rider.enters + timedelta(minutes=rider.minutes))):
        refused = gates.tap(rider.band, station, direction, at)
        if refused is not None:
            refusals.append(refused)
        if on_tap is not None:
            on_tap()
    return refusals
