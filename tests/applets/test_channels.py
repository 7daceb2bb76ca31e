"""Logical channels (ISO/IEC 7816-4 5.4.1 and 11.1.2, GPCS 11.1.4, JCRE 4.5-4.6): MANAGE
CHANNEL, a selection per channel, multi-selectable domains and one secure channel each."""

from __future__ import annotations

import random
from typing import Any

import pytest

from applets import iso7816, tlv
from applets.apdu import CommandAPDU, ResponseAPDU
from applets.gp.domain import ISD_AID, SecurityDomain
from applets.gp.keys import KeySet
from applets.iso7816 import CHANNELS, on_channel
from applets.pboc.purse import PbocPurse
from applets.sw import SW
from issuer import gp
from issuer.products import CANTEEN, TRANSIT
from reader import pboc
from reader.flow import Flow
from tests.conftest import make_band
from tests.support.gp import LEVEL, on
from wallet.band import Band

CPLC = iso7816.get_data(0x9F7F)  # the card manager answers it on any channel, no session needed
BALANCE = pboc.get_balance()


def fresh() -> Band:
    band = make_band(TRANSIT, CANTEEN)
    band.power_on()
    return band


def send(band: Band, command: CommandAPDU | str, channel: int | None = None) -> ResponseAPDU:
    if isinstance(command, str):
        raw = bytes.fromhex(command.replace(" ", ""))
    else:
        if channel is not None:
            command = CommandAPDU(on_channel(command.cla, channel), command.ins, command.p1,
                                  command.p2, command.data, command.ne, command.extended)
        raw = command.encode()
    return ResponseAPDU.parse(band.transmit(raw))


def test_the_card_opens_the_lowest_free_channel_and_answers_its_number():
    band = fresh()
    assert send(band, "0070000001") == ResponseAPDU(b"\x01", SW.OK)
    assert send(band, iso7816.manage_channel_open()) == ResponseAPDU(b"\x02", SW.OK)
    assert band.se.open_channels == (0, 1, 2)


def test_a_channel_opened_from_the_basic_one_has_the_card_manager_selected():
    band = fresh()
    send(band, "0070000001")
    assert isinstance(band.se.selected_on(1), SecurityDomain)
    cplc = send(band, CPLC, channel=1)
    assert cplc.sw == SW.OK and cplc.data.startswith(b"\x9f\x7f")


def test_a_select_on_a_channel_selects_there_only():
    band = fresh()
    send(band, "0070000001")
    assert send(band, pboc.select(TRANSIT.aid), channel=1).sw == SW.OK
    assert isinstance(band.se.selected_on(1), PbocPurse)
    assert isinstance(band.se.selected, SecurityDomain)  # the basic channel kept its own
    assert send(band, BALANCE, channel=1) == ResponseAPDU(bytes(4), SW.OK)
    assert send(band, BALANCE).sw == SW.INS_NOT_SUPPORTED  # the card manager has none
    assert send(band, CPLC).sw == SW.OK


def test_two_purses_on_two_channels_each_answer_their_own():
    band = fresh()
    send(band, "0070000001")
    send(band, pboc.select(TRANSIT.aid))
    send(band, pboc.select(CANTEEN.aid), channel=1)
    assert band.se.selected.aid == TRANSIT.aid  # type: ignore[union-attr]
    assert band.se.selected_on(1).aid == CANTEEN.aid  # type: ignore[union-attr]


def test_a_second_selection_of_an_application_that_is_not_multi_selectable_is_6985():
    band = fresh()
    send(band, "0070000001")
    send(band, pboc.select(TRANSIT.aid))
    assert send(band, pboc.select(TRANSIT.aid), channel=1).sw == SW.CONDITIONS_NOT_SATISFIED
    assert isinstance(band.se.selected_on(1), SecurityDomain)  # channel 1 keeps what it had
    assert send(band, pboc.select(TRANSIT.aid)).sw == SW.OK  # reselection on its own channel


def test_opening_from_a_channel_copies_its_application_unless_it_is_not_multi_selectable():
    band = fresh()
    send(band, "0070000001")
    assert send(band, iso7816.manage_channel_open(origin=1)) == ResponseAPDU(b"\x02", SW.OK)
    assert isinstance(band.se.selected_on(2), SecurityDomain)  # multi-selectable: copied
    send(band, pboc.select(TRANSIT.aid), channel=1)
    refused = send(band, iso7816.manage_channel_open(origin=1))
    assert refused.sw == SW.CONDITIONS_NOT_SATISFIED
    assert band.se.open_channels == (0, 1, 2)  # the new channel was closed again


def test_closing_a_channel_and_what_a_closed_channel_answers():
    band = fresh()
    send(band, "0070000001")
    assert send(band, "0070800100").sw == SW.OK  # P2 names the channel, Le ignored
    assert send(band, CPLC, channel=1).sw == SW.LOGICAL_CHANNEL_NOT_SUPPORTED
    assert send(band, pboc.select(TRANSIT.aid), channel=1).sw == SW.LOGICAL_CHANNEL_NOT_SUPPORTED
    assert send(band, "00708001").sw == SW.WARNING_NO_INFORMATION  # closed already (JCRE: 6200)
    assert send(band, "02A4040000").sw == SW.LOGICAL_CHANNEL_NOT_SUPPORTED  # never opened
    assert send(band, "01700000 01").sw == SW.LOGICAL_CHANNEL_NOT_SUPPORTED  # from a closed one


def test_closing_deselects_and_the_application_may_be_selected_elsewhere_again():
    band = fresh()
    send(band, "0070000001")
    send(band, pboc.select(TRANSIT.aid), channel=1)
    send(band, "00708001")
    assert send(band, pboc.select(TRANSIT.aid)).sw == SW.OK


@pytest.mark.parametrize(("raw", "sw"), [
    ("00708000", SW.FUNCTION_NOT_SUPPORTED),  # the basic channel never closes
    ("00700014", SW.FUNCTION_NOT_SUPPORTED),  # 20: there are 20 channels, 0 to 19
    ("00704000", SW.FUNCTION_NOT_SUPPORTED),  # P1 neither open nor close
    ("00700000", 0x6C01),  # the card picks: Le must be 01
    ("0070000002", 0x6C01),
    ("0C70000001", SW.SECURE_MESSAGING_NOT_SUPPORTED),
    ("6070000001", SW.SECURE_MESSAGING_NOT_SUPPORTED),  # further class, b6: SM
    ("007000000101", SW.WRONG_LENGTH),  # a data field
])
def test_manage_channel_refusals(raw, sw):
    assert send(fresh(), raw).sw == sw


def test_opening_a_given_channel_and_one_already_open():
    band = fresh()
    assert send(band, "00700003") == ResponseAPDU(b"", SW.OK)
    assert send(band, "00700003").sw == SW.INCORRECT_P1_P2
    assert band.se.open_channels == (0, 3)


def test_every_channel_up_to_19_in_the_further_class_then_none_left():
    band = fresh()
    for number in range(1, CHANNELS):
        assert send(band, "0070000001") == ResponseAPDU(bytes((number,)), SW.OK)
    assert send(band, "0070000001").sw == SW.FUNCTION_NOT_SUPPORTED
    for number, cla in ((4, 0xC0), (19, 0xCF), (3, 0x83)):  # GP's classes: Cx, further
        response = send(band, f"{cla:02X}CA9F7F00")
        assert response.sw == SW.OK, number
    assert send(band, pboc.select(TRANSIT.aid), channel=19).sw == SW.OK
    assert isinstance(band.se.selected_on(19), PbocPurse)
    assert send(band, "CF5C000204") == ResponseAPDU(bytes(4), SW.OK)  # CF: GP class, channel 19
    assert send(band, "00708013").sw == SW.OK


def test_a_reset_closes_every_channel_but_the_basic_one_and_writes_nothing():
    band = fresh()
    writes = band.se.store.writes
    send(band, "0070000001")
    send(band, pboc.select(TRANSIT.aid), channel=1)
    send(band, "00708001")
    send(band, "0070000001")
    assert band.se.store.writes == writes  # channel state is RAM
    band.power_on()
    assert band.se.open_channels == (0,)
    assert send(band, CPLC, channel=1).sw == SW.LOGICAL_CHANNEL_NOT_SUPPORTED


def test_get_response_belongs_to_the_channel_of_the_answer():
    band = fresh()
    send(band, "0070000001")
    first = send(band, CommandAPDU(0x01, 0xA4, 0x04, 0x00, TRANSIT.aid, ne=0x10))  # case 4
    assert first.sw >> 8 == 0x61 and len(first.data) == 0x10
    assert send(band, iso7816.get_response(first.sw & 0xFF)).sw == SW.CONDITIONS_NOT_SATISFIED
    again = send(band, CommandAPDU(0x01, 0xA4, 0x04, 0x00, TRANSIT.aid, ne=0x10))
    rest = send(band, iso7816.get_response(again.sw & 0xFF, channel=1))
    assert rest.sw == SW.OK
    assert tlv.find(again.data + rest.data, 0x84) == TRANSIT.aid


def test_a_deleted_application_leaves_every_channel_it_was_selected_on():
    band = fresh()
    send(band, "0070000001")
    send(band, pboc.select(TRANSIT.aid), channel=1)
    band.se.delete(TRANSIT.aid)
    band.se.store.commit()
    assert band.se.selected_on(1) is None
    assert send(band, BALANCE, channel=1).sw == SW.CONDITIONS_NOT_SATISFIED


# -- a secure channel session per logical channel ----------------------------------------


def on_logical_channel(flow: Flow[Any], channel: int) -> Flow[Any]:
    """``flow`` with every command moved to logical ``channel``: the C-MAC stays right, as it
    covers the class byte with the channel number zero (GP Amendment D 6.2.4)."""
    try:
        command = next(flow)
        while True:
            moved = CommandAPDU(on_channel(command.cla, channel), command.ins, command.p1,
                                command.p2, command.data, command.ne, command.extended)
            command = flow.send((yield moved))
    except StopIteration as done:
        return done.value


def test_the_card_manager_keeps_one_secure_channel_per_logical_channel():
    band = make_band(TRANSIT)
    keys = KeySet.test_keys()

    def both() -> Flow[Any]:
        opened = yield iso7816.manage_channel_open()
        assert opened.data == b"\x01"
        basic = yield from gp.open_channel(keys, LEVEL, random.Random(1).randbytes)
        other = yield from on_logical_channel(
            gp.open_channel(keys, LEVEL, random.Random(2).randbytes), 1)
        listings = []
        for channel, host in ((0, basic), (1, other), (0, basic), (1, other)):
            rows = yield from on_logical_channel(gp.status(host, 0x80), channel)
            listings.append([r.aid for r in rows])
        wrapped = basic.wrap(gp.get_status(0x80))  # channel 0's C-MAC, sent on channel 1
        crossed = yield CommandAPDU(on_channel(wrapped.cla, 1), wrapped.ins, wrapped.p1,
                                    wrapped.p2, wrapped.data, wrapped.ne)
        return listings, crossed

    listings, crossed = on(band, both())
    assert listings == [[ISD_AID]] * 4
    assert crossed.sw == SW.SECURITY_STATUS_NOT_SATISFIED


def test_closing_a_channel_ends_its_secure_channel_only():
    band = make_band(TRANSIT)
    keys = KeySet.test_keys()

    def flow() -> Flow[Any]:
        yield iso7816.manage_channel_open()
        basic = yield from gp.open_channel(keys, LEVEL, random.Random(1).randbytes)
        other = yield from on_logical_channel(
            gp.open_channel(keys, LEVEL, random.Random(2).randbytes), 1)
        yield iso7816.manage_channel_close(1)
        yield iso7816.manage_channel_open()
        closed = yield from on_logical_channel(other.transmit(gp.get_status(0x80)), 1)
        still = yield from gp.status(basic, 0x80)
        return closed, still

    closed, still = on(band, flow())
    assert closed.sw == SW.SECURITY_STATUS_NOT_SATISFIED
    assert [r.aid for r in still] == [ISD_AID]
