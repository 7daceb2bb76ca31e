"""The band in nfcpy's listen mode, met by nfcpy's own ISO-DEP reader over UDP."""

from __future__ import annotations

from applets.sw import SW
from issuer.products import TRANSIT
from reader import pboc
from reader.flow import run
from reader.nfc import NfcReader
from tests.conftest import make_band
from wallet.nfc import NfcCard


def test_nfcpy_waits_through_the_cards_waiting_time_extensions():
    band = make_band(TRANSIT)
    path = "udp:localhost:54377"
    slow = NfcCard(band, path, wtx=lambda apdu: 2 if apdu[:2] == b"\x00\xa4" else 0).start()
    slow.listening.wait(5)
    reader = NfcReader(path)
    try:
        link = reader.wait_for_card(10)
        assert link.uid == band.uid
        issuer = run(pboc.select_purse(), link)  # answered after two S(WTX) rounds
        assert issuer.app_serial[-1] == 1
        log = link.transmit(pboc.read_record(pboc.SFI_LOG, 1).encode())
        assert log == SW.RECORD_NOT_FOUND.to_bytes(2)
    finally:
        reader.release()
        reader.close()
        slow.stop()
    assert slow.taps == 1
