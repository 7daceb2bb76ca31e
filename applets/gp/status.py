"""GET STATUS (GPCS 11.4): what the command asks, and the registry records it answers in
either format, built by the card and parsed by the host from the declarations here.

==  ======================================================================
P1  what is listed (GPCS Table 11-33; one scope per command)
==  ======================================================================
80  the Issuer Security Domain, with the card's life cycle
40  applications, security domains included
20  executable load files
10  executable load files and their executable modules
==  ======================================================================

P2 b1 asks for the next occurrences of the search before (the card said
6310, more data available), b2 picks the format: 1 the tagged one (GPCS
11.4.3.1: an E3 template per record), 0 the one GlobalPlatform 2.1.1
defined (GPCS 11.4.3.2, still what GP 2.1.1 tools ask for first):

==========================  =====================================================
record                      GP 2.1.1 format
==========================  =====================================================
ISD, application, domain    AID length, AID, life cycle, privileges (first byte)
load file (P1 20)           AID length, AID, life cycle, privileges (00)
load file (P1 10)           ... then the number of modules and each module as
                            AID length, AID
==========================  =====================================================

The data field is the search criterion: ``4F`` with the start of the AIDs to
list (``4F 00``: all), optionally with a ``5C`` tag list the band ignores.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from applets import tlv
from applets.apdu import CommandAPDU
from applets.errors import CardError
from applets.iso7816 import CLA_PROPRIETARY, Ins
from applets.sw import SW

NEXT_OCCURRENCE, TAGGED = 0x01, 0x02
AID, LIFE_CYCLE, PRIVILEGES, LOAD_FILE, DOMAIN, VERSION, MODULE = (
    0x4F, 0x9F70, 0xC5, 0xC4, 0xCC, 0xCE, 0x84)
TEMPLATE, TAG_LIST = 0xE3, 0x5C
AID_MAX = 16


class Scope(IntEnum):
    """GET STATUS P1: which part of the registry."""

    ISSUER_SECURITY_DOMAIN = 0x80
    APPLICATIONS = 0x40
    LOAD_FILES = 0x20
    LOAD_FILES_AND_MODULES = 0x10


@dataclass(frozen=True, slots=True)
class GetStatus:
    """One GET STATUS: ``scope``, the AIDs starting with ``aid``, in the tagged or the GP
    2.1.1 format, the first occurrences or (``next_occurrence``) the ones after them."""

    scope: Scope
    aid: bytes = b""
    tagged: bool = True
    next_occurrence: bool = False

    @property
    def search(self) -> tuple[Scope, bytes, bool]:
        """What a next-occurrence command must repeat of the one it continues."""
        return self.scope, self.aid, self.tagged

    def command(self, ne: int = 256) -> CommandAPDU:
        p2 = (TAGGED if self.tagged else 0) | (NEXT_OCCURRENCE if self.next_occurrence else 0)
        return CommandAPDU(CLA_PROPRIETARY, Ins.GET_STATUS, self.scope, p2,
                           tlv.encode(AID, self.aid), ne=ne)

    @classmethod
    def parse(cls, apdu: CommandAPDU) -> GetStatus:
        """The GET STATUS in ``apdu``: 6A86 for a P1 that is no scope or a P2 with RFU bits,
        6A80 for a search criterion that is not one 4F (BER-TLV that does not decode
        included). No data field at all lists everything, as ``4F 00`` does."""
        if apdu.p1 not in Scope._value2member_map_:
            raise CardError(SW.INCORRECT_P1_P2, f"GET STATUS P1={apdu.p1:02X} is no scope")
        if apdu.p2 & ~(NEXT_OCCURRENCE | TAGGED):
            raise CardError(SW.INCORRECT_P1_P2, f"GET STATUS P2={apdu.p2:02X}: b8-b3 are RFU")
        return cls(Scope(apdu.p1), _search_qualifier(apdu.data), bool(apdu.p2 & TAGGED),
                   bool(apdu.p2 & NEXT_OCCURRENCE))


def _search_qualifier(data: bytes) -> bytes:
    if not data:
        return b""
    try:
        items = tlv.decode(data)
    except tlv.TLVError as error:
        raise CardError(SW.WRONG_DATA, f"GET STATUS search criterion: {error}") from error
    aids = [item.value for item in items if item.tag == AID]
    if len(aids) != 1 or any(item.tag not in (AID, TAG_LIST) for item in items):
        raise CardError(SW.WRONG_DATA, "the search criterion is one 4F (and a 5C tag list)")
    if len(aids[0]) > AID_MAX:
        raise CardError(SW.WRONG_DATA, f"an AID has at most {AID_MAX} bytes")
    return aids[0]


def get_status(scope: int, aid: bytes = b"", *, tagged: bool = True,
               next_occurrence: bool = False, ne: int = 256) -> CommandAPDU:
    """GET STATUS of ``scope`` (80, 40, 20 or 10), e.g. ``80 F2 40 02 02 4F 00 00``."""
    return GetStatus(Scope(scope), aid, tagged, next_occurrence).command(ne)


@dataclass(frozen=True, slots=True)
class Record:
    """One registry entry as GET STATUS reports it. Which fields a record has depends on
    the scope: an application has its load file and domain, a load file its version and,
    for P1 10, its modules; a load file has no privileges (the GP 2.1.1 format says 00)."""

    aid: bytes
    lifecycle: int
    privileges: bytes = b""
    load_file: bytes = b""
    domain: bytes = b""
    version: bytes = b""
    modules: tuple[bytes, ...] = ()

    def tagged(self, modules: bool = False) -> bytes:
        """The E3 template (GPCS Table 11-36)."""
        fields = [tlv.encode(AID, self.aid), tlv.encode(LIFE_CYCLE, bytes((self.lifecycle,)))]
        for tag, value in ((PRIVILEGES, self.privileges), (LOAD_FILE, self.load_file),
                           (DOMAIN, self.domain), (VERSION, self.version)):
            if value:
                fields.append(tlv.encode(tag, value))
        if modules:
            fields += [tlv.encode(MODULE, module) for module in self.modules]
        return tlv.constructed(TEMPLATE, *fields)

    def legacy(self, modules: bool = False) -> bytes:
        """The GP 2.1.1 format: with ``modules`` (P1 10) the module count and modules."""
        out = _lv(self.aid) + bytes((self.lifecycle, (self.privileges or b"\x00")[0]))
        if modules:
            out += bytes((len(self.modules),)) + b"".join(_lv(m) for m in self.modules)
        return out

    def encode(self, tagged: bool, modules: bool = False) -> bytes:
        return self.tagged(modules) if tagged else self.legacy(modules)


def _lv(value: bytes) -> bytes:
    return bytes((len(value),)) + value


def parse_tagged(data: bytes) -> list[Record]:
    """The records of a tagged answer; :class:`ValueError` (``tlv.TLVError``) if it is not
    BER-TLV."""
    records = []
    for template in tlv.decode(data):
        if template.tag != TEMPLATE:
            raise ValueError(f"GET STATUS answered tag {template.tag:X}, not E3 templates")
        fields: dict[int, bytes] = {}
        modules: list[bytes] = []
        for item in template.children():
            if item.tag == MODULE:
                modules.append(item.value)
            else:
                fields.setdefault(item.tag, item.value)
        records.append(Record(fields.get(AID, b""), (fields.get(LIFE_CYCLE) or b"\x00")[0],
                              fields.get(PRIVILEGES, b""), fields.get(LOAD_FILE, b""),
                              fields.get(DOMAIN, b""), fields.get(VERSION, b""),
                              tuple(modules)))
    return records


def parse_legacy(data: bytes, modules: bool = False) -> list[Record]:
    """The records of a GP 2.1.1 answer (``modules``: the P1 10 one); :class:`ValueError`
    with the offset where a record runs past the data."""
    records, i = [], 0

    def take(n: int) -> bytes:
        nonlocal i
        if i + n > len(data):
            raise ValueError(f"GET STATUS record runs past the data at byte {i}")
        i += n
        return data[i - n: i]

    while i < len(data):
        aid = take(take(1)[0])
        lifecycle, privileges = take(2)
        found: list[bytes] = []
        if modules:
            for _ in range(take(1)[0]):
                found.append(take(take(1)[0]))
        records.append(Record(aid, lifecycle, bytes((privileges,)), modules=tuple(found)))
    return records
