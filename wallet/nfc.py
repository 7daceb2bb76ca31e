"""The band as an ISO/IEC 14443-4 Type A card through nfcpy's listen mode.

nfcpy answers the anticollision (SENS_REQ, SDD, SEL) with our UID and SAK
and hands up the first frame after SELECT; from RATS on the protocol is
ours (:mod:`wallet.isodep`). Each activation is one tap: the band powers up,
serves blocks until DESELECT or until the reader goes (RF off, silence),
then waits for the next reader. With nfcpy's UDP driver (``udp:host:port``)
a reader and the band meet on loopback with no hardware; with a USB device
that can listen (``usb``: PN533, RC-S380) a phone or a real terminal taps it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from wallet import contactless
from wallet.band import Band
from wallet.errors import WalletError
from wallet.isodep import IsoDepCard, IsoDepError
from wallet.serving import Serving

_log = logging.getLogger(__name__)
LISTEN_S = 0.5
FRAME_TIMEOUT_S = 1.0


def _nfc() -> Any:
    try:
        import nfc  # noqa: PLC0415 - optional hardware stack
        import nfc.clf  # noqa: PLC0415
    except ImportError as missing:
        raise WalletError("NFC needs nfcpy: pip install 'koala-band[nfc]'") from missing
    return nfc


class NfcCard(Serving):
    """Serves one band on an nfcpy device until :meth:`stop`."""

    def __init__(self, band: Band, path: str, wtx: Callable[[bytes], int] = lambda apdu: 0) -> None:
        super().__init__()
        self.band = band
        self.path = path
        self.wtx = wtx
        self.listening = threading.Event()
        self.leaving = threading.Event()
        self.taps = 0
        nfc = _nfc()
        try:
            self._clf = nfc.ContactlessFrontend(path)
        except OSError as error:
            raise WalletError(f"cannot open NFC device {path!r}: {error}") from error

    def serve_forever(self) -> None:
        nfc = _nfc()
        target = nfc.clf.LocalTarget("106A")
        target.sens_res = bytearray(contactless.SENS_RES)
        target.sdd_res = bytearray(self.band.uid)
        target.sel_res = bytearray((contactless.SEL_RES,))
        try:
            while not self.stopping.is_set():
                self.leaving.clear()
                self.listening.set()
                activated = self._clf.listen(target, LISTEN_S)
                if activated is not None and getattr(activated, "tt4_cmd", None):
                    self._serve(activated.tt4_cmd)
        finally:
            self._clf.close()

    def _interrupt(self) -> None:
        self.leave_field()

    def leave_field(self) -> None:
        """Take the band out of the field now: the current tap gets no further answer."""
        self.leaving.set()

    def _serve(self, rats: bytes) -> None:
        nfc = _nfc()
        self.band.power_on()
        card = IsoDepCard(self.band.transmit, wtx=self.wtx)
        try:
            frame = card.rats(bytes(rats))
            self.taps += 1
            while True:
                command = self._clf.exchange(bytearray(frame), FRAME_TIMEOUT_S)
                if command is None:
                    return
                frame = card.receive(bytes(command))
                if self.leaving.is_set():
                    return  # out of the field before the answer could leave
                if card.deselected:
                    self._clf.exchange(bytearray(frame), 0)
                    return
        except IsoDepError as error:
            _log.info("ISO-DEP: %s; waiting for the next reader", error)
        except nfc.clf.CommunicationError as error:
            _log.debug("the reader went away: %r", error)
