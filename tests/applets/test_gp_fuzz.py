"""Hypothesis against the card manager: nothing escapes, nothing changes without a channel.

Without the keys the only cells a command may touch are a domain's sequence
counter (every INITIALIZE UPDATE spends a challenge), its count of failed
authentications, and a purse's count of wrong terminal MACs.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from applets.apdu import CommandAPDU, ResponseAPDU
from applets.gp.domain import ISD_AID
from applets.sw import is_valid
from issuer.products import TRANSIT
from tests.conftest import make_band
from wallet.band import Band

_IMAGE = make_band(TRANSIT).to_image()
ALLOWED = ("/seq", "/auth-failures", "/tries/dpk", "/tries/dlk")  # purse MAC tries too

GP_INS = [0x50, 0x82, 0xCA, 0xCB, 0xE6, 0xE4, 0xF2, 0xF0, 0xD8, 0xE2, 0xA4,
          0x70, 0xC0]  # MANAGE CHANNEL and GET RESPONSE: the runtime's own
commands = st.builds(
    lambda cla, ins, p1, p2, data, ne: CommandAPDU(cla, ins, p1, p2, data, ne=ne).encode(),
    st.sampled_from([0x80, 0x84, 0x00, 0x04, 0x01, 0x81, 0x85, 0x40, 0xC3, 0xE3])
    | st.integers(0, 255),
    st.sampled_from(GP_INS) | st.integers(0, 255),
    st.sampled_from([0x00, 0x04, 0x0C, 0x20, 0x40, 0x60, 0x80, 0x9F, 0xFF]) | st.integers(0, 255),
    st.sampled_from([0x00, 0x01, 0x02, 0x03, 0x7F, 0x80, 0x81, 0xE0, 0x66]) | st.integers(0, 255),
    st.sampled_from([b"", ISD_AID, TRANSIT.aid, bytes(8), bytes(16), b"\x4f\x00", b"\x4f\x0d"])
    | st.binary(max_size=80),
    st.none() | st.just(256) | st.just(1) | st.just(0x10),
)


@given(st.lists(st.one_of(commands, st.binary(max_size=30)), max_size=15))
def test_no_command_changes_the_card_without_the_keys(sequence):
    band = Band.from_image(_IMAGE)
    before = band.se.store.snapshot()
    for raw in sequence:
        response = ResponseAPDU.parse(band.transmit(raw))
        assert is_valid(response.sw)
        assert band.se.internal_errors == 0, f"applet bug on {raw.hex()}"
    after = band.se.store.snapshot()
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert all(key.endswith(ALLOWED) for key in changed), changed
