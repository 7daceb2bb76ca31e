"""Ways to hold a band to a reader in tests, all real: in process, through pcscd, through nfcpy.

Each field offers ``tap(band)``, a context manager giving the reader-side
transport for one tap, and ``pull()``, which breaks the link for real (the
vpcd socket closes; the band leaves the NFC field).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import count

from reader.nfc import NfcReader
from reader.pcsc import NoReader, PcscReader, reader_names
from reader.transport import Transport, in_field
from wallet.band import Band
from wallet.nfc import NfcCard
from wallet.vpcd import DEFAULT_PORT, VpcdBridge, VpcdCard

VPCD_READER = "Virtual PCD 00 00"
PCSCD_POLL_S = 0.4  # pcscd asks vpcd for card presence this often


def vpcd_readers() -> list[str]:
    try:
        return [name for name in reader_names() if name.startswith("Virtual PCD")]
    except NoReader:
        return []


@contextmanager
def running_pcscd() -> Iterator[None]:
    """pcscd with the vpcd driver: the running one, or one started here and stopped after."""
    if vpcd_readers():
        yield
        return
    binary = shutil.which("pcscd") or "/usr/sbin/pcscd"
    if not shutil.which(binary):
        raise RuntimeError("pcscd is not installed: `make test` installs pcscd and vsmartcard-vpcd")
    process = subprocess.Popen([binary, "--foreground", "--error"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 15
    while not vpcd_readers():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"pcscd did not come up with the vpcd reader: "
                               f"{process.stderr.read().decode() if process.stderr else ''}")
        time.sleep(0.1)
    try:
        yield
    finally:
        process.terminate()
        process.wait(10)


class InProcessField:
    name = "inproc"

    @contextmanager
    def tap(self, band: Band) -> Iterator[Transport]:
        with in_field(band) as link:
            yield link

    def close(self) -> None:
        pass


class PcscField:
    """The band attached to vpcd slot 0; each tap is a PC/SC connect and disconnect."""

    name = "pcsc"

    def __init__(self) -> None:
        self._bridge: VpcdBridge | None = None
        self._band: Band | None = None
        self._pulled_at = 0.0

    def _attach(self, band: Band) -> None:
        if self._band is band and self._bridge is not None:
            return
        self.pull()
        self._wait_until_absent()
        # vpcd takes a new card only after pcscd has polled the old one away,
        # as a rider takes a moment to tap again.
        time.sleep(max(0.0, self._pulled_at + 2 * PCSCD_POLL_S - time.monotonic()))
        self._band = band
        self._bridge = VpcdBridge(VpcdCard(band), port=DEFAULT_PORT).start()

    @contextmanager
    def tap(self, band: Band) -> Iterator[Transport]:
        self._attach(band)
        card = PcscReader(VPCD_READER).wait_for_card(10)
        try:
            yield card
        finally:
            card.disconnect()

    def pull(self) -> None:
        if self._bridge is not None:
            self._bridge.stop()
            self._bridge = None
            self._pulled_at = time.monotonic()

    def _wait_until_absent(self) -> None:
        reader = PcscReader(VPCD_READER)
        deadline = time.monotonic() + 5 * PCSCD_POLL_S
        while reader.card_present() and time.monotonic() < deadline:
            time.sleep(0.05)

    def close(self) -> None:
        self.pull()
        self._wait_until_absent()


_ports = count(54321)


class NfcField:
    """The band listening through nfcpy's UDP driver; each tap is an activation."""

    name = "nfc"

    def __init__(self) -> None:
        self.path = f"udp:localhost:{next(_ports)}"
        self._card: NfcCard | None = None
        self._reader = NfcReader(self.path)

    def _attach(self, band: Band) -> NfcCard:
        if self._card is not None and self._card.band is band:
            return self._card
        self.pull()
        self._card = NfcCard(band, self.path).start()
        self._card.listening.wait(5)
        return self._card

    @contextmanager
    def tap(self, band: Band) -> Iterator[Transport]:
        self._attach(band)
        link = self._reader.wait_for_card(10)
        try:
            yield link
        finally:
            self._reader.release()

    def pull(self) -> None:
        if self._card is not None:
            self._card.stop()
            self._card = None

    def close(self) -> None:
        self.pull()
        self._reader.close()
