"""SELECT as ISO/IEC 7816-4 defines it, for the card and the terminals alike: by DF name (an
application's AID), by file identifier or path under the MF, and the control information it
answers (FCI, FCP, FMD; table 12). The rest of the interindustry commands are
:mod:`applets.iso7816`'s."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import IntEnum

from applets import tlv
from applets.apdu import CommandAPDU, MalformedAPDU
from applets.errors import CardError

#: CLA: interindustry, no secure messaging, basic channel (ISO/IEC 7816-4 5.4.1).
from applets.iso7816 import CLA_ISO, Ins
from applets.sw import SW

# -- SELECT (ISO/IEC 7816-4 11.2.2) -----------------------------------------------------


class SelectBy(IntEnum):
    """SELECT P1: what the data field names (ISO/IEC 7816-4 table 39)."""

    FILE_ID = 0x00  # MF, DF or EF by file identifier (no data: the MF)
    CHILD_DF = 0x01
    EF_UNDER_CURRENT_DF = 0x02
    PARENT_DF = 0x03  # no data
    DF_NAME = 0x04  # an application by its AID (or the start of it)
    PATH_FROM_MF = 0x08  # the MF's identifier left out
    PATH_FROM_CURRENT_DF = 0x09  # the current DF's identifier left out


class Occurrence(IntEnum):
    """SELECT P2 b2-b1: which of the files that match."""

    FIRST = 0x00
    LAST = 0x01
    NEXT = 0x02
    PREVIOUS = 0x03


class Answer(IntEnum):
    """SELECT P2 b4-b3: what the card returns."""

    FCI = 0x00
    FCP = 0x04
    FMD = 0x08
    NONE = 0x0C


DF_NAME_MAX = 16


@dataclass(frozen=True, slots=True)
class Select:
    """SELECT by DF name: an application by its AID, or the first one whose AID starts so.

    A DF name has 1 to 16 bytes; :meth:`parse` holds the card to that, the terminal's
    :meth:`command` sends what it is given.
    """

    name: bytes
    occurrence: Occurrence = Occurrence.FIRST
    answer: Answer = Answer.FCI

    def command(self) -> CommandAPDU:
        ne = None if self.answer is Answer.NONE else 256
        return CommandAPDU(CLA_ISO, Ins.SELECT, SelectBy.DF_NAME, self.occurrence | self.answer,
                           self.name, ne=ne)

    @classmethod
    def parse(cls, apdu: CommandAPDU,
              occurrences: Collection[Occurrence] = tuple(Occurrence),
              nameless: bool = False) -> Select:
        """The SELECT by DF name in ``apdu``: 6A86 for a P1 P2 it is not (or an occurrence
        not in ``occurrences``, what this card supports), 6700 for a name of the wrong size.

        With ``nameless`` a SELECT without a data field (``00 A4 04 00 00``) parses, with
        an empty name: a GlobalPlatform card selects its Issuer Security Domain for it
        (GPCS 11.9.2.2)."""
        if apdu.p1 != SelectBy.DF_NAME:
            raise CardError(SW.INCORRECT_P1_P2, f"SELECT P1={apdu.p1:02X} is not by DF name")
        occurrence = Occurrence(apdu.p2 & 0x03)
        if apdu.p2 & 0xF0 or occurrence not in occurrences:
            names = [o.name.lower() for o in Occurrence if o in occurrences]
            listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
            raise CardError(SW.INCORRECT_P1_P2, f"SELECT P2 supports {listed} occurrence")
        if nameless and not apdu.data:
            return cls(b"", occurrence, Answer(apdu.p2 & 0x0C))
        if not 1 <= len(apdu.data) <= DF_NAME_MAX:
            raise MalformedAPDU(f"a DF name has 1 to {DF_NAME_MAX} bytes", 5)
        return cls(apdu.data, occurrence, Answer(apdu.p2 & 0x0C))


def select(name: bytes, occurrence: Occurrence = Occurrence.FIRST,
           answer: Answer = Answer.FCI) -> CommandAPDU:
    """SELECT by DF name (P1 04), e.g. ``select(AID)`` = ``00 A4 04 00 Lc AID 00``."""
    return Select(name, occurrence, answer).command()


# -- SELECT by file identifier or path (ISO/IEC 7816-4 7.1.1) ------------------------------

MF_FID = 0x3F00
FID_SIZE = 2
_NO_DATA = (SelectBy.FILE_ID, SelectBy.PARENT_DF)  # P1 00 with no data is the MF
_ONE_FID = (SelectBy.CHILD_DF, SelectBy.EF_UNDER_CURRENT_DF)
_PATHS = (SelectBy.PATH_FROM_MF, SelectBy.PATH_FROM_CURRENT_DF)
_BY_FILE = (SelectBy.FILE_ID, *_ONE_FID, SelectBy.PARENT_DF, *_PATHS)


@dataclass(frozen=True, slots=True)
class SelectFile:
    """SELECT of the MF, a DF or an EF by file identifier (P1 00, 01, 02), of the parent DF
    (03) or by path (08 from the MF, 09 from the current DF), as older PBOC terminals and
    opensc select; ``path`` holds the identifiers the data field names, in order.

    ``SelectFile(SelectBy.FILE_ID, ())`` is ``00 A4 00 00``, the MF by its empty data
    field (ISO/IEC 7816-4: P1 P2 00 00 and no data select the MF). Which identifier names
    which file is the card's to say; the parser holds the command to its shape only.
    """

    by: SelectBy
    path: tuple[int, ...]
    answer: Answer = Answer.FCI

    def __post_init__(self) -> None:
        if self.by not in _BY_FILE:
            raise ValueError(f"SELECT P1={self.by:02X} does not name a file by identifier")
        if any(not 0 <= fid <= 0xFFFF for fid in self.path):
            raise ValueError(f"a file identifier has 2 bytes, got {self.path}")
        if self.by in _ONE_FID and len(self.path) != 1:
            raise ValueError(f"SELECT {self.by.name} names one file, got {len(self.path)}")
        if self.by == SelectBy.FILE_ID and len(self.path) > 1:
            raise ValueError("SELECT by file identifier names at most one file")
        if self.by == SelectBy.PARENT_DF and self.path:
            raise ValueError("SELECT of the parent DF takes no data")
        if self.by in _PATHS and not self.path:
            raise ValueError("a path names at least one file")

    def command(self) -> CommandAPDU:
        ne = None if self.answer is Answer.NONE else 256
        data = b"".join(fid.to_bytes(FID_SIZE) for fid in self.path)
        return CommandAPDU(CLA_ISO, Ins.SELECT, self.by, self.answer, data, ne=ne)

    @property
    def is_mf(self) -> bool:
        """Whether the command names the MF itself: no data, or 3F00, by identifier."""
        return self.by == SelectBy.FILE_ID and self.path in ((), (MF_FID,))

    @classmethod
    def parse(cls, apdu: CommandAPDU) -> SelectFile:
        """The SELECT by identifier or path in ``apdu``: 6A86 for a P1 that is not one or a
        P2 with RFU bits or an occurrence other than the first, 6700 for a data field of the
        wrong size for P1."""
        if apdu.p1 not in SelectBy._value2member_map_ or apdu.p1 == SelectBy.DF_NAME:
            raise CardError(SW.INCORRECT_P1_P2, f"SELECT P1={apdu.p1:02X} is not by file "
                                                f"identifier or path")
        if apdu.p2 & 0xF3:
            raise CardError(SW.INCORRECT_P1_P2, "SELECT by identifier or path takes P2 "
                                                "00, 04, 08 or 0C (first occurrence)")
        by = SelectBy(apdu.p1)
        data = apdu.data
        if len(data) % FID_SIZE:
            raise MalformedAPDU("file identifiers have 2 bytes each", 5)
        path = tuple(int.from_bytes(data[i:i + FID_SIZE]) for i in range(0, len(data), FID_SIZE))
        if ((by in _NO_DATA and len(path) > (by == SelectBy.FILE_ID))
                or (by in _ONE_FID and len(path) != 1) or (by in _PATHS and not path)):
            raise MalformedAPDU(f"SELECT P1={apdu.p1:02X} with {len(data)} bytes of data", 4)
        return cls(by, path, Answer(apdu.p2 & 0x0C))


def select_file(fid: int, by: SelectBy = SelectBy.FILE_ID,
                answer: Answer = Answer.FCI) -> CommandAPDU:
    """SELECT by file identifier, e.g. ``select_file(0x1001)`` = ``00 A4 00 00 02 1001 00``;
    ``by`` EF_UNDER_CURRENT_DF (P1 02) or CHILD_DF (01) narrows where the card looks."""
    return SelectFile(by, (fid,), answer).command()


def select_mf(answer: Answer = Answer.FCI) -> CommandAPDU:
    """SELECT of the MF by its identifier, ``00 A4 00 00 02 3F00 00``."""
    return select_file(MF_FID, answer=answer)


def select_path(*path: int, from_mf: bool = True, answer: Answer = Answer.FCI) -> CommandAPDU:
    """SELECT by path: from the MF (P1 08, the MF's own 3F00 left out) or from the current DF
    (P1 09), e.g. ``select_path(0x1001, 0x0015)`` = ``00 A4 08 00 04 1001 0015 00``."""
    by = SelectBy.PATH_FROM_MF if from_mf else SelectBy.PATH_FROM_CURRENT_DF
    return SelectFile(by, path, answer).command()


# -- the FCI a SELECT answers (ISO/IEC 7816-4 7.4.1, EMV Book 1 11.3.4) --------------------

FCI_TEMPLATE, DF_NAME, FCI_PROPRIETARY = 0x6F, 0x84, 0xA5


def fci(df_name: bytes, *proprietary: bytes) -> bytes:
    """The FCI template of an application: ``6F (84 DF name, A5 proprietary data objects)``,
    the data objects already encoded."""
    return tlv.constructed(FCI_TEMPLATE, tlv.encode(DF_NAME, df_name),
                           tlv.constructed(FCI_PROPRIETARY, *proprietary))


#: Templates of file control information (ISO/IEC 7816-4 table 12, 5.3.3): the control
#: parameters (FCP), the management data (FMD), both (FCI).
FCP_TEMPLATE, FMD_TEMPLATE = 0x62, 0x64
#: FCP data objects: data bytes in the file, file descriptor, file identifier, life cycle.
FILE_SIZE, FILE_DESCRIPTOR, FILE_ID, LIFE_CYCLE = 0x80, 0x82, 0x83, 0x8A
#: File descriptor bytes (ISO/IEC 7816-4 table 14): a DF; working EFs by structure.
DESCRIPTOR_DF, DESCRIPTOR_TRANSPARENT, DESCRIPTOR_LINEAR_FIXED, DESCRIPTOR_CYCLIC = (
    0x38, 0x01, 0x02, 0x06)
#: Data coding byte that follows a record file's descriptor (table 15): the usual 21.
DATA_CODING = 0x21
LCS_ACTIVATED = 0x05  # life cycle status: operational state, activated (table 13)


def control_information(answer: Answer, fcp: bytes = b"", fmd: bytes = b"") -> bytes:
    """What SELECT answers as P2 b4-b3 asks (ISO/IEC 7816-4 table 40): the FCI template
    ``6F`` holding both sets of data objects, the FCP template ``62``, the FMD template
    ``64``, or nothing; ``fcp`` and ``fmd`` are the data objects, already encoded."""
    if answer is Answer.FCI:
        return tlv.constructed(FCI_TEMPLATE, fcp, fmd)
    if answer is Answer.FCP:
        return tlv.constructed(FCP_TEMPLATE, fcp)
    if answer is Answer.FMD:
        return tlv.constructed(FMD_TEMPLATE, fmd)
    return b""


def df_control_parameters(fid: int | None, name: bytes = b"") -> bytes:
    """The FCP data objects of a DF: descriptor 38, its identifier if it has one, its name
    (an application's AID) if it has one, and its life cycle: activated."""
    return b"".join((
        tlv.encode(FILE_DESCRIPTOR, bytes((DESCRIPTOR_DF,))),
        b"" if fid is None else tlv.encode(FILE_ID, fid.to_bytes(FID_SIZE)),
        tlv.encode(DF_NAME, name) if name else b"",
        tlv.encode(LIFE_CYCLE, bytes((LCS_ACTIVATED,))),
    ))


