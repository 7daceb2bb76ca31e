"""Fixtures: a band with cards in one line, a fixed clock and reproducible randomness."""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, settings

from applets.errors import PowerLoss
from issuer.products import CANTEEN, TRANSIT, Product
from reader.load import LoadKeys, LoadTerminal
from reader.psam import Psam
from reader.terminal import PurseTerminal
from wallet.band import Band

if TYPE_CHECKING:
    from tests.fields import Pcscd

# Bounded fuzzing in the test command; KOALA_FUZZ_EXAMPLES=5000 for a long soak.
settings.register_profile(
    "koala",
    max_examples=int(os.environ.get("KOALA_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.load_profile("koala")

START, EXPIRY = bytes.fromhex("20260101"), bytes.fromhex("20361231")
NOW = datetime(2026, 11, 23, 8, 30, 0)


def seeded(seed: int = 7) -> Callable[[int], bytes]:
    return random.Random(seed).randbytes


def serial_for(product: Product, number: int = 1) -> bytes:
    """The product's card number ``number``: its prefix and 16 BCD digits, as the card checks."""
    return product.serial(number)


def make_band(*products: Product, seed: int = 7, name: str = "test") -> Band:
    band = Band.new(name, seeded(seed))
    for product in products:
        data = product.personalisation(serial_for(product), START, EXPIRY, "Test Rider")
        band.add_purse(data, product.aid)
    return band


def tear_at_every_write(prepare: Callable[[], tuple[Band, bytes]]) -> Iterator[tuple[str, Band]]:
    """Power cut at every physical write of one command: the command runs once whole, then
    on a freshly prepared band per write k, cut before write k and powered up again. Yields
    ("before" or "after", the torn band), and fails if a torn band matches neither state or
    if one of the two outcomes never occurs."""
    band, final = prepare()
    before = band.se.store.snapshot()
    band.se.store.writes = 0
    assert band.transmit(final)[-2:] == b"\x90\x00"
    after, total = band.se.store.snapshot(), band.se.store.writes
    assert total > 0, "the command wrote nothing"
    outcomes = set()
    for k in range(total):
        torn, final = prepare()
        torn.se.store.writes = 0
        torn.se.store.tear_after = k
        with pytest.raises(PowerLoss):
            torn.transmit(final)
        torn.se.store.tear_after = None
        torn.power_on()
        state = torn.se.store.snapshot()
        assert state in (before, after), f"tear before write {k + 1} of {total}"
        outcome = "after" if state == after else "before"
        outcomes.add(outcome)
        yield outcome, torn
    assert outcomes == {"before", "after"}


class Clock:
    """A settable clock for terminals."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="session")
def pcscd() -> Iterator[Pcscd]:
    """The test run's pcscd with the vsmartcard reader: its own, on vpcd ports of its own,
    where the machine allows it, else the machine's (tests/fields.py says how)."""
    from tests.fields import running_pcscd  # noqa: PLC0415 - needs pyscard

    with running_pcscd() as running:
        yield running


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def band() -> Band:
    return make_band(TRANSIT, CANTEEN)


@pytest.fixture
def load_terminal(clock: Clock) -> LoadTerminal:
    keys = {p.issuer_id: LoadKeys(p.master.load, p.master.tac) for p in (TRANSIT, CANTEEN)}
    return LoadTerminal(bytes.fromhex("990000000001"), keys, clock)


@pytest.fixture
def purse_terminal(clock: Clock) -> PurseTerminal:
    psam = Psam(bytes.fromhex("990000000002"), {TRANSIT.issuer_id: TRANSIT.master.purchase,
                                                 CANTEEN.issuer_id: CANTEEN.master.purchase})
    return PurseTerminal(psam, clock)


class TearDuring:
    """A band whose power fails before the k-th write of the first command with ``ins``."""

    def __init__(self, band: Band, ins: int, k: int) -> None:
        self.band, self.ins, self.k = band, ins, k

    def power_on(self) -> None:
        self.band.power_on()

    def transmit(self, apdu: bytes) -> bytes:
        store = self.band.se.store
        store.tear_after = store.writes + self.k if apdu[1] == self.ins else None
        try:
            return self.band.transmit(apdu)
        finally:
            store.tear_after = None
