"""The band as the card in a vsmartcard virtual reader (vpcd), so pcscd sees a PC/SC card.

vpcd (the pcscd driver from Debian's ``vsmartcard-vpcd``) listens on
127.0.0.1:35963 for slot 0 and :35964 for slot 1; the card connects to it.
Every message is a 2-byte big-endian length and a payload. A 1-byte payload
is a control code (0 power off, 1 power on, 2 reset, 4 get ATR); anything
longer is a command APDU, answered with the response APDU.

:class:`VpcdCard` is the protocol (bytes in, bytes out); :class:`VpcdBridge`
runs it over a socket and reconnects when pcscd restarts. vpcd writes the
length and the payload with two separate writes; if our side delays its
acknowledgement of the first (Linux delays ACKs up to ~40 ms), vpcd's Nagle
algorithm holds the second back until that timer fires. The bridge turns
delayed ACKs off (``TCP_QUICKACK``) after every read, which keeps an APDU
round trip well under a millisecond.

vpcd serves one card per port: a second connection to a port in use is
taken by the kernel and then left waiting, unread, until the first card
leaves, when it silently becomes the card in the slot. Once it takes a
card, vpcd asks for its ATR at every presence poll of pcscd (every 0.4 s),
so a bridge that hears nothing within :data:`CLAIM_S` of connecting knows
another card holds the slot: it says so (:attr:`VpcdBridge.busy`,
:meth:`VpcdBridge.claim`) instead of sharing the port. vpcd's accept queue
holds one such connection; with it full, a further connection attempt goes
unanswered rather than refused (refused means no vpcd at all), which says
the same.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading

from wallet import contactless
from wallet.band import Band
from wallet.errors import VpcdBusy
from wallet.serving import Serving

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 35963
CLAIM_S = 2.0
"""How long a connected bridge waits for vpcd's first word: five of pcscd's presence polls."""
POWER_OFF, POWER_ON, RESET, GET_ATR = 0, 1, 2, 4

_log = logging.getLogger(__name__)


class VpcdCard:
    """The vpcd protocol of one band: a message in, the reply (if any) out."""

    def __init__(self, band: Band) -> None:
        self.band = band
        self.powered = False
        self.ats = contactless.Ats()
        self.atr = contactless.atr(self.ats.historical)

    def handle(self, message: bytes) -> bytes | None:
        if len(message) == 1:
            return self._control(message[0])
        if not self.powered:
            self._power_on()  # vpcd powers up first; be forgiving with other hosts
        if contactless.is_get_data(message):  # the reader's command, answered by the reader
            return contactless.get_data(message, self.band.uid, self.ats)
        return self.band.transmit(message)

    def _control(self, code: int) -> bytes | None:
        if code == GET_ATR:
            return self.atr
        if code in (POWER_ON, RESET):
            self._power_on()
        elif code == POWER_OFF:
            self.powered = False
        else:
            _log.warning("ignoring unknown vpcd control code %d", code)
        return None

    def _power_on(self) -> None:
        self.band.power_on()  # volatile state (selection, sessions) starts afresh
        self.powered = True


class VpcdBridge(Serving):
    """Keeps a :class:`VpcdCard` connected to vpcd until stopped."""

    def __init__(self, card: VpcdCard, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                 retry_s: float = 0.2, quickack: bool = True, claim_s: float = CLAIM_S) -> None:
        super().__init__()
        self.card = card
        self.quickack = quickack and hasattr(socket, "TCP_QUICKACK")
        self.address = (host, port)
        self.retry_s = retry_s
        self.claim_s = claim_s
        self.connected = threading.Event()  # vpcd took this card and talks to it
        self.busy = threading.Event()  # the last connection was left waiting: another card's slot
        self._settled = threading.Event()  # connected or busy, whichever came last
        self._socket: socket.socket | None = None

    def claim(self, timeout: float | None = None) -> bool:
        """Wait until vpcd takes the card (True) or ``timeout`` passes with no vpcd to talk
        to (False: pcscd not running yet, the bridge keeps trying). Raise VpcdBusy when the
        port serves another card."""
        self._settled.wait(timeout)
        if self.busy.is_set():
            raise VpcdBusy(self.busy_message())
        return self.connected.is_set()

    def busy_message(self) -> str:
        host, port = self.address
        return (f"vpcd {host}:{port} already serves another card (another `koala band attach`"
                f" or test run?): stop that one, or attach to a free vpcd port")

    def serve_forever(self) -> None:
        """Connect, serve, and reconnect after pcscd goes away, until :meth:`stop`."""
        while not self.stopping.is_set():
            try:
                with socket.create_connection(self.address, timeout=self.retry_s) as sock:
                    self._serve(sock)
            except TimeoutError:  # refused would mean no vpcd; unanswered, a full accept queue
                self._taken()
            except OSError as error:
                _log.debug("vpcd at %s:%d: %s", *self.address, error)
            finally:
                self.connected.clear()
                self.card.powered = False
            self.stopping.wait(self.retry_s)

    def _taken(self) -> None:
        if not self.busy.is_set():
            _log.warning("%s", self.busy_message())
        self.busy.set()
        self._settled.set()

    def _interrupt(self) -> None:
        sock = self._socket
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _serve(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._socket = sock
        try:
            sock.settimeout(self.claim_s)
            try:
                message = _read_message(sock, self.quickack)
            except TimeoutError:
                self._taken()
                return
            sock.settimeout(None)
            self.busy.clear()
            self.connected.set()
            self._settled.set()
            _log.info("band %s is the card in vpcd %s:%d", self.card.band.name, *self.address)
            while message is not None and not self.stopping.is_set():
                reply = self.card.handle(message)
                if reply is not None:
                    sock.sendall(struct.pack(">H", len(reply)) + reply)
                message = _read_message(sock, self.quickack)
        finally:
            self._socket = None


def _read_exactly(sock: socket.socket, n: int, quickack: bool) -> bytes | None:
    buffer = bytearray()
    while len(buffer) < n:
        chunk = sock.recv(n - len(buffer))
        if quickack:  # Linux re-enables delayed ACKs after reads; turn them off again
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        if not chunk:
            return None
        buffer += chunk
    return bytes(buffer)


def _read_message(sock: socket.socket, quickack: bool) -> bytes | None:
    header = _read_exactly(sock, 2, quickack)
    if header is None:
        return None
    return _read_exactly(sock, struct.unpack(">H", header)[0], quickack)
