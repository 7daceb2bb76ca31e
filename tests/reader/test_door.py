"""The door reader on its own: what it sends, what it refuses, and what a tap costs on the air."""

from __future__ import annotations

import pytest

from applets.access.wire import ACCESS_AID, INS_CHALLENGE, INS_PROOF
from applets.apdu import CommandAPDU
from reader.door import DEADLINE_DOOR_S, DoorReader, select
from reader.errors import CardProtocolError
from reader.flow import run
from reader.tap import tap
from reader.timing import DEFAULT_PROFILE, exchange_timing, model_tap
from reader.trace import Exchange
from reader.transport import in_field
from tests.conftest import Clock, seeded
from tests.support.access import FRONT, LAB, SITE_KEY, Replay, access_band, door


def test_a_door_tap_is_select_challenge_proof_and_fits_the_deadline():
    band = access_band()
    with in_field(band) as link:
        outcome = tap(link, door().tap(), deadline_s=DEADLINE_DOOR_S)
    assert outcome.accepted and outcome.result is not None
    commands = [CommandAPDU.parse(e.command) for e in outcome.trace]
    assert [(c.cla, c.ins) for c in commands] == [(0x00, 0xA4), (0x80, INS_CHALLENGE),
                                                  (0x80, INS_PROOF)]
    assert commands[0].data == ACCESS_AID
    timing = outcome.timing
    assert timing.within_deadline, f"{timing.modelled_s * 1e3:.1f} ms"
    assert timing.modelled_s < 0.100, "three short exchanges and one journalled write"


def test_the_access_commands_are_priced_as_aes_not_as_rsa():
    assert DEFAULT_PROFILE.processing_s(bytes((0x80, INS_CHALLENGE, 0, 0))) == 0.004
    assert DEFAULT_PROFILE.processing_s(bytes((0x80, INS_PROOF, 0, 0))) == 0.020
    assert DEFAULT_PROFILE.processing_s(bytes((0x00, 0x88, 0, 0))) == 0.060  # (f)DDA stays


def test_the_modelled_tap_adds_up_from_its_exchanges():
    band = access_band()
    with in_field(band) as link:
        run(door().tap(), link)
    timing = model_tap(link.trace, deadline_s=DEADLINE_DOOR_S)
    priced = [exchange_timing(e.command, e.response) for e in link.trace]
    assert timing.exchanges == tuple(priced)
    assert timing.card_s == pytest.approx(0.002 + 0.004 + 0.020)
    assert len(link.trace[1].command) == 5 + 20 + 1 and len(link.trace[1].response) == 32 + 2
    assert len(link.trace[2].command) == 5 + 15 + 1 and len(link.trace[2].response) == 20 + 2


def test_a_refusal_is_reported_with_its_reason_and_timed():
    band = access_band()
    with in_field(band) as link:
        outcome = tap(link, door(LAB).tap(), deadline_s=DEADLINE_DOOR_S)
    assert outcome.refusal == "no access at this door"
    assert not outcome.accepted and len(outcome.trace) == 3


def test_the_door_keeps_its_own_record_of_admissions():
    band = access_band()
    reader = door()
    for _ in range(2):
        with in_field(band) as link:
            run(reader.tap(), link)
    assert [a.door_id for a in reader.admissions] == [FRONT, FRONT]


def test_an_fci_naming_another_application_is_a_protocol_error():
    other = bytes.fromhex("6F0A8408A000000632010105") + b"\x90\x00"
    with pytest.raises(CardProtocolError, match="another application"):
        run(door().tap(), Replay([other]))


def test_an_answer_of_the_wrong_length_is_a_protocol_error():
    fci = bytes.fromhex("6F0A8408") + ACCESS_AID + b"\x90\x00"
    with pytest.raises(CardProtocolError):
        run(door().tap(), Replay([fci, bytes(10) + b"\x90\x00"]))


@pytest.mark.parametrize(("door_id", "key"), [(-1, SITE_KEY), (1 << 32, SITE_KEY), (FRONT, bytes(8))])
def test_a_door_needs_a_4_byte_id_and_an_aes_128_site_key(door_id, key):
    with pytest.raises(ValueError):
        DoorReader(door_id, key, Clock(), seeded(1))


def test_the_door_selects_only_the_access_card():
    assert select() == CommandAPDU(0x00, 0xA4, 0x04, 0x00, ACCESS_AID, ne=256)
    band = access_band()
    with in_field(band) as link:
        run(door().tap(), link)
    selects = [e for e in link.trace if e.command[1] == 0xA4]
    assert selects == [Exchange(select().encode(), selects[0].response, selects[0].host_seconds)]
