"""Answers longer than Ne (ISO/IEC 7816-4 5.1.3): 61xx and GET RESPONSE, 6Cxx for a wrong Le,
extended Le for the whole; and the default selection of the Issuer Security Domain."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from applets import iso7816, selection, tlv
from applets.apdu import CommandAPDU, ResponseAPDU
from applets.gp.domain import ISD_AID, SecurityDomain
from applets.iso7816 import Ins
from applets.runtime import Applet, Reply, SecureElement
from applets.store import Store
from applets.sw import SW, is_valid
from issuer.products import TRANSIT
from tests.conftest import make_band, seeded

BIG_AID = bytes.fromhex("F000000000BB01")
INS_ANSWER, INS_WARN, INS_BAD = 0x01, 0x03, 0x05


class Big(Applet):
    """Answers P1 P2 bytes (a counting pattern) and counts the answers it gave in a cell, so a
    test can see whether the command's writes stood."""

    def select(self, apdu: CommandAPDU) -> bytes:
        return b"\x6f\x00"

    def process(self, apdu: CommandAPDU) -> Reply:
        n = apdu.p1 << 8 | apdu.p2
        self._put("answers", bytes((((self._get("answers") or b"\x00")[0] + 1) & 0xFF,)))
        data = bytes(i & 0xFF for i in range(n))
        if apdu.ins == INS_WARN:
            return ResponseAPDU(data, SW.MORE_DATA_AVAILABLE)
        if apdu.ins == INS_BAD:
            return ResponseAPDU(data, SW.WRONG_DATA)  # an applet bug: errors are raised
        return data


def card() -> SecureElement:
    se = SecureElement(Store(), seeded(), {"big": Big})
    se.install(BIG_AID, "big")
    se.store.commit()
    se.power_on()
    assert se.transmit(selection.select(BIG_AID).encode())[-2:] == b"\x90\x00"
    return se


def send(se: SecureElement, command: CommandAPDU | str) -> ResponseAPDU:
    raw = bytes.fromhex(command) if isinstance(command, str) else command.encode()
    return ResponseAPDU.parse(se.transmit(raw))


def answers(se: SecureElement) -> int:
    return (se.store.get(f"app/{BIG_AID.hex().upper()}/answers") or b"\x00")[0]


def pattern(n: int) -> bytes:
    return bytes(i & 0xFF for i in range(n))


def ask(n: int, ne: int | None = 256, data: bytes = b"", ins: int = INS_ANSWER,
        extended: bool = False) -> CommandAPDU:
    return CommandAPDU(0x80, ins, n >> 8, n & 0xFF, data, ne=ne, extended=extended)


def test_an_answer_over_256_bytes_comes_in_parts_through_get_response():
    se = card()
    first = send(se, ask(300))  # 80 01 01 2C 00: Le 00 is 256
    assert (len(first.data), first.sw) == (256, 0x612C)
    rest = send(se, iso7816.get_response(0x2C))
    assert (rest.data, rest.sw) == (pattern(300)[256:], SW.OK)
    assert first.data + rest.data == pattern(300)
    assert answers(se) == 1  # the command ran once and its writes stood


def test_get_response_hands_out_any_chunk_size_and_counts_down():
    se = card()
    got, response = b"", send(se, ask(600))
    got += response.data
    seen = [response.sw]
    while response.sw >> 8 == 0x61:
        response = send(se, iso7816.get_response(0x40))
        got += response.data
        seen.append(response.sw)
    assert got == pattern(600)
    assert seen[0] == 0x6100  # 344 left: 61 00 says 256 or more
    assert seen[1:4] == [0x6100, 0x61D8, 0x6198] and seen[-1] == SW.OK


def test_a_short_le_too_small_for_a_case_2_answer_is_6cxx_and_nothing_stands():
    se = card()
    assert send(se, ask(0x40, ne=0x10)).sw == 0x6C40
    assert answers(se) == 0  # 6Cxx: the terminal sends the command again, with Le=40
    again = send(se, ask(0x40, ne=0x40))
    assert (again.data, again.sw) == (pattern(0x40), SW.OK)
    assert answers(se) == 1


def test_a_case_4_command_answers_its_first_ne_bytes_and_61xx_never_6cxx():
    se = card()
    first = send(se, ask(0x40, ne=0x10, data=b"\x01"))  # case 4: it ran, its writes stand
    assert (first.data, first.sw) == (pattern(0x10), 0x6130)
    assert answers(se) == 1
    rest = send(se, iso7816.get_response(0x30))
    assert (rest.data, rest.sw) == (pattern(0x40)[0x10:], SW.OK)


def test_an_extended_le_gets_the_whole_answer_at_once():
    se = card()
    whole = send(se, ask(1000, ne=1000, extended=True))
    assert (whole.data, whole.sw) == (pattern(1000), SW.OK)
    part = send(se, ask(1000, ne=700, extended=True))
    assert (len(part.data), part.sw) == (700, 0x6100)


def test_no_le_answers_up_to_256_bytes_then_in_parts():
    se = card()
    assert send(se, ask(200, ne=None)) == ResponseAPDU(pattern(200), SW.OK)
    first = send(se, ask(260, ne=None, data=b"\x01"))
    assert (len(first.data), first.sw) == (256, 0x6104)


def test_a_warning_comes_with_the_last_part():
    se = card()
    first = send(se, ask(300, ins=INS_WARN))
    assert first.sw == 0x612C
    assert send(se, iso7816.get_response()).sw == SW.MORE_DATA_AVAILABLE
    assert answers(se) == 1  # a warning's writes stand


def test_an_applet_answering_an_error_instead_of_raising_is_a_bug_not_an_answer():
    se = card()
    assert send(se, ask(4, ins=INS_BAD)).sw == SW.UNKNOWN
    assert se.internal_errors == 1 and answers(se) == 0


@pytest.mark.parametrize(("between", "sw"), [
    ("80010004 00", SW.CONDITIONS_NOT_SATISFIED),  # any other command drops the rest
    ("00C0000100", SW.INCORRECT_P1_P2),
    ("00C00000 01 00", SW.WRONG_LENGTH),
])
def test_get_response_refusals(between, sw):
    se = card()
    send(se, ask(300))
    first = send(se, between.replace(" ", ""))
    assert first.sw in (sw, SW.OK)
    assert send(se, iso7816.get_response()).sw == SW.CONDITIONS_NOT_SATISFIED


def test_get_response_with_nothing_waiting_or_after_a_reset():
    se = card()
    assert send(se, iso7816.get_response()).sw == SW.CONDITIONS_NOT_SATISFIED
    send(se, ask(300))
    se.power_on()  # the rest lived in RAM
    assert send(se, iso7816.get_response()).sw == SW.CONDITIONS_NOT_SATISFIED


def test_no_answer_is_6cxx_in_a_loop_any_more():
    """The bug this replaces: answers over 256 bytes were 6Cxx whatever Le said, so a
    terminal that obeyed sent the same command for ever."""
    se = card()
    for le in (0x00, 0x2C):
        response = send(se, ask(300, ne=le or 256))
        assert response.sw >> 8 != 0x6C


# -- the default selection (GPCS 11.9.2.2) ------------------------------------------------


@pytest.mark.parametrize("raw", ["00A4040000", "00A40400"])
def test_select_with_no_name_selects_the_issuer_security_domain(raw):
    band = make_band(TRANSIT)
    band.power_on()
    assert band.transmit(selection.select(TRANSIT.aid).encode())[-2:] == b"\x90\x00"
    response = ResponseAPDU.parse(band.transmit(bytes.fromhex(raw)))
    assert response.sw == SW.OK
    assert tlv.find(response.data, 0x84) == ISD_AID  # the ISD's FCI
    assert tlv.find(response.data, 0x73) is not None  # with its card recognition data
    assert isinstance(band.se.selected, SecurityDomain)


def test_select_with_no_name_and_no_fci_and_with_a_short_le():
    band = make_band(TRANSIT)
    band.power_on()
    assert band.transmit(bytes.fromhex("00A4040C")) == b"\x90\x00"
    fci = ResponseAPDU.parse(band.transmit(bytes.fromhex("00A4040000"))).data
    assert band.transmit(bytes.fromhex("00A4040010")) == bytes((0x6C, len(fci)))  # case 2
    assert band.transmit(bytes.fromhex("00A40400") + bytes((len(fci),))) == fci + b"\x90\x00"


def test_select_with_no_name_next_occurrence_walks_the_applications():
    band = make_band(TRANSIT)
    band.power_on()
    band.transmit(bytes.fromhex("00A4040000"))
    response = ResponseAPDU.parse(band.transmit(bytes.fromhex("00A4040200")))
    assert response.sw == SW.OK and tlv.find(response.data, 0x84) == TRANSIT.aid


# -- nothing escapes as 6F00 --------------------------------------------------------------

channel_cla = st.sampled_from([0x00, 0x01, 0x03, 0x40, 0x4F, 0x0C, 0x80, 0x84, 0x81, 0xC0, 0xE3])
commands = st.builds(
    lambda cla, ins, p1, p2, data, ne, extended: CommandAPDU(
        cla, ins, p1, p2, data, ne=ne, extended=extended).encode(),
    channel_cla | st.integers(0, 0xFE),
    st.sampled_from([Ins.GET_RESPONSE, Ins.MANAGE_CHANNEL, Ins.SELECT, INS_ANSWER, INS_WARN]),
    st.sampled_from([0x00, 0x01, 0x04, 0x80]) | st.integers(0, 255),
    st.sampled_from([0x00, 0x01, 0x02, 0x0C, 0x13, 0x14]) | st.integers(0, 255),
    st.sampled_from([b"", BIG_AID, b"\x01"]) | st.binary(max_size=20),
    st.none() | st.integers(1, 256) | st.just(1),
    st.booleans(),
)


@given(st.lists(commands, max_size=20))
def test_get_response_and_manage_channel_never_escape_as_6f00(sequence):
    se = card()
    for raw in sequence:
        response = ResponseAPDU.parse(se.transmit(raw))
        assert is_valid(response.sw)  # 61xx included
        assert se.internal_errors == 0, raw.hex()
