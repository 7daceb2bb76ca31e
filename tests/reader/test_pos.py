"""The QuickPass POS against cards that answer badly: only reader errors, never a crash, and
never an approval the genuine card did not give."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from issuer import ecash
from issuer.emv_pki import DemoPki
from reader.errors import ReaderError
from reader.flow import run
from reader.pos import Pos
from reader.transport import in_field
from tests.conftest import Clock, seeded
from wallet.band import Band


@pytest.fixture(scope="module")
def bank_card():
    profile = ecash.profile_for(ecash.pan_for(3), "Fuzz", date(2026, 1, 1))
    return ecash.personalisation(profile, DemoPki.load(), balance=5000)


class Garbled:
    """A card whose ``index``-th answer has one byte changed (or is replaced outright)."""

    def __init__(self, band: Band, index: int, position: int, value: int,
                 replacement: bytes | None) -> None:
        self.band, self.index, self.position = band, index, position
        self.value, self.replacement, self.seen = value, replacement, 0

    def power_on(self) -> None:
        self.band.power_on()

    def transmit(self, apdu: bytes) -> bytes:
        answer = self.band.transmit(apdu)
        self.seen += 1
        if self.seen - 1 != self.index:
            return answer
        if self.replacement is not None:
            return self.replacement
        changed = bytearray(answer)
        changed[self.position % len(changed)] ^= self.value or 1
        return bytes(changed)


@given(index=st.integers(0, 6), position=st.integers(0, 400), value=st.integers(0, 255),
       replacement=st.one_of(st.none(), st.binary(max_size=40)))
def test_a_garbled_answer_is_a_reader_error_or_an_honest_approval(bank_card, index, position,
                                                                   value, replacement):
    band = Band.new("fuzz", seeded(1))
    band.add_ecash(bank_card)
    card = Garbled(band, index, position, value, replacement)
    try:
        with in_field(card) as link:
            receipt = run(Pos("Shop", Clock(), seeded(2)).purchase(300), link)
    except ReaderError:
        return
    # Approved despite the garbling: the card really approved it and the amount is the one asked.
    assert receipt.amount == 300
    assert band.balances()["ecash"] in (5000, 4700)
    if receipt.offline:
        assert band.balances()["ecash"] == 4700
