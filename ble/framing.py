"""Relay messages cut to fit one GATT write or notification, and put back together.

A relay message (an encrypted app-layer frame, :mod:`ble.secure`) may
be longer than the ATT payload (20 bytes at the minimum MTU of 23, 244 at
247). Each fragment carries a 3-byte header, small because at the minimum
MTU every byte of it is 5% of the link:

=======  =====  ==================================================
offset   size   content
=======  =====  ==================================================
0        1      message number, 1 to 255 then 1 again (0 marks a
                resend request instead of a fragment)
1        2      fragment index from 0 (15 bits); the top bit marks
                the message's last fragment
3        …      the message's bytes at that index
=======  =====  ==================================================

Write Requests are acknowledged by ATT; Write Commands and notifications
are not, and a link can drop between two of them: so the receiver takes
fragments in any order, ignores duplicates, and asks for exactly what it
lacks (:meth:`Reassembler.resend_request`), which the sender answers from the
fragments it kept (:meth:`Sender.resend`); a request naming no message,
when nothing came at all, asks for the whole last message. The phone asks
when it has waited long enough; the band asks as soon as a message's last
fragment (the phone's one Write Request) finds others missing
(:meth:`Reassembler.missing`). Timing is the transport's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from construct import Int8ub, Int16ub, Struct

from applets.layout import Layout, LayoutError

MAX_FRAGMENTS = 0x8000
LAST = 0x8000
KEPT = 4  # messages a reassembler keeps partly received
RESEND = 0x00  # first byte of a resend request, a number no message takes


class FramingError(ValueError):
    """A fragment or a resend request that does not parse."""


@dataclass(frozen=True, slots=True)
class Header:
    message: int
    position: int  # the index, with LAST set on the last fragment

    @property
    def index(self) -> int:
        return self.position & ~LAST

    @property
    def last(self) -> bool:
        return bool(self.position & LAST)


HEADER = Layout(Struct("message" / Int8ub, "position" / Int16ub), Header)


@dataclass(frozen=True, slots=True)
class ResendRequest:
    """Fragments to send again; an index with LAST set means "this one and all after it"."""

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
    return [HEADER.build(Header(number, i | (LAST if i == len(pieces) - 1 else 0))) + piece
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
        wanted: list[int] = []
        for index in asked.indices:
            wanted += range(index & ~LAST, len(self.last)) if index & LAST else [index]
        return [self.last[i] for i in wanted if i < len(self.last)]


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
        if header.message == RESEND:
            raise FramingError("a resend request is not a fragment")
        if header.message in self.done:
            return None  # a duplicate of a message already delivered
        count = self.counts.get(header.message)
        if header.last:
            if count is not None and count != header.index + 1:
                raise FramingError("fragments of one message disagree on its length")
            count = self.counts[header.message] = header.index + 1
        if count is not None and header.index >= count:
            raise FramingError(f"fragment {header.index} of a message of {count}")
        pieces = self.partial.setdefault(header.message, {})
        pieces[header.index] = data[HEADER.size:]
        if count is None or len(pieces) < count:
            self._forget_old(header.message)
            return None
        del self.partial[header.message], self.counts[header.message]
        self.done = [*self.done[-(KEPT - 1):], header.message]
        return b"".join(pieces[i] for i in range(count))

    def resend_request(self) -> bytes:
        """What to ask the sender for: the missing fragments of the newest partial message, or
        all of the last message when not one fragment of it came."""
        if not self.partial:
            return ResendRequest(0, ()).encode()
        return self._request(next(reversed(self.partial)))

    def missing(self, data: bytes) -> bytes | None:
        """After :meth:`receive` of ``data``: a resend request for the fragments its message
        still lacks if ``data`` was the message's last one, else None (the rest may come yet)."""
        header = HEADER.parse(data[:HEADER.size])
        if not header.last or header.message not in self.partial:
            return None
        return self._request(header.message)

    def _request(self, message: int) -> bytes:
        have = self.partial[message]
        count = self.counts.get(message)
        if count is not None:
            return ResendRequest(message, tuple(i for i in range(count) if i not in have)).encode()
        # Without the last fragment the count is unknown: the gaps, then "all from here on".
        gaps = tuple(i for i in range(max(have)) if i not in have)
        return ResendRequest(message, (*gaps, LAST | (max(have) + 1))).encode()

    def _forget_old(self, current: int) -> None:
        while len(self.partial) > KEPT:
            oldest = next(iter(self.partial))
            if oldest == current:
                break
            del self.partial[oldest]
            self.counts.pop(oldest, None)
