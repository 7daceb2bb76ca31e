"""ISO/IEC 7816-4 instructions and the interindustry commands, built and parsed once.

:mod:`applets.apdu` encodes and decodes the bytes of any APDU; this module
says what the header of each command the band speaks means. Terminals and
the issuer build their commands with the functions here, the card reads the
same fields back with the parsers here, so an addressing rule (an SFI in
P2 b8-b4, a record number, a logical channel in the class byte) is written once.
SELECT, with its file addressing and the control information it answers, is
:mod:`applets.selection`'s.

Builders raise :class:`ValueError` for fields that do not fit their bits
(our mistake), and leave the rest for the card to refuse: a terminal may
send what a card's directory names. Parsers run on the card and raise
:class:`CardError` with the status word the terminal should get (its
mistake), never anything else.
A parser that cannot fail (every P1 P2 decodes) leaves to the card what it
supports, so each card refuses in the order it always has.

An instruction byte means different commands in different classes (CLA 00
is interindustry, 80 proprietary: GlobalPlatform, PBOC, EMV); :class:`Ins`
lists each meaning once, and a later name with the same byte is an alias.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import IntEnum

from applets.apdu import CommandAPDU
from applets.errors import CardError
from applets.sw import SW, wrong_le

#: CLA: interindustry, no secure messaging, basic channel (ISO/IEC 7816-4 5.4.1).
CLA_ISO = 0x00
#: CLA: interindustry with secure messaging in a proprietary format (b3), as EMV and PBOC
#: issuer scripts send PUT DATA.
CLA_ISO_SM = 0x04
#: CLA: proprietary class (b8), where GlobalPlatform, PBOC and EMV put their own commands.
CLA_PROPRIETARY = 0x80


class Ins(IntEnum):
    """The instruction bytes the band and its terminals use, by the standard that names them."""

    # ISO/IEC 7816-4 clause 11, interindustry
    SELECT = 0xA4
    READ_BINARY = 0xB0
    UPDATE_BINARY = 0xD6
    READ_RECORD = 0xB2
    UPDATE_RECORD = 0xDC
    APPEND_RECORD = 0xE2
    GET_DATA = 0xCA
    GET_DATA_ODD = 0xCB  # GET DATA with a BER-TLV data field (odd INS)
    PUT_DATA = 0xDA
    GET_RESPONSE = 0xC0
    MANAGE_CHANNEL = 0x70
    INTERNAL_AUTHENTICATE = 0x88
    EXTERNAL_AUTHENTICATE = 0x82
    GET_CHALLENGE = 0x84
    VERIFY = 0x20
    # GlobalPlatform Card Specification 2.3, chapter 11 (CLA 80 / 84)
    INITIALIZE_UPDATE = 0x50
    INSTALL = 0xE6
    DELETE = 0xE4
    GET_STATUS = 0xF2
    SET_STATUS = 0xF0
    PUT_KEY = 0xD8
    STORE_DATA = 0xE2  # alias of APPEND_RECORD
    # JR/T 0025 (PBOC 2.0) electronic purse, CLA 80
    INITIALIZE = 0x50  # INITIALIZE FOR LOAD / PURCHASE / CAPP PURCHASE (P1); alias
    CREDIT_FOR_LOAD = 0x52
    DEBIT_FOR_PURCHASE = 0x54  # DEBIT FOR (CAPP) PURCHASE
    GET_TRANSACTION_PROVE = 0x5A
    GET_BALANCE = 0x5C
    UPDATE_CAPP_DATA_CACHE = 0xDC  # alias of UPDATE_RECORD
    CHANGE_PIN = 0x5E  # CHANGE PIN (P1 01) / RELOAD PIN (P1 00)
    # EMV 4.3 Book 3 clause 6.5 (PBOC 3.0 e-cash), CLA 80
    GET_PROCESSING_OPTIONS = 0xA8
    GENERATE_AC = 0xAE


# -- the class byte: logical channels (ISO/IEC 7816-4 5.4.1, GPCS 11.1.4) -----------------

#: The basic channel and the number of logical channels a class byte can name: 0-3 in the
#: first class (b2-b1), 4-19 in the further class (01xx xxxx, b4-b1 = channel - 4).
BASIC_CHANNEL, CHANNELS, FIRST_CLASS_CHANNELS = 0, 20, 4
_FURTHER, _FURTHER_SM, _CHAINING, _FIRST_SM = 0x40, 0x20, 0x10, 0x0C


def secure_messaging(cla: int) -> bool:
    """Whether ``cla`` announces secure messaging: b4-b3 in the first class, b6 in the
    further class."""
    return bool(cla & (_FURTHER_SM if cla & _FURTHER else _FIRST_SM))


def on_basic_channel(cla: int) -> int:
    """``cla`` as the same command would carry it on the basic channel: channel bits
    cleared, chaining (b5) kept, and the further class's one secure messaging bit (b6) as
    the first class codes it: b3 in a proprietary class (GlobalPlatform's 84), b4 in the
    interindustry one (ISO secure messaging, header not processed).

    That is also the class byte a C-MAC covers (GP Amendment D 6.2.4: the logical channel
    number is set to zero), so an application reads the same command on every channel."""
    if not cla & _FURTHER:
        return cla if cla & 0x20 else cla & ~0x03
    sm = (0x04 if cla & 0x80 else 0x08) if cla & _FURTHER_SM else 0x00
    return (cla & 0x80) | (cla & _CHAINING) | sm


def on_channel(cla: int, channel: int) -> int:
    """The class byte of ``cla`` (a basic-channel class, as the builders here make) on
    logical ``channel``."""
    if not BASIC_CHANNEL <= channel < CHANNELS:
        raise ValueError(f"a logical channel is 0 to {CHANNELS - 1}, got {channel}")
    if not 0 <= cla <= 0xFE or cla & 0x63:
        raise ValueError(f"CLA {cla:02X} is not a basic-channel class")
    if channel < FIRST_CLASS_CHANNELS:
        return cla | channel
    sm = _FURTHER_SM if cla & _FIRST_SM else 0x00
    return (cla & 0x80) | _FURTHER | sm | (cla & _CHAINING) | (channel - FIRST_CLASS_CHANNELS)


# -- MANAGE CHANNEL (ISO/IEC 7816-4 11.1.2) ------------------------------------------------

MANAGE_OPEN, MANAGE_CLOSE = 0x00, 0x80


@dataclass(frozen=True, slots=True)
class ManageChannel:
    """MANAGE CHANNEL: open ``channel`` (0: the card picks one and answers its number) or
    close it. P2 names channels 0-19 directly, whatever class the command came in."""

    close: bool
    channel: int = 0

    def command(self, origin: int = BASIC_CHANNEL) -> CommandAPDU:
        if not BASIC_CHANNEL <= self.channel < CHANNELS or (self.close and not self.channel):
            raise ValueError(f"cannot {'close' if self.close else 'open'} channel {self.channel}")
        cla = on_channel(CLA_ISO, origin)
        if self.close:
            return CommandAPDU(cla, Ins.MANAGE_CHANNEL, MANAGE_CLOSE, self.channel)
        ne = 1 if self.channel == 0 else None
        return CommandAPDU(cla, Ins.MANAGE_CHANNEL, MANAGE_OPEN, self.channel, ne=ne)

    @classmethod
    def parse(cls, apdu: CommandAPDU) -> ManageChannel:
        """The MANAGE CHANNEL in ``apdu``, refused as a Java Card runtime refuses it (JCRE
        4.5.1, 4.6.1): 6882 for secure messaging, 6A81 for a P1 that is neither open nor
        close, a channel past 19 or closing the basic channel, 6700 for a data field, 6C01
        when the card is to pick the channel but Le is not 01."""
        if secure_messaging(apdu.cla):
            raise CardError(SW.SECURE_MESSAGING_NOT_SUPPORTED, "MANAGE CHANNEL takes no SM")
        if apdu.p1 not in (MANAGE_OPEN, MANAGE_CLOSE) or apdu.p2 >= CHANNELS:
            raise CardError(SW.FUNCTION_NOT_SUPPORTED,
                            f"MANAGE CHANNEL P1={apdu.p1:02X} P2={apdu.p2:02X}")
        if apdu.data:
            raise CardError(SW.WRONG_LENGTH, "MANAGE CHANNEL has no data field")
        close = apdu.p1 == MANAGE_CLOSE
        if close and apdu.p2 == BASIC_CHANNEL:
            raise CardError(SW.FUNCTION_NOT_SUPPORTED, "the basic channel never closes")
        if not close and apdu.p2 == 0 and apdu.ne != 1:
            raise CardError(wrong_le(1), "the card answers the channel it opened in one byte")
        return cls(close, apdu.p2)


def manage_channel_open(channel: int = 0, origin: int = BASIC_CHANNEL) -> CommandAPDU:
    """MANAGE CHANNEL open: ``00 70 00 00 01`` (the card picks, answers its number) or
    ``00 70 00 nn`` (open channel nn)."""
    return ManageChannel(False, channel).command(origin)


def manage_channel_close(channel: int, origin: int = BASIC_CHANNEL) -> CommandAPDU:
    """MANAGE CHANNEL close: ``00 70 80 nn``."""
    return ManageChannel(True, channel).command(origin)


# -- READ / UPDATE BINARY (ISO/IEC 7816-4 11.3.3, 11.3.5) ---------------------------------

SFI_MAX = 30  # 11111 is RFU


@dataclass(frozen=True, slots=True)
class BinaryReference:
    """Where a binary command points: ``offset`` in the EF with short identifier ``sfi``
    (P1 = 100 sfi, P2 = offset), or in the current EF when ``sfi`` is None (a 15-bit
    offset in P1 P2)."""

    sfi: int | None
    offset: int = 0

    def __post_init__(self) -> None:
        if self.sfi is None:
            if not 0 <= self.offset <= 0x7FFF:
                raise ValueError(f"an offset in the current EF is 15 bits, got {self.offset}")
        elif not 0 <= self.sfi <= 0x1F or not 0 <= self.offset <= 0xFF:
            raise ValueError(f"SFI {self.sfi} with offset {self.offset} does not fit P1 P2")

    def p1p2(self) -> tuple[int, int]:
        if self.sfi is None:
            return self.offset >> 8, self.offset & 0xFF
        return 0x80 | self.sfi, self.offset

    @classmethod
    def parse(cls, apdu: CommandAPDU) -> BinaryReference:
        """P1 P2 of ``apdu``; 6A86 when P1 names an SFI with b7-b6 set."""
        if apdu.p1 & 0x80:
            if apdu.p1 & 0x60:
                raise CardError(SW.INCORRECT_P1_P2, "P1 b7-b6 must be 0 with an SFI")
            return cls(apdu.p1 & 0x1F, apdu.p2)
        return cls(None, (apdu.p1 << 8) | apdu.p2)


def read_binary(sfi: int | None, offset: int = 0, ne: int = 256) -> CommandAPDU:
    """READ BINARY of the EF ``sfi`` (None: the current EF) from ``offset``."""
    if sfi is not None and not 1 <= sfi <= SFI_MAX:
        raise ValueError(f"an SFI is 1 to {SFI_MAX}, got {sfi}")
    p1, p2 = BinaryReference(sfi, offset).p1p2()
    return CommandAPDU(CLA_ISO, Ins.READ_BINARY, p1, p2, ne=ne)


# -- records (ISO/IEC 7816-4 7.3.3, 11.4) ------------------------------------------------

#: P2 b3-b1: P1 is a record number (read that one record) / a record identifier, first occurrence.
BY_NUMBER, BY_IDENTIFIER = 0b100, 0b000
RECORD_NUMBER_MAX = 0xFF  # P1 00 is the current record


@dataclass(frozen=True, slots=True)
class RecordReference:
    """P1 P2 of a record command: the EF by SFI in P2 b8-b4 (0: the current EF), and in P1
    a record number or identifier as P2 b3-b1 (``mode``) says. Every P1 P2 decodes: which
    modes a file supports is the card's to say."""

    sfi: int
    p1: int
    mode: int

    def __post_init__(self) -> None:
        if not (0 <= self.sfi <= 0x1F and 0 <= self.p1 <= 0xFF and 0 <= self.mode <= 0b111):
            raise ValueError(f"SFI {self.sfi}, P1 {self.p1}, mode {self.mode} do not fit P1 P2")

    @property
    def p2(self) -> int:
        return self.sfi << 3 | self.mode

    @property
    def number(self) -> int | None:
        """The record number, when P1 is one (P1 00 would be the current record)."""
        return self.p1 if self.mode == BY_NUMBER and self.p1 != 0 else None

    @property
    def identifier(self) -> int | None:
        """The record identifier (a record's first byte), first occurrence."""
        return self.p1 if self.mode == BY_IDENTIFIER else None

    @classmethod
    def parse(cls, apdu: CommandAPDU) -> RecordReference:
        return cls(apdu.p2 >> 3, apdu.p1, apdu.p2 & 0b111)


def _record_sfi(sfi: int) -> int:
    if not 0 <= sfi <= SFI_MAX:
        raise ValueError(f"an SFI is 1 to {SFI_MAX} (0: the current EF), got {sfi}")
    return sfi


def read_record(sfi: int, number: int, ne: int = 256) -> CommandAPDU:
    """READ RECORD ``number`` (1 is the first, or a cyclic file's newest) of EF ``sfi``
    (0: the current EF)."""
    if not 1 <= number <= RECORD_NUMBER_MAX:
        raise ValueError(f"a record number is 1 to {RECORD_NUMBER_MAX}, got {number}")
    ref = RecordReference(_record_sfi(sfi), number, BY_NUMBER)
    return CommandAPDU(CLA_ISO, Ins.READ_RECORD, ref.p1, ref.p2, ne=ne)


def read_record_by_id(sfi: int, identifier: int, ne: int = 256) -> CommandAPDU:
    """READ RECORD of the first record of EF ``sfi`` whose first byte is ``identifier``."""
    ref = RecordReference(_record_sfi(sfi), identifier, BY_IDENTIFIER)
    return CommandAPDU(CLA_ISO, Ins.READ_RECORD, ref.p1, ref.p2, ne=ne)


# -- data objects (ISO/IEC 7816-4 11.5.2, 11.5.6) ------------------------------------------


def data_tag(apdu: CommandAPDU) -> int:
    """The tag GET DATA or PUT DATA names in P1 P2 (00xx for a one-byte tag)."""
    return apdu.p1 << 8 | apdu.p2


def _tag_p1p2(tag: int) -> tuple[int, int]:
    if not 0 <= tag <= 0xFFFF:
        raise ValueError(f"a GET / PUT DATA tag fits P1 P2, got {tag:X}")
    return tag >> 8, tag & 0xFF


def get_data(tag: int, cla: int = CLA_PROPRIETARY, ne: int = 256) -> CommandAPDU:
    """GET DATA of ``tag``; class 80 as GlobalPlatform, EMV and PBOC cards take it."""
    return CommandAPDU(cla, Ins.GET_DATA, *_tag_p1p2(tag), ne=ne)


def put_data(tag: int, data: bytes, cla: int = CLA_ISO_SM) -> CommandAPDU:
    """PUT DATA of ``tag``; class 04 as an issuer script sends it, its MAC in ``data``."""
    return CommandAPDU(cla, Ins.PUT_DATA, *_tag_p1p2(tag), data)


# -- authentication and the rest -------------------------------------------------------------


def external_authenticate(data: bytes, cla: int = CLA_ISO, p1: int = 0x00) -> CommandAPDU:
    """EXTERNAL AUTHENTICATE with the host's (issuer's) cryptogram; GlobalPlatform puts
    the security level in P1."""
    return CommandAPDU(cla, Ins.EXTERNAL_AUTHENTICATE, p1, 0x00, data)


#: The challenge sizes GET CHALLENGE answers on the band: a PBOC MAC's 4-byte initial value,
#: an 8-byte EXTERNAL AUTHENTICATE challenge.
CHALLENGE_SIZES = (4, 8)


def get_challenge(size: int = 8) -> CommandAPDU:
    """GET CHALLENGE: ``size`` random bytes from the card, ``00 84 00 00 Le``."""
    if size not in CHALLENGE_SIZES:
        raise ValueError(f"a challenge has {' or '.join(map(str, CHALLENGE_SIZES))} bytes")
    return CommandAPDU(CLA_ISO, Ins.GET_CHALLENGE, 0x00, 0x00, ne=size)


def challenge_size(apdu: CommandAPDU) -> int:
    """The size GET CHALLENGE asks for (ISO/IEC 7816-4 11.5.3): 6A86 unless P1 P2 is
    00 00, 6700 for a data field or an Le that is not a size the card gives."""
    if (apdu.p1, apdu.p2) != (0x00, 0x00):
        raise CardError(SW.INCORRECT_P1_P2, "GET CHALLENGE takes P1 P2 00 00")
    if apdu.data or apdu.ne not in CHALLENGE_SIZES:
        raise CardError(SW.WRONG_LENGTH, f"GET CHALLENGE gives "
                                         f"{' or '.join(map(str, CHALLENGE_SIZES))} bytes")
    return apdu.ne


#: VERIFY P2 00: no particular reference data, as PBOC names its one holder PIN.
PIN_REFERENCE = 0x00


def verify(data: bytes = b"", reference: int = PIN_REFERENCE) -> CommandAPDU:
    """VERIFY ``data`` against reference ``reference``; with no data, how many tries are
    left (ISO/IEC 7816-4 11.5.6: ``00 20 00 P2``)."""
    return CommandAPDU(CLA_ISO, Ins.VERIFY, 0x00, reference, data)


def verification_data(apdu: CommandAPDU, references: Collection[int] = (PIN_REFERENCE,)) -> bytes:
    """What VERIFY presents, ``b""`` for none (the terminal asks for the tries left): 6A86
    unless P1 is 00 and P2 names one of the card's ``references``."""
    if apdu.p1 != 0x00 or apdu.p2 not in references:
        raise CardError(SW.INCORRECT_P1_P2, f"VERIFY P1 P2 {apdu.p1:02X} {apdu.p2:02X} names "
                                            f"no reference data of this card")
    return apdu.data


def get_response(ne: int = 256, channel: int = BASIC_CHANNEL) -> CommandAPDU:
    """GET RESPONSE: the next ``ne`` bytes a card announced with 61xx (on ``channel``,
    where the command that announced them came)."""
    return CommandAPDU(on_channel(CLA_ISO, channel), Ins.GET_RESPONSE, 0x00, 0x00, ne=ne)


def get_response_ne(apdu: CommandAPDU) -> int:
    """How many bytes a GET RESPONSE asks for (ISO/IEC 7816-4 11.6.1): 6A86 unless
    P1 P2 = 00 00, 6700 for a data field or no Le (it is a case 2 command)."""
    if apdu.p1 or apdu.p2:
        raise CardError(SW.INCORRECT_P1_P2, "GET RESPONSE takes P1 P2 = 00 00")
    if apdu.data or apdu.ne is None:
        raise CardError(SW.WRONG_LENGTH, "GET RESPONSE has no data field and an Le")
    return apdu.ne
