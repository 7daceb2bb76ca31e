"""PC/SC transport (pyscard): our terminals over pcscd and any PC/SC reader.

A reader is picked by index or by a piece of its name. A tap is a card
arriving in the reader: :meth:`PcscReader.wait_for_card` blocks until one is
present and returns a connected transport. pyscard's errors are translated
once, here, into the reader's own (a card gone away is :class:`CardRemoved`).
pyscard is an optional extra; importing this module without it says how to
install it.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from reader.errors import CardRemoved, ReaderError, TransportError
from reader.trace import Exchange

try:
    from smartcard.CardConnection import CardConnection
    from smartcard.CardRequest import CardRequest
    from smartcard.Exceptions import (
        CardConnectionException,
        CardRequestTimeoutException,
        NoCardException,
        SmartcardException,
    )
    from smartcard.pcsc.PCSCExceptions import BaseSCardException
    from smartcard.System import readers as _system_readers
except ImportError as missing:  # pragma: no cover - depends on the installation
    raise ImportError("PC/SC needs pyscard: pip install 'koala-band[pcsc]' "
                      "(Debian: apt-get install pcscd libpcsclite-dev swig)") from missing

PROTOCOLS = {"T0": CardConnection.T0_protocol, "T1": CardConnection.T1_protocol,
             "any": CardConnection.T0_protocol | CardConnection.T1_protocol}


GET_UID = (0xFF, 0xCA, 0x00, 0x00, 0x00)  # PC/SC Part 3 3.2.2.1.3: the reader answers it


def contactless_historical(atr: bytes) -> bytes | None:
    """The ATS historical bytes in the ATR a PC/SC reader builds for an ISO/IEC 14443-4
    Type A card (Part 3 3.1.3.2.3: ``3B 8n 80 01``, n historical bytes, TCK); None for
    any other ATR."""
    if len(atr) < 5 or atr[0] != 0x3B or atr[1] >> 4 != 0x8 or atr[2:4] != b"\x80\x01":
        return None
    count = atr[1] & 0x0F
    return atr[4:4 + count] if len(atr) == 5 + count else None


class NoReader(ReaderError):
    """No PC/SC reader matches, or pcscd is not running."""


def reader_names() -> list[str]:
    try:
        return [str(r) for r in _system_readers()]
    except (SmartcardException, BaseSCardException) as error:
        raise NoReader(f"cannot list PC/SC readers ({error}): is pcscd running?") from error


def find_reader(name: str) -> str:
    """The reader whose index is ``name`` or whose name contains it (case-insensitive)."""
    names = reader_names()
    if not names:
        raise NoReader("no PC/SC readers: is pcscd running with a reader attached?")
    if name.isdigit():
        index = int(name)
        if index < len(names):
            return names[index]
        raise NoReader(f"there is no reader {index}; readers: {', '.join(names)}")
    matches = [n for n in names if name.lower() in n.lower()]
    if not matches:
        raise NoReader(f"no reader matches {name!r}; readers: {', '.join(names)}")
    return matches[0]


class PcscTransport:
    """A connected card: APDUs through pcscd, with a trace like every transport."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        self.trace: list[Exchange] = []

    @property
    def atr(self) -> bytes:
        return bytes(self._connection.getATR())

    def uid(self) -> bytes | None:
        """The card's UID as the reader reports it (GET DATA pseudo-APDU): the reader's own
        command, never sent to the card, so it stays out of the trace; None when the reader
        does not say."""
        try:
            data, sw1, sw2 = self._connection.transmit(list(GET_UID))
        except SmartcardException:
            return None
        return bytes(data) if (sw1, sw2) == (0x90, 0x00) and data else None

    def transmit(self, apdu: bytes) -> bytes:
        start = time.perf_counter()
        try:
            data, sw1, sw2 = self._connection.transmit(list(apdu))
        except (CardConnectionException, NoCardException) as error:
            raise CardRemoved(f"card gone during {apdu[:4].hex().upper()}: {error}") from error
        except SmartcardException as error:
            raise TransportError(f"PC/SC failed: {error}") from error
        response = bytes(data) + bytes((sw1, sw2))
        self.trace.append(Exchange(apdu, response, time.perf_counter() - start))
        return response

    def disconnect(self) -> None:
        with contextlib.suppress(SmartcardException):  # already gone
            self._connection.disconnect()


class PcscReader:
    def __init__(self, name: str = "0", protocol: str = "any") -> None:
        self.name = find_reader(name)
        self.protocol = PROTOCOLS[protocol]

    def wait_for_card(self, timeout: float | None = None) -> PcscTransport:
        """Block until a card is in the reader (a tap) and connect to it."""
        request = CardRequest(readers=[self.name], timeout=timeout)
        try:
            request.waitforcard()
            # A connection of our own: the request's dies with the request's context.
            connection = next(r for r in _system_readers() if str(r) == self.name).createConnection()
            connection.connect(self.protocol)
        except CardRequestTimeoutException as error:
            raise TransportError(f"no card in {self.name} within {timeout} s") from error
        except (SmartcardException, StopIteration) as error:
            raise TransportError(f"cannot connect to the card in {self.name}: {error}") from error
        return PcscTransport(connection)

    def card_present(self) -> bool:
        request = CardRequest(readers=[self.name], timeout=0)
        try:
            request.waitforcard()
        except (CardRequestTimeoutException, SmartcardException):
            return False
        return True
