"""What the reader answers for the band before the card sees anything: the PC/SC Part 3 GET
DATA pseudo-APDUs of the UID and of the ATS historical bytes (vpcd's card, sans I/O)."""

from __future__ import annotations

import pytest

from applets.sw import SW
from tests.conftest import make_band
from wallet import contactless
from wallet.vpcd import POWER_ON, VpcdCard


@pytest.fixture
def card() -> VpcdCard:
    vpcd = VpcdCard(make_band())
    vpcd.handle(bytes((POWER_ON,)))
    return vpcd


def test_get_data_answers_the_ats_historical_bytes(card):
    assert contactless.Ats().historical == b"KOALA"
    assert card.handle(bytes.fromhex("FFCA010000")) == b"KOALA\x90\x00"
    assert card.handle(bytes.fromhex("FFCA0100")) == b"KOALA\x90\x00"
    assert contactless.atr().endswith(b"KOALA" + contactless.atr()[-1:])  # the ATR's, too


def test_get_data_still_answers_the_uid(card):
    assert card.handle(bytes.fromhex("FFCA000000")) == card.band.uid + b"\x90\x00"


@pytest.mark.parametrize(("apdu", "answer"), [
    ("FFCA010003", "6C05"),  # Le too small: the exact length
    ("FFCA010008", "4B4F414C416282"),  # Le too big: end of data before Le bytes
    ("FFCA020000", "6A81"),  # no such data
    ("FFCA010100", "6A81"),  # P2 must be 00
])
def test_get_data_by_pcsc_part_3(card, apdu, answer):
    assert card.handle(bytes.fromhex(apdu)).hex().upper() == answer


def test_other_reader_class_commands_still_reach_the_card_and_are_refused(card):
    assert card.handle(bytes.fromhex("FFB0000000")) == SW.CLA_NOT_SUPPORTED.to_bytes(2)
