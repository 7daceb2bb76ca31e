"""pcapng blocks, byte for byte, and read back by a reader written here from the layout of
draft-ietf-opsawg-pcapng (4.1 SHB, 4.2 IDB, 4.3 EPB, 3.5 options)."""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reader.pcapng import (
    LINKTYPE_ISO_14443,
    Direction,
    Iso14443Event,
    PcapngWriter,
    enhanced_packet,
    interface_description,
    iso14443_packet,
    option,
    section_header,
)

# A section with no options, the ISO 14443 interface at microseconds, and one "field on"
# packet at 2**32 + 2 us, each block laid out by hand from the draft.
TINY = bytes.fromhex(
    "0A0D0D0A" "1C000000" "4D3C2B1A" "0100" "0000" "FFFFFFFFFFFFFFFF" "1C000000"  # SHB
    "01000000" "20000000" "0801" "0000" "00000000"  # IDB: link type 264, no snap length
    "0900" "0100" "06000000" "0000" "0000" "20000000"  # if_tsresol 6, opt_endofopt
    "06000000" "24000000" "00000000" "01000000" "02000000" "04000000" "04000000"  # EPB
    "00FC0000" "24000000")  # version 0, FIELD ON, no data; the block's length again


def test_a_tiny_file_byte_for_byte():
    made = (section_header() + interface_description(LINKTYPE_ISO_14443)
            + enhanced_packet((1 << 32) + 2, iso14443_packet(Iso14443Event.FIELD_ON)))
    assert made == TINY


def test_options_are_padded_to_32_bits_and_packets_carry_their_direction():
    assert option(1, b"abcde") == bytes.fromhex("01000500") + b"abcde\0\0\0"
    block = enhanced_packet(0, b"\x00\xfe\x00\x01\x26", direction=Direction.OUTBOUND)
    # 28 bytes of header and 8 of padded data, epb_flags (outbound = 2), opt_endofopt
    assert block[36:48] == bytes.fromhex("0200" "0400" "02000000" "00000000")
    assert len(block) % 4 == 0 and block[4:8] == block[-4:]


def test_the_iso14443_pseudo_header():
    assert iso14443_packet(Iso14443Event.PCD_TO_PICC, b"\x26") == bytes.fromhex("00FE000126")
    assert iso14443_packet(Iso14443Event.PICC_TO_PCD, b"\x44\x00") == bytes.fromhex("00FF00024400")
    with pytest.raises(ValueError, match="carries no data"):
        iso14443_packet(Iso14443Event.FIELD_OFF, b"\x00")
    with pytest.raises(ValueError, match="carries a frame"):
        iso14443_packet(Iso14443Event.PCD_TO_PICC)


def test_a_time_stamp_is_64_bits_of_microseconds():
    with pytest.raises(ValueError, match="outside"):
        enhanced_packet(-1, b"")
    with pytest.raises(ValueError, match="outside"):
        enhanced_packet(1 << 64, b"")


# --- a minimal reader -------------------------------------------------------------------


@dataclass
class Read:
    comment: str | None = None
    application: str | None = None
    linktype: int | None = None
    tsresol: int | None = None
    packets: list[tuple[int, bytes, int]] = field(default_factory=list)


def _options(data: bytes) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    offset = 0
    while offset < len(data):
        code, length = struct.unpack_from("<HH", data, offset)
        offset += 4
        if code == 0:
            assert length == 0 and offset == len(data), "opt_endofopt ends the options"
            return found
        found[code] = data[offset:offset + length]
        offset += length + (-length % 4)
    assert not found, "options that do not end in opt_endofopt"
    return found


def read(data: bytes) -> Read:
    got, offset = Read(), 0
    while offset < len(data):
        kind, total = struct.unpack_from("<II", data, offset)
        assert total % 4 == 0 and total >= 12
        assert struct.unpack_from("<I", data, offset + total - 4)[0] == total, "trailing length"
        body = data[offset + 8:offset + total - 4]
        if kind == 0x0A0D0D0A:
            magic, major, minor, length = struct.unpack_from("<IHHq", body)
            assert (magic, major, minor, length) == (0x1A2B3C4D, 1, 0, -1)
            options = _options(body[16:])
            got.comment = options[1].decode() if 1 in options else None
            got.application = options[4].decode() if 4 in options else None
        elif kind == 1:
            got.linktype, reserved, snaplen = struct.unpack_from("<HHI", body)
            assert reserved == 0 and snaplen == 0
            got.tsresol = _options(body[8:])[9][0]
        elif kind == 6:
            interface, high, low, captured, original = struct.unpack_from("<IIIII", body)
            assert interface == 0 and captured == original
            packet = body[20:20 + captured]
            options = _options(body[20 + captured + (-captured % 4):])
            flags = struct.unpack("<I", options[2])[0] if 2 in options else 0
            got.packets.append(((high << 32) | low, packet, flags))
        else:
            pytest.fail(f"unexpected block type {kind:08X}")
        offset += total
    return got


texts = st.none() | st.text(max_size=40)
packets = st.lists(st.tuples(st.integers(0, (1 << 64) - 1), st.binary(max_size=300),
                             st.sampled_from(Direction)), max_size=8)


@given(comment=texts, application=texts, written=packets)
def test_what_is_written_reads_back(comment, application, written):
    sink = io.BytesIO()
    writer = PcapngWriter(sink, LINKTYPE_ISO_14443, application=application, comment=comment)
    for timestamp, data, direction in written:
        writer.packet(timestamp, data, direction)
    got = read(sink.getvalue())
    assert (got.comment, got.application) == (comment, application)
    assert (got.linktype, got.tsresol) == (LINKTYPE_ISO_14443, 6)
    assert got.packets == [(t, d, int(direction)) for t, d, direction in written]
    assert writer.packets == len(written)
