"""What the band shows a contactless reader before any APDU: UID, SAK, ATS, and the ATR
a PC/SC reader derives from them.

PC/SC Part 3 (3.1.3.2.3) builds the ATR of an ISO/IEC 14443-4 Type A card as
``3B 8n 80 01`` + the ATS historical bytes + TCK: TD1 = 80 announces T=0 and
TD2 = 01 adds T=1, so both protocols are offered (EMV tools insist on T=0).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce
from operator import xor

from applets.iso7816 import Ins

#: Historical bytes: a proprietary category (first byte not 00/10/80) naming the band.
HISTORICAL = b"KOALA"
SENS_RES = bytes.fromhex("4400")  # ATQA: double-size (7-byte) UID, bit frame anticollision
SEL_RES = 0x20  # SAK: compliant with ISO/IEC 14443-4
FSCI = 8  # 256-byte frames
FWI = 8  # ~77 ms frame waiting time
SFGI = 0


@dataclass(frozen=True, slots=True)
class Ats:
    """ATS fields (ISO/IEC 14443-4 5.2): frame size, bit rates, timings, CID support."""

    fsci: int = FSCI
    fwi: int = FWI
    sfgi: int = SFGI
    cid_supported: bool = True
    historical: bytes = HISTORICAL

    def encode(self) -> bytes:
        t0 = 0x70 | self.fsci  # TA, TB and TC follow
        ta = 0x80  # same bit rate both directions, 106 kbit/s only
        tb = (self.fwi << 4) | self.sfgi
        tc = 0x02 if self.cid_supported else 0x00
        body = bytes((t0, ta, tb, tc)) + self.historical
        return bytes((len(body) + 1,)) + body


def atr(historical: bytes = HISTORICAL) -> bytes:
    """The PC/SC ATR of an ISO/IEC 14443-4 Type A card with these historical bytes."""
    if len(historical) > 15:
        raise ValueError("at most 15 historical bytes fit an ATR")
    body = bytes((0x80 | len(historical), 0x80, 0x01)) + historical
    return b"\x3b" + body + bytes((reduce(xor, body, 0),))


def is_get_uid(apdu: bytes) -> bool:
    """PC/SC Part 3 GET DATA pseudo-APDU ``FF CA 00 00 Le``: the reader's own command."""
    return apdu[:4] == bytes((0xFF, Ins.GET_DATA, 0x00, 0x00)) and len(apdu) in (4, 5)
