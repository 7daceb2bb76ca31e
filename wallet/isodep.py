"""ISO/IEC 14443-4 (ISO-DEP) on the card side: RATS, block protocol, chaining, WTX, DESELECT.

Sans-I/O: a frame from the reader goes in (without CRC), the frame to send
back comes out. The rules are those of ISO/IEC 14443-4 7.5.4 for the PICC:
its block number starts at 1 and toggles with every I-block received (rule
D) and with every R(ACK) that asks for the next block of a chained answer
(rule E); an R-block carrying the current number gets the last block again
(rule 11); an R(NAK) with the other number gets an R(ACK) (rule 12).

Long answers are chained in blocks that fit the reader's frame size (FSD,
from RATS); long commands arrive chained and are acknowledged block by
block. Before answering a command the card may ask for waiting time
extensions, ``wtx(apdu)`` of them, as a slow secure element does when its
processing outlasts the frame waiting time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from wallet.contactless import Ats

FRAME_SIZES = (16, 24, 32, 40, 48, 64, 96, 128, 256)
CRC_SIZE = 2
RATS = 0xE0
S_DESELECT = 0xC2
S_WTX = 0xF2
WTXM = 1


class IsoDepError(Exception):
    """A frame the card cannot take (it stays silent, as the standard asks)."""


@dataclass(frozen=True, slots=True)
class _Pcb:
    kind: str  # "I", "R", "S"
    number: int
    chaining: bool
    cid: bool
    nad: bool
    nak: bool
    wtx: bool


def _decode_pcb(pcb: int) -> _Pcb:
    if pcb & 0xE2 == 0x02:
        kind = "I"
    elif pcb & 0xE6 == 0xA2:
        kind = "R"
    elif pcb & 0xC7 == 0xC2:
        kind = "S"
    else:
        raise IsoDepError(f"PCB {pcb:02X} is no I-, R- or S-block")
    return _Pcb(kind, pcb & 0x01, kind == "I" and bool(pcb & 0x10), bool(pcb & 0x08),
                kind == "I" and bool(pcb & 0x04), kind == "R" and bool(pcb & 0x10),
                kind == "S" and pcb & 0x30 == 0x30)


class IsoDepCard:
    """One activation of the card: from RATS to DESELECT (or the field going)."""

    def __init__(self, handler: Callable[[bytes], bytes], ats: Ats | None = None,
                 wtx: Callable[[bytes], int] = lambda apdu: 0) -> None:
        self._handler = handler
        self._ats = ats or Ats()
        self._wtx = wtx
        self.fsd = FRAME_SIZES[8]
        self.cid: int | None = None
        self.active = False
        self.deselected = False
        self._number = 1
        self._received = bytearray()
        self._pending: list[bytes] = []  # INF fields of the answer not sent yet
        self._waiting: bytes | None = None  # command waiting for its WTX rounds
        self._wtx_left = 0
        self._last: bytes | None = None

    def rats(self, frame: bytes) -> bytes:
        """Answer RATS (E0, FSDI | CID) with the ATS and become active."""
        if len(frame) != 2 or frame[0] != RATS:
            raise IsoDepError(f"not a RATS: {frame.hex().upper()}")
        fsdi, cid = frame[1] >> 4, frame[1] & 0x0F
        if cid == 15:
            raise IsoDepError("CID 15 is reserved")
        self.fsd = FRAME_SIZES[min(fsdi, 8)]
        self.cid = cid
        self.active = True
        return self._ats.encode()

    def receive(self, frame: bytes) -> bytes:
        """The next frame to send for a frame received while active."""
        if not self.active or not frame:
            raise IsoDepError("the card is not activated")
        pcb = _decode_pcb(frame[0])
        inf = frame[1 + pcb.cid + pcb.nad:]
        if pcb.cid and frame[1] & 0x0F != self.cid:
            raise IsoDepError("block for another CID")
        if pcb.kind == "S":
            return self._s_block(pcb, inf)
        if pcb.kind == "R":
            return self._r_block(pcb)
        self._number ^= 1  # rule D
        if pcb.chaining:
            self._received += inf
            return self._send(self._block(0xA2))
        apdu = bytes(self._received + inf)
        self._received.clear()
        self._wtx_left = self._wtx(apdu)
        if self._wtx_left:
            self._waiting = apdu
            return self._wtx_request()
        return self._answer(apdu)

    def _answer(self, apdu: bytes) -> bytes:
        response = self._handler(apdu)
        room = self.fsd - 1 - (self.cid is not None and self.cid > 0) - CRC_SIZE
        self._pending = [response[i:i + room] for i in range(0, len(response), room)] or [b""]
        return self._next_i_block()

    def _next_i_block(self) -> bytes:
        inf = self._pending.pop(0)
        return self._send(self._block(0x02 | (0x10 if self._pending else 0)) + inf)

    def _r_block(self, pcb: _Pcb) -> bytes:
        if pcb.number == self._number:
            if self._last is None:
                raise IsoDepError("nothing to retransmit")
            return self._last  # rule 11
        if pcb.nak:
            return self._send(self._block(0xA2))  # rule 12
        if not self._pending:
            raise IsoDepError("R(ACK) with nothing chained to send")
        self._number ^= 1  # rule E
        return self._next_i_block()

    def _s_block(self, pcb: _Pcb, inf: bytes) -> bytes:
        if pcb.wtx:
            if self._waiting is None:
                raise IsoDepError("S(WTX) response without a request")
            if self._wtx_left:
                return self._wtx_request()
            apdu, self._waiting = self._waiting, None
            return self._answer(apdu)
        self.deselected = True
        self.active = False
        return self._block(S_DESELECT, numbered=False)

    def _wtx_request(self) -> bytes:
        self._wtx_left -= 1
        return self._send(self._block(S_WTX, numbered=False) + bytes((WTXM,)))

    def _block(self, pcb: int, numbered: bool = True) -> bytes:
        if numbered:
            pcb |= self._number
        if self.cid:
            return bytes((pcb | 0x08, self.cid))
        return bytes((pcb,))

    def _send(self, block: bytes) -> bytes:
        self._last = block
        return block
