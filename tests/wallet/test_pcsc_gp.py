"""The band through real pcscd and vpcd, as outside tools see it, under T=0 and T=1: the
default selection, answers longer than Le (61xx, GET RESPONSE, 6Cxx, extended Le), GET
STATUS paging and its GP 2.1.1 format, a malformed search criterion, the reader's GET DATA of
the ATS historical bytes, and ``koala gp list``, scriptor and opensc-tool on top.

The band sits in vpcd slot 1, leaving slot 0 to the other PC/SC tests."""

from __future__ import annotations

import json
import random
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from applets import iso7816, selection, tlv
from applets.apdu import CommandAPDU, ResponseAPDU
from applets.gp import status
from applets.gp.channel import Level
from applets.gp.domain import ISD_AID
from applets.gp.keys import KeySet
from applets.iso7816 import CLA_PROPRIETARY, Ins
from applets.sw import SW
from issuer import gp
from issuer.products import TRANSIT
from reader.flow import Flow, run
from reader.pcsc import PcscReader, PcscTransport
from tests.fields import PCSCD_POLL_S, VPCD_NAME, Pcscd
from tests.support.command import koala_in
from tests.support.gp import full_band, session
from wallet.band import Band
from wallet.vpcd import VpcdBridge, VpcdCard

SLOT = 1  # the pcscd fixture's second vpcd slot (its port is the fixture's port + 1)
READER = f"{VPCD_NAME} 00 {SLOT:02d}"
PROTOCOLS = ["T0", "T1"]
KEYS = KeySet.test_keys()


@pytest.fixture(scope="module")
def band_in_reader(pcscd: Pcscd) -> Iterator[Band]:
    band = full_band()
    bridge = VpcdBridge(VpcdCard(band), port=pcscd.port + SLOT).start()
    try:
        PcscReader(pcscd.reader(SLOT)).wait_for_card(10).disconnect()
        yield band
    finally:
        bridge.stop()
        time.sleep(2 * PCSCD_POLL_S)  # let pcscd see the card go before the next tests


@contextmanager
def connected(protocol: str) -> Iterator[PcscTransport]:
    card = PcscReader(READER, protocol=protocol).wait_for_card(5)
    try:
        yield card
    finally:
        card.disconnect()


def send(card: PcscTransport, raw: str | CommandAPDU) -> ResponseAPDU:
    apdu = bytes.fromhex(raw) if isinstance(raw, str) else raw.encode()
    return ResponseAPDU.parse(card.transmit(apdu))


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("raw", ["00A4040000", "00A40400"])
def test_a_select_without_a_name_answers_the_card_managers_fci(band_in_reader, protocol, raw):
    with connected(protocol) as card:
        send(card, selection.select(TRANSIT.aid))
        answer = send(card, raw)
    assert answer.sw == SW.OK and tlv.find(answer.data, 0x84) == ISD_AID


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_answer_longer_than_le_comes_through_get_response(band_in_reader, protocol):
    with connected(protocol) as card:
        whole = send(card, selection.select(TRANSIT.aid)).data
        first = send(card, CommandAPDU(0x00, Ins.SELECT, 0x04, 0x00, TRANSIT.aid, ne=0x10))
        assert (first.data, first.sw) == (whole[:0x10], 0x6100 | (len(whole) - 0x10))
        rest = send(card, iso7816.get_response(first.sw & 0xFF))
        assert (first.data + rest.data, rest.sw) == (whole, SW.OK)
        fci = send(card, "00A4040000").data
        assert send(card, "00A4040010").sw == 0x6C00 | len(fci)  # case 2: wrong Le, exact
        assert send(card, "00A40400" + f"{len(fci):02X}") == ResponseAPDU(fci, SW.OK)


def _pages(command: CommandAPDU) -> Any:
    def body(channel: gp.HostChannel) -> Flow[Any]:
        seen = []
        answer = yield from channel.transmit(command)
        seen.append(answer)
        while answer.sw == SW.MORE_DATA_AVAILABLE:
            answer = yield from channel.transmit(CommandAPDU(
                command.cla, command.ins, command.p1, command.p2 | 0x01, command.data, command.ne))
            seen.append(answer)
        return seen

    return session(ISD_AID, KEYS, body)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_get_status_pages_with_6310_through_pcscd(band_in_reader, protocol):
    with connected(protocol) as card:
        pages = run(_pages(gp.get_status(0x40)), card)
    assert [p.sw for p in pages] == [SW.MORE_DATA_AVAILABLE, SW.OK]
    rows = [r for p in pages for r in gp.parse_status(p.data)]
    assert len(rows) == 7  # PPSE, e-cash, door card, two operator domains and their purses


def test_an_extended_le_gets_the_whole_registry_at_once_over_t1(band_in_reader):
    with connected("T1") as card:
        pages = run(_pages(status.GetStatus(status.Scope.APPLICATIONS).command(ne=65536)), card)
    assert [p.sw for p in pages] == [SW.OK] and len(pages[0].data) > 256
    assert len(gp.parse_status(pages[0].data)) == 7


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_gp_211_format_and_a_malformed_criterion_through_pcscd(band_in_reader, protocol):
    def body(channel: gp.HostChannel) -> Flow[Any]:
        legacy = yield from channel.transmit(status.get_status(0x80, tagged=False))
        files = yield from channel.transmit(status.get_status(0x10, tagged=False))
        malformed = yield from channel.transmit(CommandAPDU(
            CLA_PROPRIETARY, Ins.GET_STATUS, 0x40, 0x02, bytes.fromhex("4F0D"), ne=256))
        return legacy, files, malformed

    with connected(protocol) as card:
        legacy, files, malformed = run(session(ISD_AID, KEYS, body), card)
    assert legacy == ResponseAPDU(bytes.fromhex("08A000000151000000" "0F" "9E"), SW.OK)
    assert status.parse_legacy(files.data, modules=True)[0].modules == (
        bytes.fromhex("A000000151535041"),)
    assert malformed.sw == SW.WRONG_DATA  # was 6F00


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_reader_answers_the_ats_historical_bytes(band_in_reader, protocol):
    with connected(protocol) as card:
        assert send(card, "FFCA010000") == ResponseAPDU(b"KOALA", SW.OK)
        assert send(card, "FFCA000000") == ResponseAPDU(band_in_reader.uid, SW.OK)


def test_koala_gp_list_through_pcscd_lists_the_whole_registry(band_in_reader, tmp_path):
    rows = json.loads(koala_in(tmp_path)("gp", "list", "--reader", READER, "--json"))
    kinds = [r["kind"] for r in rows]
    assert [kinds.count(k) for k in ("card manager", "security domain", "application",
                                     "load file")] == [1, 2, 5, 4]
    assert rows[0]["state"] == "SECURED"


def _fci(name: bytes) -> bytes:
    """What SELECT answers on a band like the one in the reader (in process, not through it)."""
    band = full_band()
    band.power_on()
    return ResponseAPDU.parse(band.transmit(selection.select(name).encode())).data


def _dump(data: bytes) -> str:
    return " ".join(f"{b:02X}" for b in data)


def _gpcs_host_sequence(level: Level) -> Flow[dict[str, Any]]:
    """What a GlobalPlatform host does first with a card it does not know, written from GPCS
    2.3: SELECT with no name (the ISD, 11.9.2.2), INITIALIZE UPDATE with key version 00 (the
    card's default key set) and EXTERNAL AUTHENTICATE at ``level`` (Amd D 7.1), then the card
    manager's data (GET DATA 66, 9F7F, E0: 11.3) and its registry in both GET STATUS formats,
    every page followed (11.4.2)."""
    fci = yield selection.select(b"")
    assert fci.sw == SW.OK and tlv.find(fci.data, 0x84) == ISD_AID
    channel = yield from gp.open_channel(KEYS, level, random.Random(level).randbytes, kvn=0x00)
    found: dict[str, Any] = {}
    for tag in (0x66, 0x9F7F, 0xE0):
        answer = yield from channel.transmit(iso7816.get_data(tag))
        assert answer.sw == SW.OK, f"GET DATA {tag:X}: {answer.sw:04X}"
        found[f"{tag:X}"] = answer.data
    for tagged in (True, False):
        for scope in (0x80, 0x40, 0x20):
            records: list[status.Record] = []
            command = status.get_status(scope, tagged=tagged)
            while True:
                answer = yield from channel.transmit(command)
                assert answer.sw in (SW.OK, SW.MORE_DATA_AVAILABLE), f"{answer.sw:04X}"
                records += (status.parse_tagged(answer.data) if tagged
                            else status.parse_legacy(answer.data))
                if answer.sw == SW.OK:
                    break
                command = status.get_status(scope, tagged=tagged, next_occurrence=True)
            found[f"{scope:02X}/{'tagged' if tagged else '2.1.1'}"] = records
    return found


@pytest.mark.parametrize("level", [Level.C_MAC, Level.C_MAC | Level.C_DECRYPTION,
                                   Level.C_MAC | Level.C_DECRYPTION | Level.R_MAC
                                   | Level.R_ENCRYPTION], ids=["01", "03", "33"])
def test_a_gpcs_host_discovers_the_whole_band_through_pcscd(band_in_reader, level):
    with connected("T1") as card:
        found = run(_gpcs_host_sequence(level), card)
    assert tlv.find(found["66"], 0x73) is not None, "card recognition data in 66/73"
    cplc = tlv.find(found["9F7F"], 0x9F7F)
    assert cplc is not None and len(cplc) == 42
    assert found["E0"][:1] == b"\xe0"
    for form in ("tagged", "2.1.1"):
        assert [r.aid for r in found[f"80/{form}"]] == [ISD_AID]
        assert found[f"80/{form}"][0].lifecycle == 0x0F  # SECURED
        assert len(found[f"40/{form}"]) == 7  # PPSE, e-cash, door card, two domains, two purses
        assert len(found[f"20/{form}"]) >= 2, "the band's load files"
    assert [r.aid for r in found["40/tagged"]] == [r.aid for r in found["40/2.1.1"]]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_manage_channel_opens_a_channel_with_its_own_selection_through_pcscd(band_in_reader,
                                                                              protocol):
    with connected(protocol) as card:
        send(card, "00A4040000")  # the card manager on the basic channel: the purse is free
        assert send(card, "01A4040000").sw == SW.LOGICAL_CHANNEL_NOT_SUPPORTED  # not open yet
        opened = send(card, "0070000001")
        assert opened.sw == SW.OK and len(opened.data) == 1
        number = opened.data[0]
        assert 1 <= number <= 3
        on_new = send(card, CommandAPDU(iso7816.on_channel(0x00, number), Ins.SELECT, 0x04,
                                        0x00, TRANSIT.aid, ne=256))
        assert on_new.sw == SW.OK and tlv.find(on_new.data, 0x84) == TRANSIT.aid
        basic = send(card, "00A4040000")  # the basic channel selects on its own
        assert basic.sw == SW.OK and tlv.find(basic.data, 0x84) == ISD_AID
        assert send(card, f"0070800{number}00").sw == SW.OK
        assert send(card, CommandAPDU(iso7816.on_channel(0x00, number), Ins.SELECT, 0x04,
                                      0x00, TRANSIT.aid, ne=256)).sw \
            == SW.LOGICAL_CHANNEL_NOT_SUPPORTED


def test_scriptor_under_t0_and_opensc_tool_follow_61xx_and_6cxx(band_in_reader):
    transit, isd = _fci(TRANSIT.aid), _fci(ISD_AID)
    short = CommandAPDU(0x00, Ins.SELECT, 0x04, 0x00, TRANSIT.aid, ne=0x10).encode().hex().upper()
    rest = len(transit) - 0x10
    script = f"{short}\n00C00000{rest:02X}\n00A4040000\n00A4040010\n"
    t0 = subprocess.run(["scriptor", "-r", READER, "-p", "T=0"], input=script,
                        capture_output=True, text=True, timeout=20, check=False).stdout
    assert "Using T=0 protocol" in t0
    assert f"61 {rest:02X} : 0x{rest:02X} bytes of response still available." in t0
    assert f"< {_dump(transit[0x10:0x20])}" in t0  # GET RESPONSE: the rest of the FCI
    assert f"< {_dump(isd[:16])}" in t0  # no name: the card manager
    assert f"6C {len(isd):02X} : Wrong length Le: should be 0x{len(isd):02X}" in t0
    # opensc-tool gathers the parts itself (and leaves the card in T=1: the last test here)
    tool = subprocess.run(["opensc-tool", "-r", READER, "-s", short, "-s", "FFCA010000"],
                          capture_output=True, text=True, timeout=20, check=False).stdout
    assert tool.count("Received (SW1=0x90, SW2=0x00)") == 2
    assert _dump(transit[0x20:0x30]) in tool
    assert "4B 4F 41 4C 41" in tool

