"""ISO/IEC 14443-4 card side, frame by frame (no radio, no nfcpy)."""

from __future__ import annotations

import pytest

from wallet.contactless import Ats
from wallet.isodep import IsoDepCard, IsoDepError


def echo(apdu: bytes) -> bytes:
    return apdu + b"\x90\x00"


def active(handler=echo, fsdi: int = 8, cid: int = 0, **kwargs) -> IsoDepCard:
    card = IsoDepCard(handler, **kwargs)
    ats = card.rats(bytes((0xE0, (fsdi << 4) | cid)))
    assert ats == Ats().encode()
    return card


def test_ats_announces_frame_size_timing_and_cid():
    assert Ats().encode().hex().upper() == "0A78808002" + b"KOALA".hex().upper()


def test_i_blocks_toggle_the_block_number_like_the_reader():
    card = active()
    assert card.receive(bytes.fromhex("02") + b"\x00\xa4") == bytes.fromhex("02") + b"\x00\xa4\x90\x00"
    assert card.receive(bytes.fromhex("03") + b"\x80") == bytes.fromhex("03") + b"\x80\x90\x00"


def test_a_chained_command_is_acknowledged_then_answered_whole():
    card = active()
    assert card.receive(bytes.fromhex("12") + b"AB") == bytes.fromhex("A2")
    assert card.receive(bytes.fromhex("13") + b"CD") == bytes.fromhex("A3")
    assert card.receive(bytes.fromhex("02") + b"EF") == bytes.fromhex("02") + b"ABCDEF\x90\x00"


def test_a_long_answer_is_chained_within_the_readers_frame_size():
    card = active(lambda apdu: bytes(40) + b"\x90\x00", fsdi=0)  # FSD 16: 13 bytes per block
    blocks = [card.receive(b"\x02\x00")]
    while blocks[-1][0] & 0x10:
        blocks.append(card.receive(bytes((0xA2 | (blocks[-1][0] & 1) ^ 1,))))
    assert [len(b) for b in blocks] == [14, 14, 14, 4]
    assert b"".join(b[1:] for b in blocks) == bytes(40) + b"\x90\x00"
    assert all(len(b) + 2 <= 16 for b in blocks)


def test_an_r_block_with_the_current_number_gets_the_last_block_again():
    card = active()
    answer = card.receive(b"\x02\x01\x02")
    assert card.receive(b"\xb2") == answer  # R(NAK), current number 0 → retransmit
    assert card.receive(b"\xb3") == b"\xa2"  # R(NAK), other number → R(ACK)


def test_waiting_time_extension_before_a_slow_answer():
    card = active(wtx=lambda apdu: 2)
    assert card.receive(b"\x02\x80\x54") == b"\xf2\x01"
    assert card.receive(b"\xf2\x01") == b"\xf2\x01"
    assert card.receive(b"\xf2\x01") == b"\x02\x80\x54\x90\x00"


def test_deselect_ends_the_activation():
    card = active()
    assert card.receive(b"\xc2") == b"\xc2"
    assert card.deselected
    with pytest.raises(IsoDepError):
        card.receive(b"\x02\x00")


def test_blocks_carry_the_cid_the_reader_gave():
    card = active(cid=3)
    assert card.receive(b"\x0a\x03\x00") == b"\x0a\x03\x00\x90\x00"
    with pytest.raises(IsoDepError, match="another CID"):
        card.receive(b"\x0b\x05\x00")


@pytest.mark.parametrize("frame", ["E0", "E08F", "D0", "50"])
def test_bad_frames_are_refused(frame):
    card = IsoDepCard(echo)
    with pytest.raises(IsoDepError):
        card.rats(bytes.fromhex(frame)) if frame.startswith("E0") else card.receive(bytes.fromhex(frame))
