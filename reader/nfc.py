"""nfcpy transport: our terminals over an NFC reader (USB) or nfcpy's UDP link.

The reader polls for a Type A card, nfcpy activates it (RATS, ISO-DEP) and
our APDUs travel in its I-blocks (``Type4Tag.transceive``). nfcpy's errors
are translated here once: a card that stops answering is
:class:`CardRemoved`. nfcpy is an optional extra, imported when used.
"""

from __future__ import annotations

import time
from typing import Any

from reader.errors import CardRemoved, ReaderError, TransportError
from reader.trace import Exchange

POLL_INTERVAL_S = 0.05


def _nfc() -> Any:
    try:
        import nfc  # noqa: PLC0415 - optional hardware stack
        import nfc.clf  # noqa: PLC0415
        import nfc.tag.tt4  # noqa: PLC0415
    except ImportError as missing:
        raise ReaderError("NFC needs nfcpy: pip install 'koala-band[nfc]'") from missing
    return nfc


class NfcTransport:
    """An activated ISO-DEP card: one APDU per I-block exchange."""

    def __init__(self, clf: Any, tag: Any) -> None:
        self._clf = clf
        self._tag = tag
        self.uid = bytes(tag.identifier)
        self.trace: list[Exchange] = []

    def transmit(self, apdu: bytes) -> bytes:
        nfc = _nfc()
        start = time.perf_counter()
        try:
            response = bytes(self._tag.transceive(bytearray(apdu)))
        except (nfc.tag.TagCommandError, nfc.clf.CommunicationError) as error:
            raise CardRemoved(f"card gone during {apdu[:4].hex().upper()}: {error}") from error
        if len(response) < 2:
            raise TransportError(f"ISO-DEP answer of {len(response)} bytes is no R-APDU")
        self.trace.append(Exchange(apdu, response, time.perf_counter() - start))
        return response


class NfcReader:
    """A reader on an nfcpy device path: ``usb``, ``usb:054c:06c3``, ``udp:localhost:54321``."""

    def __init__(self, path: str) -> None:
        nfc = _nfc()
        self.path = path
        try:
            self._clf = nfc.ContactlessFrontend(path)
        except OSError as error:
            raise ReaderError(f"cannot open NFC device {path!r}: {error}") from error

    def wait_for_card(self, timeout: float = 5.0) -> NfcTransport:
        """Poll until an ISO-DEP Type A card is activated (a tap)."""
        nfc = _nfc()
        deadline = time.monotonic() + timeout
        tag = self._clf.connect(rdwr={"targets": ["106A"], "on-connect": lambda tag: False,
                                      "interval": POLL_INTERVAL_S, "beep-on-connect": False},
                                terminate=lambda: time.monotonic() > deadline)
        if tag is None or tag is False:
            raise TransportError(f"no card on {self.path} within {timeout} s")
        if not isinstance(tag, nfc.tag.tt4.Type4Tag):
            raise TransportError(f"the card on {self.path} does not speak ISO-DEP: {tag}")
        return NfcTransport(self._clf, tag)

    def release(self) -> None:
        """Switch the field off: the card leaves."""
        self._clf.device.mute()

    def close(self) -> None:
        self._clf.close()
