"""GET STATUS as GPCS 11.4 has it: paging with 6310 and the next occurrences, the GP 2.1.1
format beside the tagged one, and search criteria that do not decode."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from applets import tlv
from applets.apdu import CommandAPDU, ResponseAPDU
from applets.errors import CardError
from applets.gp import status
from applets.gp.channel import Level
from applets.gp.domain import ISD_AID, ISD_PRIVILEGES
from applets.gp.keys import KeySet
from applets.gp.loadfiles import LOAD_FILES
from applets.iso7816 import CLA_PROPRIETARY, Ins
from applets.sw import SW, is_valid
from issuer import gp
from issuer.products import CANTEEN, TRANSIT
from reader.flow import Flow
from tests.support.gp import CANTEEN_SSD_AID, LEVEL, SSD_AID, full_band, on, session

KEYS = KeySet.test_keys()
EVERYTHING_BUT_THE_ISD = 7  # PPSE, e-cash, door card, 2 operator domains, 2 purses


def raw_status(p1: int, p2: int, data: bytes = b"\x4f\x00", ne: int | None = 256) -> CommandAPDU:
    return CommandAPDU(CLA_PROPRIETARY, Ins.GET_STATUS, p1, p2, data, ne=ne)


def exchanges(command: CommandAPDU, level: Level = LEVEL,
              follow: bool = True) -> list[tuple[CommandAPDU, ResponseAPDU, ResponseAPDU]]:
    """``command`` to the card manager of a full band, then the next occurrences while the
    card says 6310: (wrapped command, answer on the wire, answer unwrapped) each."""

    def body(channel: gp.HostChannel) -> Flow[Any]:
        seen = []
        current = command
        while True:
            wrapped = channel.wrap(current)
            wire = yield wrapped
            answer = channel.unwrap(wire)
            seen.append((wrapped, wire, answer))
            if not follow or answer.sw != SW.MORE_DATA_AVAILABLE:
                return seen
            current = CommandAPDU(current.cla, current.ins, current.p1, current.p2 | 0x01,
                                  current.data, current.ne)

    seen: list[tuple[CommandAPDU, ResponseAPDU, ResponseAPDU]] = on(
        full_band(), session(ISD_AID, KEYS, body, level))
    return seen


@pytest.mark.parametrize("level", [LEVEL, Level.C_MAC, Level.C_MAC | Level.R_MAC])
def test_a_registry_longer_than_one_answer_comes_in_pages_that_each_fit_le(level):
    seen = exchanges(gp.get_status(0x40), level)
    assert [answer.sw for _, _, answer in seen] == [SW.MORE_DATA_AVAILABLE, SW.OK]
    assert all(len(wire.data) <= 256 for _, wire, _ in seen)  # wrapped, each fits Le=00
    assert [command.p2 for command, _, _ in seen] == [0x02, 0x03]  # P2 b1: next occurrences
    rows = [r for _, _, answer in seen for r in gp.parse_status(answer.data)]
    assert len(rows) == EVERYTHING_BUT_THE_ISD
    assert len({r.aid for r in rows}) == len(rows)  # no record twice, none lost
    assert {r.aid for r in rows} >= {SSD_AID, CANTEEN_SSD_AID, TRANSIT.aid, CANTEEN.aid}


def test_the_host_follows_the_pages_and_the_parts():
    def listing(channel: gp.HostChannel) -> Flow[Any]:
        apps = yield from gp.status(channel, 0x40)
        isd = yield from gp.status(channel, 0x80)
        files = yield from gp.status(channel, 0x10)
        return isd, apps, files

    isd, apps, files = on(full_band(), session(ISD_AID, KEYS, listing))
    assert [(r.aid, r.lifecycle, r.privileges) for r in isd] == [(ISD_AID, 0x0F, ISD_PRIVILEGES)]
    assert len(apps) == EVERYTHING_BUT_THE_ISD
    assert [(r.aid, r.modules) for r in files] == [(lf.aid, tuple(lf.modules)) for lf in LOAD_FILES]


def test_a_small_le_still_gets_every_record():
    """Le 40: a page holds what fits once wrapped; a record too big for it goes in 61xx parts."""
    seen = exchanges(gp.get_status(0x40, ne=0x40), Level.C_MAC)
    assert all(len(wire.data) <= 0x40 for _, wire, _ in seen)
    assert len(seen) >= EVERYTHING_BUT_THE_ISD // 2

    def listing(channel: gp.HostChannel) -> Flow[Any]:
        records: list[gp.Registered] = []
        request = status.GetStatus(status.Scope.APPLICATIONS)
        answer = yield from channel.transmit(request.command(ne=0x20))  # 61xx, gathered
        records += gp.parse_status(answer.data)
        while answer.sw == SW.MORE_DATA_AVAILABLE:
            answer = yield from channel.transmit(
                status.GetStatus(request.scope, next_occurrence=True).command(ne=0x20))
            records += gp.parse_status(answer.data)
        return records

    assert len(on(full_band(), session(ISD_AID, KEYS, listing))) == EVERYTHING_BUT_THE_ISD


@pytest.mark.parametrize(("first", "then"), [
    (None, raw_status(0x40, 0x03)),  # no search to continue
    (raw_status(0x40, 0x02), raw_status(0x10, 0x03)),  # another scope
    (raw_status(0x40, 0x02), raw_status(0x40, 0x01)),  # another format
    (raw_status(0x40, 0x02), raw_status(0x40, 0x03, b"\x4f\x01\xa0")),  # another criterion
])
def test_next_occurrences_continue_only_the_search_before(first, then):
    def body(channel: gp.HostChannel) -> Flow[Any]:
        if first is not None:
            yield from channel.transmit(first)
        return (yield from channel.transmit(then))

    assert on(full_band(), session(ISD_AID, KEYS, body)).sw == SW.CONDITIONS_NOT_SATISFIED


def test_the_last_page_ends_the_search_and_paging_writes_nothing():
    band = full_band()

    def body(channel: gp.HostChannel) -> Flow[Any]:
        before = band.se.store.writes
        first = yield from channel.transmit(gp.get_status(0x40))
        second = yield from channel.transmit(gp.get_status(0x40, next_occurrence=True))
        third = yield from channel.transmit(gp.get_status(0x40, next_occurrence=True))
        return first.sw, second.sw, third.sw, band.se.store.writes - before

    assert on(band, session(ISD_AID, KEYS, body)) == (
        SW.MORE_DATA_AVAILABLE, SW.OK, SW.CONDITIONS_NOT_SATISFIED, 0)


# -- the GP 2.1.1 format (P2 00) --------------------------------------------------------------


def legacy(p1: int) -> bytes:
    return b"".join(answer.data for _, _, answer in exchanges(raw_status(p1, 0x00)))


def test_the_gp_211_format_of_the_card_manager():
    assert legacy(0x80).hex().upper() == "08" + ISD_AID.hex().upper() + "0F" + "9E"


def test_the_gp_211_format_of_the_applications_and_domains():
    rows = status.parse_legacy(legacy(0x40))
    tagged = [r for _, _, answer in exchanges(gp.get_status(0x40))
              for r in gp.parse_status(answer.data)]
    assert [(r.aid, r.lifecycle, r.privileges) for r in rows] == [
        (t.aid, t.lifecycle, t.privileges[:1]) for t in tagged]
    assert rows[3].privileges == b"\x80"  # the transit operator's domain: privileges byte 1


def test_the_gp_211_format_of_the_load_files_with_and_without_modules():
    plain, with_modules = legacy(0x20), legacy(0x10)
    assert plain.startswith(bytes.fromhex("07A0000001515350" "01" "00"))
    assert status.parse_legacy(plain) == [status.Record(lf.aid, 0x01, b"\x00") for lf in LOAD_FILES]
    assert with_modules.startswith(bytes.fromhex("07A0000001515350" "01" "00" "01"
                                                 "08A000000151535041"))
    rows = status.parse_legacy(with_modules, modules=True)
    assert [r.modules for r in rows] == [tuple(lf.modules) for lf in LOAD_FILES]


def test_the_gp_211_format_pages_too():
    seen = exchanges(raw_status(0x40, 0x00, ne=0x60), LEVEL)
    assert [answer.sw for _, _, answer in seen][-1] == SW.OK
    assert len(seen) > 1 and [c.p2 for c, _, _ in seen][1:] == [0x01] * (len(seen) - 1)
    rows = status.parse_legacy(b"".join(answer.data for _, _, answer in seen))
    assert len(rows) == EVERYTHING_BUT_THE_ISD


# -- search criteria ---------------------------------------------------------------------------


@pytest.mark.parametrize(("p1", "p2", "data", "sw"), [
    (0x40, 0x02, bytes.fromhex("4F0D"), SW.WRONG_DATA),  # a 4F with no AID bytes: not 6F00
    (0x80, 0x00, bytes.fromhex("4F08A0"), SW.WRONG_DATA),
    (0x40, 0x02, bytes.fromhex("4F11") + bytes(17), SW.WRONG_DATA),  # no AID has 17 bytes
    (0x40, 0x02, bytes.fromhex("5C00"), SW.WRONG_DATA),  # a tag list but no 4F
    (0x40, 0x02, bytes.fromhex("4F004F00"), SW.WRONG_DATA),
    (0x40, 0x02, bytes.fromhex("9F7000"), SW.WRONG_DATA),
    (0x40, 0x06, bytes.fromhex("4F00"), SW.INCORRECT_P1_P2),  # P2 b3: RFU
    (0xE0, 0x02, bytes.fromhex("4F00"), SW.INCORRECT_P1_P2),  # one scope at a time
    (0x40, 0x02, bytes.fromhex("4F03F0F0F0"), SW.REFERENCED_DATA_NOT_FOUND),
])
def test_get_status_refusals(p1, p2, data, sw):
    seen = exchanges(raw_status(p1, p2, data), follow=False)
    assert seen[0][2].sw == sw


def test_a_search_by_the_start_of_the_aid_and_one_with_no_data_field():
    transit = exchanges(raw_status(0x40, 0x02, tlv.encode(0x4F, TRANSIT.aid[:5])))
    assert [r.aid for r in gp.parse_status(transit[0][2].data)] == [TRANSIT.aid]
    everything = exchanges(raw_status(0x40, 0x02, b""))
    assert sum(len(gp.parse_status(a.data)) for _, _, a in everything) == EVERYTHING_BUT_THE_ISD
    domain = exchanges(raw_status(0x80, 0x02, tlv.encode(0x4F, ISD_AID[:3])))
    assert [r.aid for r in gp.parse_status(domain[0][2].data)] == [ISD_AID]


def test_an_operator_domain_lists_itself_and_its_card_but_not_the_card_manager():
    def body(channel: gp.HostChannel) -> Flow[Any]:
        isd = yield from gp.status(channel, 0x80)
        apps = yield from gp.status(channel, 0x40)
        return isd, apps

    isd, apps = on(full_band(), session(SSD_AID, KEYS, body))
    assert isd == [] and [r.aid for r in apps] == [SSD_AID, TRANSIT.aid]


def test_delete_with_data_that_does_not_decode_is_6a80_not_6f00():
    seen = exchanges(CommandAPDU(CLA_PROPRIETARY, Ins.DELETE, 0x00, 0x00, bytes.fromhex("4F0D")),
                     follow=False)
    assert seen[0][2].sw == SW.WRONG_DATA


# -- nothing escapes as 6F00 ------------------------------------------------------------------

search_criteria = (st.sampled_from([b"", b"\x4f\x00", b"\x4f\x0d", b"\x4f\x08" + ISD_AID,
                                    b"\x4f\x00\x5c\x02\x4f\x9f", b"\x5c\x00", b"\x00"])
                   | st.binary(max_size=24))


@given(st.lists(st.tuples(st.sampled_from([0x80, 0x40, 0x20, 0x10]) | st.integers(0, 255),
                          st.integers(0, 255), search_criteria,
                          st.none() | st.sampled_from([1, 0x10, 0x40, 256])),
                min_size=1, max_size=6),
       st.sampled_from([LEVEL, Level.C_MAC]))
def test_get_status_variants_never_escape_as_6f00(requests, level):
    band = full_band()
    before = band.se.store.snapshot()

    def body(channel: gp.HostChannel) -> Flow[Any]:
        answers = []
        for p1, p2, data, ne in requests:
            answer = yield from channel.transmit(raw_status(p1, p2, data, ne))
            answers.append(answer.sw)
            if answer.sw in (SW.SECURITY_STATUS_NOT_SATISFIED,):
                break  # the channel closed: nothing more to say in it
        return answers

    for sw in on(band, session(ISD_AID, KEYS, body, level, seed=random.randrange(1 << 16))):
        assert is_valid(sw) and sw != SW.UNKNOWN
    assert band.se.internal_errors == 0
    after = band.se.store.snapshot()
    assert {k for k in after if before.get(k) != after[k]} <= {
        k for k in after if k.endswith("/seq")}


@given(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=40))
def test_the_get_status_parser_answers_a_status_word_or_the_request(p1, p2, data):
    try:
        request = status.GetStatus.parse(raw_status(p1, p2, data))
    except CardError as refusal:
        assert refusal.sw in (SW.INCORRECT_P1_P2, SW.WRONG_DATA)
        return
    assert request.command().p1 == p1 and request.command().p2 == p2


@given(st.lists(st.builds(status.Record, st.binary(min_size=5, max_size=16), st.integers(0, 255),
                          st.binary(min_size=1, max_size=3)), max_size=8), st.booleans())
def test_records_round_trip_in_both_formats(records, tagged):
    encoded = b"".join(r.encode(tagged) for r in records)
    parsed = status.parse_tagged(encoded) if tagged else status.parse_legacy(encoded)
    assert parsed == [r if tagged else status.Record(r.aid, r.lifecycle, r.privileges[:1])
                      for r in records]
