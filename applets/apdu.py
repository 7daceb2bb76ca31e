"""ISO/IEC 7816-3/-4 command and response APDUs, short and extended length.

One codec for both sides: the card parses what terminals send, the terminal
encodes what it sends with the same class. The four cases (ISO/IEC 7816-3
12.1.3) are told apart by length alone:

====  ===================================  ==========================
case  short                                extended
====  ===================================  ==========================
1     CLA INS P1 P2                        —
2     ... Le                               ... 00 Le1 Le2
3     ... Lc data                          ... 00 Lc1 Lc2 data
4     ... Lc data Le                       ... 00 Lc1 Lc2 data Le1 Le2
====  ===================================  ==========================
"""

from __future__ import annotations

from dataclasses import dataclass

from applets.errors import CardError
from applets.sw import SW

SHORT_MAX_NC = 255
SHORT_MAX_NE = 256
EXTENDED_MAX_NC = 65535
EXTENDED_MAX_NE = 65536


class MalformedAPDU(CardError):
    """The bytes are not a command APDU; ``offset`` is where parsing failed."""

    def __init__(self, reason: str, offset: int, sw: int = SW.WRONG_LENGTH) -> None:
        self.offset = offset
        super().__init__(sw, f"{reason} (at byte {offset})")


@dataclass(frozen=True, slots=True)
class CommandAPDU:
    """A command APDU. ``ne`` is None when there is no Le field (cases 1 and 3)."""

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    ne: int | None = None
    extended: bool = False

    def __post_init__(self) -> None:
        for name in ("cla", "ins", "p1", "p2"):
            value = getattr(self, name)
            if not 0 <= value <= 0xFF:
                raise ValueError(f"{name} must be one byte, got {value}")
        if len(self.data) > EXTENDED_MAX_NC:
            raise ValueError(f"command data of {len(self.data)} bytes exceeds {EXTENDED_MAX_NC}")
        if self.ne is not None and not 1 <= self.ne <= EXTENDED_MAX_NE:
            raise ValueError(f"Ne must be 1..{EXTENDED_MAX_NE}, got {self.ne}")

    @property
    def case(self) -> int:
        """ISO/IEC 7816-3 case: 1 (no data), 2 (Le), 3 (Lc data), 4 (both)."""
        return (3 if self.data else 1) + (1 if self.ne is not None else 0)

    @property
    def channel(self) -> int:
        """Logical channel from CLA (ISO/IEC 7816-4 5.4.1): b2-b1 in the first class
        (x00x xxxx), 4 + b4-b1 in the further class (x1xx xxxx); a class that codes none
        (x01x xxxx, RFU) is the basic channel's. GlobalPlatform codes its proprietary
        classes (8x, Cx, Ex) the same way."""
        if self.cla & 0x40:
            return 4 + (self.cla & 0x0F)
        if self.cla & 0x20:
            return 0
        return self.cla & 0x03

    @classmethod
    def parse(cls, raw: bytes) -> CommandAPDU:
        """Decode ``raw``; raise :class:`MalformedAPDU` (6700) if the lengths disagree."""
        n = len(raw)
        if n < 4:
            raise MalformedAPDU(f"a command APDU has at least 4 bytes, got {n}", n)
        cla, ins, p1, p2 = raw[0], raw[1], raw[2], raw[3]
        if n == 4:
            return cls(cla, ins, p1, p2)
        if n == 5:
            return cls(cla, ins, p1, p2, ne=raw[4] or SHORT_MAX_NE)
        if raw[4] != 0:
            nc = raw[4]
            if n == 5 + nc:
                return cls(cla, ins, p1, p2, bytes(raw[5:]))
            if n == 6 + nc:
                return cls(cla, ins, p1, p2, bytes(raw[5:-1]), ne=raw[-1] or SHORT_MAX_NE)
            raise MalformedAPDU(f"Lc={nc} does not match {n - 5} bytes after it", 4)
        if n == 7:
            return cls(cla, ins, p1, p2, ne=int.from_bytes(raw[5:7]) or EXTENDED_MAX_NE,
                       extended=True)
        if n < 7:
            raise MalformedAPDU("extended length field is truncated", n)
        nc = int.from_bytes(raw[5:7])
        if nc == 0:
            raise MalformedAPDU("extended Lc of zero", 5)
        if n == 7 + nc:
            return cls(cla, ins, p1, p2, bytes(raw[7:]), extended=True)
        if n == 9 + nc:
            ne = int.from_bytes(raw[-2:]) or EXTENDED_MAX_NE
            return cls(cla, ins, p1, p2, bytes(raw[7:-2]), ne=ne, extended=True)
        raise MalformedAPDU(f"extended Lc={nc} does not match {n - 7} bytes after it", 5)

    def encode(self) -> bytes:
        """Encode in short form when it fits, extended otherwise (or when asked)."""
        header = bytes((self.cla, self.ins, self.p1, self.p2))
        nc = len(self.data)
        extended = (self.extended or nc > SHORT_MAX_NC
                    or (self.ne is not None and self.ne > SHORT_MAX_NE))
        if not extended:
            lc = bytes((nc,)) + self.data if nc else b""
            le = b"" if self.ne is None else bytes((self.ne % SHORT_MAX_NE,))
            return header + lc + le
        lc = b"\x00" + nc.to_bytes(2) + self.data if nc else b""
        if self.ne is None:
            le = b""
        else:
            le = (b"" if nc else b"\x00") + (self.ne % EXTENDED_MAX_NE).to_bytes(2)
        return header + lc + le

    def __repr__(self) -> str:
        return f"CommandAPDU({self.encode().hex().upper()})"


@dataclass(frozen=True, slots=True)
class ResponseAPDU:
    """Response data and the status word."""

    data: bytes
    sw: int

    @classmethod
    def parse(cls, raw: bytes) -> ResponseAPDU:
        """Split ``raw`` into data and SW1 SW2; fewer than 2 bytes is malformed."""
        if len(raw) < 2:
            raise ValueError(f"a response APDU has at least 2 bytes, got {raw.hex()!r}")
        return cls(bytes(raw[:-2]), int.from_bytes(raw[-2:]))

    def encode(self) -> bytes:
        return self.data + self.sw.to_bytes(2)

    @property
    def ok(self) -> bool:
        return self.sw == SW.OK

    def __repr__(self) -> str:
        return f"ResponseAPDU({self.data.hex().upper()} {self.sw:04X})"
