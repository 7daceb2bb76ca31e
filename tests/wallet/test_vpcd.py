"""The band as a PC/SC card: the vpcd protocol by hand, then real pcscd and real tools."""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from applets.sw import SW
from issuer.products import CANTEEN, TRANSIT
from reader import pboc
from reader.flow import run
from reader.pcsc import PcscReader
from reader.transport import InProcessTransport
from tests.conftest import make_band
from tests.fields import PCSCD_POLL_S, Pcscd
from wallet import contactless
from wallet.band import Band
from wallet.errors import VpcdBusy
from wallet.vpcd import CLAIM_S, GET_ATR, POWER_OFF, POWER_ON, RESET, VpcdBridge, VpcdCard

REPO = Path(__file__).resolve().parents[2]

SELECT = pboc.select(TRANSIT.aid).encode()
GET_BALANCE = pboc.get_balance().encode()


def test_the_atr_offers_t0_and_t1_with_a_correct_checksum():
    atr = contactless.atr()
    assert atr.hex().upper() == "3B8580014B4F414C414C"
    assert atr[2] == 0x80 and atr[3] == 0x01  # TD1: T=0, TD2 follows; TD2: T=1
    checksum = 0
    for byte in atr[1:]:
        checksum ^= byte
    assert checksum == 0


def test_control_codes_and_apdus_by_hand():
    band = make_band(TRANSIT)
    card = VpcdCard(band)
    assert card.handle(bytes((GET_ATR,))) == contactless.atr()
    assert card.handle(bytes((POWER_ON,))) is None and card.powered
    assert card.handle(bytes.fromhex("FFCA000000")) == band.uid + b"\x90\x00"
    assert (card.handle(SELECT) or b"")[-2:] == b"\x90\x00"
    assert card.handle(bytes((RESET,))) is None
    assert card.handle(GET_BALANCE) == SW.INS_NOT_SUPPORTED.to_bytes(2), "reset: the card manager"
    assert card.handle(bytes((POWER_OFF,))) is None and not card.powered


def test_a_band_that_changes_is_saved_before_it_answers(load_terminal):
    band = make_band(TRANSIT)
    saved: list[int] = []
    band.on_change = lambda changed: saved.append(changed.card("transit").balance)
    card = VpcdCard(band)
    run(load_terminal.load(300), InProcessTransport(_Handler(card)))
    assert saved == [300]


class _Handler:
    def __init__(self, card: VpcdCard) -> None:
        self.card = card

    def power_on(self) -> None:
        self.card.handle(bytes((POWER_ON,)))

    def transmit(self, apdu: bytes) -> bytes:
        reply = self.card.handle(apdu)
        assert reply is not None
        return reply


def test_a_bridge_that_vpcd_never_talks_to_says_the_slot_is_taken():
    """vpcd takes one card per port; a second connection waits in the kernel, unread."""
    with socket.create_server(("127.0.0.1", 0), backlog=1) as vpcd:
        bridge = VpcdBridge(VpcdCard(make_band(TRANSIT)), port=vpcd.getsockname()[1],
                            claim_s=0.3).start()
        try:
            with pytest.raises(VpcdBusy, match="already serves another card"):
                bridge.claim(5)
            assert not bridge.connected.is_set()
        finally:
            bridge.stop()


def test_a_slot_with_a_card_waiting_already_leaves_a_bridge_unanswered_and_says_so():
    with socket.create_server(("127.0.0.1", 0), backlog=0) as vpcd, \
            socket.create_connection(vpcd.getsockname()):  # waiting, never accepted
        bridge = VpcdBridge(VpcdCard(make_band(TRANSIT)), port=vpcd.getsockname()[1],
                            claim_s=30).start()
        try:
            with pytest.raises(VpcdBusy):
                bridge.claim(5)
        finally:
            bridge.stop()


def test_a_bridge_vpcd_asks_for_the_atr_is_the_card_in_the_slot():
    band = make_band(TRANSIT)
    with socket.create_server(("127.0.0.1", 0)) as vpcd:
        bridge = VpcdBridge(VpcdCard(band), port=vpcd.getsockname()[1], claim_s=5).start()
        try:
            peer, _ = vpcd.accept()
            with peer:
                peer.sendall(struct.pack(">HB", 1, GET_ATR))  # what every presence poll sends
                assert bridge.claim(5) and not bridge.busy.is_set()
                length = struct.unpack(">H", peer.recv(2))[0]
                assert peer.recv(length) == contactless.atr()
        finally:
            bridge.stop()


@contextmanager
def attached(band: Band, port: int) -> Iterator[VpcdBridge]:
    bridge = VpcdBridge(VpcdCard(band), port=port).start()
    try:
        bridge.claim(CLAIM_S + 2 * PCSCD_POLL_S)
        yield bridge
    finally:
        bridge.stop()
        time.sleep(2 * PCSCD_POLL_S)  # let pcscd see the card go before the next test


@pytest.fixture
def card_in_reader(pcscd: Pcscd) -> Iterator[Band]:
    band = make_band(TRANSIT, CANTEEN)
    with attached(band, pcscd.port):
        PcscReader(pcscd.reader()).wait_for_card(10).disconnect()
        yield band


def test_pcsc_scan_sees_the_card_and_its_atr(card_in_reader):
    out = subprocess.run(["pcsc_scan", "-c", "-n"], capture_output=True, text=True, timeout=20,
                         check=False).stdout
    assert "Virtual PCD 00 00" in out
    assert "3B 85 80 01 4B 4F 41 4C 41 4C" in out


def test_scriptor_talks_t0_to_the_band(card_in_reader, pcscd):
    script = f"{SELECT.hex().upper()}\n{GET_BALANCE.hex().upper()}\n"
    result = subprocess.run(["scriptor", "-r", pcscd.reader(), "-p", "T=0"], input=script,
                            capture_output=True, text=True, timeout=20, check=False)
    assert "Using T=0 protocol" in result.stdout
    assert "9F 0C 1E 10 00 00 00 FF FF FF FF" in result.stdout  # the issuer file in the FCI
    assert "< 00 00 00 00 90 00" in result.stdout


def test_opensc_tool_sends_apdus_and_reads_the_atr(card_in_reader, pcscd):
    result = subprocess.run(["opensc-tool", "-r", pcscd.reader(), "-a",
                             "-s", SELECT.hex(), "-s", GET_BALANCE.hex()],
                            capture_output=True, text=True, timeout=20, check=False)
    assert "3b:85:80:01:4b:4f:41:4c:41:4c" in result.stdout
    assert "Received (SW1=0x90, SW2=0x00)" in result.stdout


def test_an_older_pboc_terminal_walks_the_file_tree_through_pcscd(card_in_reader, pcscd):
    """The exact APDUs of issue 15: the MF with the card manager selected and from inside the
    purse, the DF 1001, EF 0015 by identifier and READ BINARY of it, the MF by no data, GET
    CHALLENGE and the holder PIN."""
    card = PcscReader(pcscd.reader()).wait_for_card(5)

    def send(raw: str) -> tuple[bytes, str]:
        answer = card.transmit(bytes.fromhex(raw))
        return answer[:-2], answer[-2:].hex().upper()

    try:
        assert send("00A4000C023F00") == (b"", "9000")  # the card manager is selected
        assert send(SELECT.hex())[1] == "9000"
        assert send("00A40000023F00")[1] == "9000"
        df, sw = send("00A4000002100100")
        assert sw == "9000" and TRANSIT.aid in df
        assert send("00A40000020015")[1] == "9000"
        issuer_file, sw = send("00B0000000")
        assert sw == "9000" and issuer_file[:8] == TRANSIT.issuer_id
        assert issuer_file[12:20].hex().isdigit(), "16 BCD digits after the issuer's prefix"
        assert send("00A4000002100200")[1] == "9000"  # the canteen DF, a sibling
        assert send("00A4020C020016")[1] == "9000"
        assert send("00B0000037")[1] == "9000"
        assert send("00A40800041001001800")[1] == "9000"
        assert send("00B2010400")[1] == "6A83"  # the log is empty
        assert send("00A40000020019")[1] == "6A82"
        assert send("00A4050002100100")[1] == "6A86"
        mf, sw = send("00A4000000")
        assert sw == "9000" and mf[:1] == b"\x6f"
        assert send("00A4000002100100")[1] == "9000"
        challenge, sw = send("0084000008")
        assert sw == "9000" and len(challenge) == 8
        assert len(send("0084000004")[0]) == 4
        assert send("0084000010")[1] == "6700"
        assert send("0020000000")[1] == "63C3"
        assert send("0020000003111111")[1] == "63C2"
        assert send("0020000003123456")[1] == "9000"
        assert send("0020000000")[1] == "9000"
    finally:
        card.disconnect()


def test_opensc_tool_selects_by_file_identifier(card_in_reader, pcscd):
    result = subprocess.run(["opensc-tool", "-r", pcscd.reader(),
                             "-s", "00A40000023F00", "-s", "00A4000002100100",
                             "-s", "00A40000020015", "-s", "00B0000000"],
                            capture_output=True, text=True, timeout=20, check=False)
    assert result.stdout.count("Received (SW1=0x90, SW2=0x00)") == 4, result.stdout + result.stderr
    assert "10 00 00 00 FF FF FF FF" in result.stdout  # the issuer file, read as the current EF


def test_the_contactless_get_uid_pseudo_apdu(card_in_reader, pcscd):
    card = PcscReader(pcscd.reader(), protocol="T0").wait_for_card(5)
    try:
        assert card.transmit(bytes.fromhex("FFCA000000")) == card_in_reader.uid + b"\x90\x00"
        assert card.uid() == card_in_reader.uid and not card.trace[1:]
    finally:
        card.disconnect()


def test_a_new_connection_starts_from_a_fresh_power_up(card_in_reader, pcscd):
    card = PcscReader(pcscd.reader()).wait_for_card(5)
    assert card.transmit(SELECT)[-2:] == b"\x90\x00"
    card.disconnect()  # pyscard leaves the card with a reset
    card = PcscReader(pcscd.reader()).wait_for_card(5)
    try:
        assert card.transmit(GET_BALANCE) == SW.INS_NOT_SUPPORTED.to_bytes(2)  # card manager again
    finally:
        card.disconnect()


def test_two_bands_in_two_slots(pcscd):
    first, second = make_band(TRANSIT, seed=1), make_band(TRANSIT, seed=2)
    with attached(first, pcscd.port), attached(second, pcscd.port + 1):
        uids = []
        for slot in (0, 1):
            card = PcscReader(pcscd.reader(slot)).wait_for_card(10)
            uids.append(card.transmit(bytes.fromhex("FFCA000000"))[:-2])
            card.disconnect()
    assert uids == [first.uid, second.uid]


def test_a_taken_slot_is_reported_not_shared(pcscd, tmp_path):
    """A second bridge, or `koala band attach`, on a port vpcd serves already is told so;
    the card in the slot stays the one readers see."""
    first = make_band(TRANSIT, seed=1)
    with attached(first, pcscd.port):
        second = VpcdBridge(VpcdCard(make_band(TRANSIT, seed=2)), port=pcscd.port).start()
        try:
            with pytest.raises(VpcdBusy, match=f":{pcscd.port} already serves another card"):
                second.claim(CLAIM_S + 2)
        finally:
            second.stop()
        koala = [sys.executable, "-m", "cli", "--home", str(tmp_path)]
        subprocess.run([*koala, "band", "create", "bob"], cwd=REPO, check=True,
                       capture_output=True, timeout=60)
        attach = subprocess.run([*koala, "band", "attach", "bob", "--port", str(pcscd.port)],
                                cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
        assert attach.returncode == 1, attach.stdout + attach.stderr
        assert "already serves another card" in attach.stdout + attach.stderr
        card = PcscReader(pcscd.reader()).wait_for_card(10)
        try:
            assert card.transmit(bytes.fromhex("FFCA000000"))[:-2] == first.uid
        finally:
            card.disconnect()


def test_the_band_reconnects_when_pcscd_restarts(pcscd):
    if not pcscd.own:
        pytest.skip("the machine's pcscd serves others too: only a test run's own is restarted")
    band = make_band(TRANSIT)
    with attached(band, pcscd.port) as bridge:
        PcscReader(pcscd.reader()).wait_for_card(10).disconnect()
        pcscd.stop()
        deadline = time.monotonic() + 10
        while bridge.connected.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not bridge.connected.is_set(), "the band noticed pcscd going"
        pcscd.start()
        card = PcscReader(pcscd.reader()).wait_for_card(15)
        try:
            assert card.transmit(SELECT)[-2:] == b"\x90\x00"
        finally:
            card.disconnect()
        assert bridge.connected.is_set()
