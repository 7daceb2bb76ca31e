"""Hypothesis fuzzing of the secure element with every applet command.

Whatever arrives, the card answers a valid status word, no exception
escapes, no applet bug (6F00) shows, and a refused command changes nothing —
except a wrong terminal MAC, which by design costs exactly one try.
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

KNOWN_INS = [0xA4, 0xB0, 0xB2, 0xD6, 0xDC, 0xE2, 0x50, 0x52, 0x54, 0x5A, 0x5C, 0x84, 0xC0]

structured = st.builds(
    lambda cla, ins, p1, p2, data, ne: CommandAPDU(cla, ins, p1, p2, data, ne=ne).encode(),
    st.sampled_from([0x00, 0x80, 0x84, 0x04, 0x01, 0x40, 0xFF]) | st.integers(0, 255),
    st.sampled_from(KNOWN_INS) | st.integers(0, 255),
    st.sampled_from([0x00, 0x01, 0x02, 0x03, 0x04, 0x95, 0x97, 0x98]) | st.integers(0, 255),
    st.sampled_from([0x00, 0x02, 0x04, 0x0C, 0xB8, 0xBC, 0xC4, 0x06, 0x09]) | st.integers(0, 255),
    st.sampled_from([b"", TRANSIT.aid, CANTEEN.aid, b"\xa0", b"\x00\x15", b"\x00\x18"])
    | st.binary(max_size=64),
    st.none() | st.integers(1, 300),
)
selects = st.sampled_from([TRANSIT.aid, CANTEEN.aid]).map(
    lambda aid: CommandAPDU(0x00, 0xA4, 0x04, 0x00, aid).encode())
commands = st.lists(st.one_of(structured, selects, st.binary(max_size=24)), max_size=12)


def _tries_only(before: dict[str, bytes], after: dict[str, bytes]) -> bool:
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    return all(key.endswith(("/tries/dpk", "/tries/dlk")) for key in changed)


@given(commands)
def test_no_command_sequence_breaks_the_card(sequence):
    band = Band.from_image(_IMAGE)
    for raw in sequence:
        before = band.se.store.snapshot()
        response = ResponseAPDU.parse(band.transmit(raw))
        assert is_valid(response.sw), f"{raw.hex()} -> {response.sw:04X}"
        assert band.se.internal_errors == 0, f"applet bug on {raw.hex()}"
        if response.sw == SW.MAC_INVALID:
            assert _tries_only(before, band.se.store.snapshot())
        elif response.sw != SW.OK:
            assert band.se.store.snapshot() == before, f"{raw.hex()} -> {response.sw:04X} changed state"
    total = sum(card.balance for card in band.cards())
    assert total <= 3000, "no command sequence without the issuer's keys creates money"
