from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from applets.apdu import CommandAPDU, MalformedAPDU, ResponseAPDU
from applets.sw import SW

CASES = [
    # (hex, case, Nc, Ne, extended)
    ("00A40400", 1, 0, None, False),
    ("805C000204", 2, 0, 4, False),
    ("00B0950000", 2, 0, 256, False),
    ("00A4040008A000000632010105", 3, 8, None, False),
    ("00A4040008A00000063201010500", 4, 8, 256, False),
    ("00B00000000100", 2, 0, 256, True),
    ("00B00000000000", 2, 0, 65536, True),
    ("00D60000000003AABBCC", 3, 3, None, True),
    ("00D60000000003AABBCC0000", 4, 3, 65536, True),
    ("00D60000000003AABBCC0102", 4, 3, 258, True),
]


@pytest.mark.parametrize(("raw", "case", "nc", "ne", "extended"), CASES)
def test_every_case_parses_and_encodes_back(raw, case, nc, ne, extended):
    apdu = CommandAPDU.parse(bytes.fromhex(raw))
    assert (apdu.case, len(apdu.data), apdu.ne, apdu.extended) == (case, nc, ne, extended)
    assert apdu.encode() == bytes.fromhex(raw)


@pytest.mark.parametrize("raw", [
    "", "00", "00A404",                # fewer than 4 bytes
    "00A4040008A0000006",            # Lc larger than the data
    "00A4040002A0000006",            # Lc smaller, with more than one trailing byte
    "00B000000001",                  # extended length truncated
    "00D6000000000000",              # extended Lc of zero
    "00D60000000005AABBCC",          # extended Lc mismatch
])
def test_inconsistent_lengths_are_wrong_length(raw):
    with pytest.raises(MalformedAPDU) as error:
        CommandAPDU.parse(bytes.fromhex(raw))
    assert error.value.sw == SW.WRONG_LENGTH


def test_large_commands_encode_extended():
    apdu = CommandAPDU(0x00, 0xD6, 0, 0, bytes(300), ne=512)
    raw = apdu.encode()
    assert raw[4:7] == b"\x00\x01\x2c" and raw[-2:] == b"\x02\x00"
    assert CommandAPDU.parse(raw) == CommandAPDU(0x00, 0xD6, 0, 0, bytes(300), ne=512, extended=True)


def test_header_bytes_are_checked():
    with pytest.raises(ValueError, match="one byte"):
        CommandAPDU(0x100, 0, 0, 0)


@given(st.binary(max_size=300))
def test_parser_accepts_or_refuses_with_6700_only(raw):
    try:
        apdu = CommandAPDU.parse(raw)
    except MalformedAPDU as error:
        assert error.sw == SW.WRONG_LENGTH
        assert 0 <= error.offset <= len(raw)
    else:
        assert apdu.encode() == raw or (apdu.ne in (256, 65536) and len(apdu.encode()) == len(raw))


@given(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=600),
       st.one_of(st.none(), st.integers(1, 65536)))
def test_encode_then_parse_is_identity(ins, p1, data, ne):
    apdu = CommandAPDU(0x80, ins, p1, 0, data, ne=ne)
    parsed = CommandAPDU.parse(apdu.encode())
    assert (parsed.data, parsed.ne, parsed.ins, parsed.p1) == (data, ne, ins, p1)


def test_response_split():
    assert ResponseAPDU.parse(bytes.fromhex("01029000")) == ResponseAPDU(b"\x01\x02", 0x9000)
    with pytest.raises(ValueError, match="at least 2 bytes"):
        ResponseAPDU.parse(b"\x90")
