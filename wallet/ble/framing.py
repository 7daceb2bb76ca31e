"""Relay messages cut to fit one GATT write or notification, and put back together.

A relay message (an encrypted app-layer frame, :mod:`wallet.ble.secure`) may
be longer than the ATT payload (20 bytes at the minimum MTU of 23, 244 at
247). Each fragment carries a 5-byte header:

=======  =====  ==================================================
offset   size   content
=======  =====  ==================================================
0        1      message number, 1 to 255 then 1 again (0 marks a
                resend request instead of a fragment)
1        2      fragment index, from 0
3        2      fragment count
5        …      the message's bytes at that index
=======  =====  ==================================================

Writes are acknowledged by ATT, notifications are not, and a link can drop
between two of them: so the receiver takes fragments in any order, ignores
duplicates, and when it has waited long enough asks for exactly what it
lacks (:meth:`Reassembler.resend_request`), which the sender answers from the
fragments it kept (:meth:`Sender.resend`); a request naming no message,
when nothing came at all, asks for the whole last message. Timing is the
transport's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from construct import Int8ub, Int16ub, Struct

from applets.layout import Layout, LayoutError

MAX_FRAGMENTS = 0xFFFF
KEPT = 4  # messages a reassembler keeps partly received
RESEND = 0x00  # first byte of a resend request, a number no message takes


class FramingError(ValueError):
    """A fragment or a resend request that does not parse."""


@dataclass(frozen=True, slots=True)
class Header:
    message: int
    index: int
    count: int


HEADER = Layout(Struct("message" / Int8ub, "index" / Int16ub, "count" / Int16ub), Header)


@dataclass(frozen=True, slots=True)
class ResendRequest:
    message: int
    indices: tuple[int, ...]

    def encode(self) -> bytes:
        return bytes((RESEND, self.message)) + b"".join(i.to_bytes(2) for i in self.indices)

    @classmethod
    def decode(cls, data: bytes) -> ResendRequest:
        if data[:1] != bytes((RESEND,)) or len(data) % 2:
            raise FramingError("a resend request is 00, a message number and 2-byte indices")
        if len(data) == 1:
            return cls(0, ())
        return cls(data[1], tuple(int.from_bytes(data[i:i + 2]) for i in range(2, len(data), 2)))


def is_resend_request(data: bytes) -> bool:
    return data[:1] == bytes((RESEND,))


def fragment(message: bytes, number: int, payload: int) -> list[bytes]:
    """``message`` as fragments of at most ``payload`` bytes each (header included);
    ``number`` is 1 to 255."""
    if not 1 <= number <= 255:
        raise ValueError(f"a message number is 1 to 255, got {number}")
    room = payload - HEADER.size
    if room < 1:
        raise ValueError(f"a payload of {payload} bytes leaves no room after the header")
    pieces = [message[i:i + room] for i in range(0, len(message), room)] or [b""]
    if len(pieces) > MAX_FRAGMENTS:
        raise ValueError(f"a message of {len(message)} bytes needs more than {MAX_FRAGMENTS} "
                         f"fragments of {payload} bytes")
    return [HEADER.build(Header(number, i, len(pieces))) + piece
            for i, piece in enumerate(pieces)]


@dataclass(slots=True)
class Sender:
    """Numbers messages and keeps the fragments of the last one for resending."""

    payload: int
    number: int = 0
    last: list[bytes] = field(default_factory=list)

    def fragments(self, message: bytes) -> list[bytes]:
        self.number = self.number % 255 + 1
        self.last = fragment(message, self.number, self.payload)
        return list(self.last)

    def resend(self, request: bytes) -> list[bytes]:
        """The fragments a :class:`ResendRequest` names (none if it is about another message);
        one that names no message, from a receiver that got nothing at all, asks for all."""
        asked = ResendRequest.decode(request)
        if asked.message == 0:
            return list(self.last)
        if asked.message != self.number:
            return []
        return [self.last[i] for i in asked.indices if i < len(self.last)]


@dataclass(slots=True)
class Reassembler:
    """Collects fragments; a message comes out once, when its last missing fragment arrives."""

    partial: dict[int, dict[int, bytes]] = field(default_factory=dict)
    counts: dict[int, int] = field(default_factory=dict)
    done: list[int] = field(default_factory=list)

    def receive(self, data: bytes) -> bytes | None:
        try:
            header = HEADER.parse(data[:HEADER.size])
        except LayoutError as error:
            raise FramingError(f"not a fragment: {error}") from error
        if header.message == RESEND or header.count == 0 or header.index >= header.count:
            raise FramingError(f"fragment {header.index} of {header.count}")
        if header.message in self.done:
            return None  # a duplicate of a message already delivered
        if self.counts.setdefault(header.message, header.count) != header.count:
            raise FramingError("fragments of one message disagree on its length")
        pieces = self.partial.setdefault(header.message, {})
        pieces[header.index] = data[HEADER.size:]
        if len(pieces) < header.count:
            self._forget_old(header.message)
            return None
        del self.partial[header.message], self.counts[header.message]
        self.done = [*self.done[-(KEPT - 1):], header.message]
        return b"".join(pieces[i] for i in range(header.count))

    def resend_request(self) -> bytes:
        """What to ask the sender for: the missing fragments of the newest partial message, or
        all of the last message when not one fragment of it came."""
        if not self.partial:
            return ResendRequest(0, ()).encode()
        message = next(reversed(self.partial))
        have = self.partial[message]
        missing = tuple(i for i in range(self.counts[message]) if i not in have)
        return ResendRequest(message, missing).encode()

    def _forget_old(self, current: int) -> None:
        while len(self.partial) > KEPT:
            oldest = next(iter(self.partial))
            if oldest == current:
                break
            del self.partial[oldest], self.counts[oldest]
