"""What the band shows a contactless reader before any APDU: UID, SAK, ATS, the ATR a
PC/SC reader derives from them, and the reader's GET DATA of the UID and of the ATS's
historical bytes.

PC/SC Part 3 (3.1.3.2.3) builds the ATR of an ISO/IEC 14443-4 Type A card as
``3B 8n 80 01`` + the ATS historical bytes + TCK: TD1 = 80 announces T=0 and
TD2 = 01 adds T=1, so both protocols are offered (EMV tools insist on T=0).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce
from operator import xor

from applets.iso7816 import Ins
from applets.sw import SW, wrong_le

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


#: PC/SC Part 3 (3.2.2.1.3) GET DATA, P1: the card's UID, or the historical bytes of its ATS.
UID, ATS_HISTORICAL = 0x00, 0x01
_CLA_READER = 0xFF


def is_get_data(apdu: bytes) -> bool:
    """PC/SC Part 3 GET DATA pseudo-APDU ``FF CA P1 P2 [Le]``: the reader's own command,
    which never reaches the card."""
    return apdu[:2] == bytes((_CLA_READER, Ins.GET_DATA)) and len(apdu) in (4, 5)


def get_data(apdu: bytes, uid: bytes, ats: Ats) -> bytes:
    """The reader's answer to GET DATA (PC/SC Part 3, 3.2.2.1.3): P1 00 the UID, P1 01
    the ATS historical bytes, with 9000; Le 00 (or none) takes it whole, a smaller Le gets
    6Cxx (xx the length), a greater one the data and 6282 (end reached before Le bytes);
    any other P1 or a P2 other than 00 is 6A81."""
    p1, p2 = apdu[2], apdu[3]
    if p2 != 0x00 or p1 not in (UID, ATS_HISTORICAL):
        return SW.FUNCTION_NOT_SUPPORTED.to_bytes(2)
    data = uid if p1 == UID else ats.historical
    le = apdu[4] if len(apdu) == 5 else 0
    if le and le < len(data):
        return wrong_le(len(data)).to_bytes(2)
    sw = SW.WARNING_END_OF_FILE if le > len(data) else SW.OK
    return data + sw.to_bytes(2)
