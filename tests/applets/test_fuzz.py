"""Hypothesis fuzzing of the secure element with every applet command.

Whatever arrives, the card answers a valid status word, no exception
escapes, no applet bug (6F00) shows, and a refused command changes nothing —
except a wrong terminal MAC or a wrong PIN, which by design cost exactly one
try.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from applets.apdu import CommandAPDU, ResponseAPDU
from applets.sw import SW, is_valid
from issuer.products import CANTEEN, TRANSIT
from tests.conftest import make_band
from tests.support.purse import load, send
from wallet.band import Band

_TEMPLATE = make_band(TRANSIT, CANTEEN)
_TEMPLATE.power_on()
send(_TEMPLATE, "00A4040008" + TRANSIT.aid.hex())
load(_TEMPLATE, 3000)
_IMAGE = _TEMPLATE.to_image()

KNOWN_INS = [0xA4, 0xB0, 0xB2, 0xD6, 0xDC, 0xE2, 0x50, 0x52, 0x54, 0x5A, 0x5C, 0x84, 0xC0,
             0x20, 0x5E]

structured = st.builds(
    lambda cla, ins, p1, p2, data, ne: CommandAPDU(cla, ins, p1, p2, data, ne=ne).encode(),
    st.sampled_from([0x00, 0x80, 0x84, 0x04, 0x01, 0x40, 0xFF]) | st.integers(0, 255),
    st.sampled_from(KNOWN_INS) | st.integers(0, 255),
    st.sampled_from([0x00, 0x01, 0x02, 0x03, 0x04, 0x08, 0x09, 0x95, 0x97, 0x98])
    | st.integers(0, 255),
    st.sampled_from([0x00, 0x02, 0x04, 0x08, 0x0C, 0xB8, 0xBC, 0xC4, 0x06, 0x09])
    | st.integers(0, 255),
    st.sampled_from([b"", TRANSIT.aid, CANTEEN.aid, b"\xa0", b"\x00\x15", b"\x00\x18",
                     b"\x3f\x00", b"\x10\x01", b"\x10\x02", b"\x10\x01\x00\x15",
                     b"\x3f\x00\x10\x02\x00\x17", b"\x12\x34\x56", b"\x11\x11\x11",
                     b"\x12\x34\x56\xff\x24\x68"])
    | st.binary(max_size=64),
    st.none() | st.integers(1, 300),
)
selects = st.sampled_from([TRANSIT.aid, CANTEEN.aid]).map(
    lambda aid: CommandAPDU(0x00, 0xA4, 0x04, 0x00, aid).encode()) | st.sampled_from(
    [bytes.fromhex(raw) for raw in ("00A40000023F00", "00A4000002100100", "00A4000002100200",
                                    "00A40000020015", "00A4000000", "00A4000C023F00",
                                    "00A40800041001001800", "00A4030000")])
commands = st.lists(st.one_of(structured, selects, st.binary(max_size=24)), max_size=12)


def _tries_only(before: dict[str, bytes], after: dict[str, bytes], *counters: str) -> bool:
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    return all(key.endswith(counters) for key in changed)


@given(commands)
def test_no_command_sequence_breaks_the_card(sequence):
    band = Band.from_image(_IMAGE)
    for raw in sequence:
        before = band.se.store.snapshot()
        response = ResponseAPDU.parse(band.transmit(raw))
        assert is_valid(response.sw), f"{raw.hex()} -> {response.sw:04X}"
        assert band.se.internal_errors == 0, f"applet bug on {raw.hex()}"
        if response.sw == SW.MAC_INVALID:
            assert _tries_only(before, band.se.store.snapshot(), "/tries/dpk", "/tries/dlk")
        elif response.sw & 0xFFF0 == 0x63C0:  # a wrong PIN
            assert _tries_only(before, band.se.store.snapshot(), "/tries/pin")
        elif response.sw != SW.OK:
            assert band.se.store.snapshot() == before, f"{raw.hex()} -> {response.sw:04X} changed state"
    total = sum(card.balance for card in band.cards())
    assert total <= 3000, "no command sequence without the issuer's keys creates money"


# -- the file tree, the PIN and the challenge: any header, any data --------------------------

_STARTS = [b"", bytes.fromhex("00A4040008") + TRANSIT.aid, bytes.fromhex("00A40000023F00"),
           bytes.fromhex("00A40000020018")]
new_commands = st.builds(
    lambda cla, ins, p1, p2, data, ne: CommandAPDU(cla, ins, p1, p2, data, ne=ne).encode(),
    st.sampled_from([0x00, 0x80, 0x04, 0x0C]),
    st.sampled_from([0xA4, 0x20, 0x84, 0x5E, 0xB0, 0xB2]),
    st.integers(0, 255), st.integers(0, 255),
    st.binary(max_size=12) | st.lists(st.sampled_from([b"\x3f\x00", b"\x10\x01", b"\x10\x02",
                                                       b"\x00\x15", b"\x00\x18", b"\xff"]),
                                      max_size=4).map(b"".join),
    st.none() | st.integers(1, 256),
)


@given(st.sampled_from(_STARTS), st.lists(new_commands, min_size=1, max_size=8))
def test_select_by_identifier_verify_and_challenge_never_fail_inside(start, sequence):
    band = Band.from_image(_IMAGE)
    if start:
        band.transmit(start)
    for raw in sequence:
        sw = ResponseAPDU.parse(band.transmit(raw)).sw
        assert is_valid(sw) and sw != SW.UNKNOWN, f"{raw.hex()} -> {sw:04X}"
        assert band.se.internal_errors == 0, f"applet bug on {raw.hex()}"
