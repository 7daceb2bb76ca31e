"""Transports move APDU bytes between a terminal and a card, and nothing else.

``Transport.transmit(apdu) -> response`` is the whole interface the terminal
logic needs; the in-process transport drives a band directly, and PC/SC and
nfcpy transports are peers of it. Every transport records a :class:`Trace`
of the exchanges with their host time, for ``--trace`` and the timing model.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from applets.errors import PowerLoss
from reader.errors import CardRemoved
from reader.trace import Exchange


class Transport(Protocol):
    trace: list[Exchange]

    def transmit(self, apdu: bytes) -> bytes:
        """Send one C-APDU and return the R-APDU (data + SW1 SW2)."""
        ...


class Card(Protocol):
    """What a contactless card offers the field: power and APDUs."""

    def power_on(self) -> None: ...

    def transmit(self, apdu: bytes) -> bytes: ...


class InProcessTransport:
    """A card held to the reader in the same process; a tear reads as card removed."""

    def __init__(self, card: Card) -> None:
        self.card = card
        self.trace: list[Exchange] = []

    def transmit(self, apdu: bytes) -> bytes:
        start = time.perf_counter()
        try:
            response = self.card.transmit(apdu)
        except PowerLoss as tear:
            raise CardRemoved(f"card lost power during {apdu[:4].hex().upper()}") from tear
        self.trace.append(Exchange(apdu, response, time.perf_counter() - start))
        return response


@contextmanager
def in_field(card: Card) -> Iterator[InProcessTransport]:
    """Power ``card`` up in the field for one tap and hand out its transport."""
    card.power_on()
    yield InProcessTransport(card)
