from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from applets import tlv


def test_nested_fci_is_found_depth_first():
    fci = tlv.constructed(0x6F, tlv.encode(0x84, b"\xa0\x00"),
                          tlv.encode(0xA5, tlv.encode(0x9F0C, b"\x01" * 30)))
    assert fci.hex().upper().startswith("6F278402A000A5219F0C1E")
    assert tlv.find(fci, 0x9F0C) == b"\x01" * 30
    assert tlv.find(fci, 0x50) is None


@pytest.mark.parametrize(("n", "encoded"), [(0, "00"), (127, "7F"), (128, "8180"),
                                            (255, "81FF"), (256, "820100"), (65536, "83010000")])
def test_length_forms(n, encoded):
    assert tlv.encode_length(n).hex().upper() == encoded


@pytest.mark.parametrize(("raw", "offset"), [
    ("9F", 1),          # truncated multi-byte tag
    ("84", 1),          # missing length
    ("8405A0", 2),      # value runs past the end
    ("848401", 1),      # 4-byte length form unsupported... and truncated
])
def test_malformed_input_reports_offset(raw, offset):
    with pytest.raises(tlv.TLVError) as error:
        tlv.decode(bytes.fromhex(raw))
    assert error.value.offset == offset


def test_padding_between_objects_is_skipped():
    assert tlv.decode(bytes.fromhex("00840100FF")) == [tlv.TLV(0x84, b"\x00")]


@given(st.lists(st.tuples(st.sampled_from([0x84, 0x9F0C, 0x5F2D, 0xBF0C, 0x50]),
                          st.binary(max_size=300)), max_size=5))
def test_encode_decode_round_trip(items):
    encoded = b"".join(tlv.encode(tag, value) for tag, value in items)
    assert [(t.tag, t.value) for t in tlv.decode(encoded)] == items


@given(st.binary(max_size=64))
def test_decoder_never_fails_other_than_tlverror(raw):
    with contextlib.suppress(tlv.TLVError):
        tlv.decode(raw)
