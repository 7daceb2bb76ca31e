"""What a tap puts on the air: the ISO/IEC 14443-3 and -4 frames behind a recorded trace,
each at the moment the timing model gives it, and the pcapng file Wireshark reads them from.

A trace (:mod:`reader.trace`) keeps APDUs; reader and card exchanged frames.
:func:`tap_frames` rebuilds them from the trace, the card's activation answers
and the :class:`~reader.timing.AirInterface`:

* activation at fc/128 (-3 6.3 to 6.5, -4 5): REQA and ATQA; per cascade
  level ANTICOLLISION (SEL, NVB 20h) and the card's UID CLn with BCC, SELECT
  (NVB 70h, CRC_A) and SAK (cascade bit until the last level); RATS (FSDI,
  CID) and ATS; a PPS when the air runs faster than 106 kbit/s;
* every APDU in I-blocks (-4 7.1): PCB, [CID], [NAD in the first block],
  INF, CRC_A; a command longer than FSC or an answer longer than FSD is
  chained (-4 7.5.2) and every block but the last is acknowledged with an
  R(ACK); the card asks S(WTX) whenever its processing outlasts the waiting
  time it has (-4 7.3), and the reader grants the same WTXM;
* the reader's S(DESELECT) and the card's answer (-4 8).

Block numbers follow the rules of -4 7.5.4: the reader starts at 0, sends
each I-block and R(ACK) with its current number and toggles it whenever the
card answers with an I-block or an R(ACK) carrying that number; the card
answers with the number it received. A block of the card is therefore what
``wallet.isodep.IsoDepCard`` answers to the reader's block before it.

Each frame starts where :mod:`reader.timing` puts it: a reader frame lasts
its frame time plus the card's frame delay, a card frame its frame time plus
the reader's turnaround, the card's processing sits after the last command
block (cut at every FWT, or WTXM times FWT, by an S(WTX) round trip). So an
exchange spans exactly the air and card time the ``--trace`` table shows,
and the last frame ends at the tap's modelled time. Pure: nothing here reads
a clock; :func:`write_capture` writes to a binary file object it is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from functools import reduce
from operator import xor

from reader.pcapng import LINKTYPE_ISO_14443, BinarySink, Direction, Iso14443Event, PcapngWriter
from reader.pcapng import iso14443_packet as _packet
from reader.timing import (
    DEFAULT_AIR,
    DEFAULT_PROFILE,
    SHORT_FRAME_S,
    AirInterface,
    BitRate,
    CardProfile,
    exchange_timing,
    frame_delay_time,
    frame_time,
    i_block_sizes,
    sfgt,
)
from reader.trace import Exchange

REQA = 0x26  # a short frame of 7 bits (-3 6.4.1)
CASCADE_TAG = 0x88  # CT, first byte of UID CLn when the UID goes on to the next level
SEL = (0x93, 0x95, 0x97)  # SEL of cascade levels 1, 2, 3 (-3 6.5.3.1)
NVB_ANTICOLLISION = 0x20  # the reader sends no UID bits yet
NVB_SELECT = 0x70  # the reader sends all 40 bits of UID CLn and BCC
SAK_CASCADE = 0x04  # UID not complete (-3 6.5.3.4)
SAK_ISO_DEP = 0x20  # UID complete, compliant with ISO/IEC 14443-4
RATS = 0xE0
PPSS = 0xD0  # PPSS with CID in b4-b1 (-4 5.3)
PPS0_PPS1_FOLLOWS = 0x11
PCB_I = 0x02
PCB_R_ACK = 0xA2
PCB_S_DESELECT = 0xC2
PCB_S_WTX = 0xF2
PCB_CHAINING = 0x10
PCB_CID = 0x08
PCB_NAD = 0x04
NAD = 0x00  # node address of the first block of a chain, when the reader uses NAD
CID = 1  # the card identifier the reader assigns when it uses CID (0 may be left out)
_UID_SIZE_BITS = {4: 0, 7: 1, 10: 2}  # ATQA b8-b7 (-3 6.5.2.1)
_TA_DEFAULT = 0x80  # same divisor both ways, 106 kbit/s only
_TA_UP_TO = {BitRate.KBPS_212: 0x11, BitRate.KBPS_424: 0x33, BitRate.KBPS_848: 0x77}
_FSCI_DEFAULT, _FWI_DEFAULT = 2, 4  # without T0 or TB (-4 5.2.3, 5.2.5)
PPS_UNKNOWN = "Wireshark's ISO 14443 dissector knows no PPS and calls it an unknown command"
DESELECT_LEFT_OUT = (
    "S(DESELECT) and its answer are priced but not written: Wireshark's ISO 14443 dissector "
    "reads one INF byte into every S-block and calls a DESELECT, which has none, malformed")


def crc_a(data: bytes) -> bytes:
    """CRC_A (-3 Annex B): CRC-16 of polynomial x^16+x^12+x^5+1 over the bits in the order
    they are sent, register preset to 6363h, sent least significant byte first.

    >>> crc_a(bytes(2)).hex(), crc_a(bytes.fromhex("1234")).hex()
    ('a01e', '26cf')
    """
    crc = 0x6363
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc.to_bytes(2, "little")


def _with_crc(data: bytes) -> bytes:
    return data + crc_a(data)


@dataclass(frozen=True, slots=True)
class Ats:
    """What the reader learns from an ATS (-4 5.2): frame size, waiting times, CID and NAD."""

    fsci: int
    fwi: int
    sfgi: int
    cid: bool
    nad: bool

    @classmethod
    def parse(cls, ats: bytes) -> Ats:
        if not ats or ats[0] != len(ats):
            raise ValueError(f"an ATS starts with its length TL: {ats.hex().upper() or 'nothing'}")
        t0 = ats[1] if len(ats) > 1 else 0
        interface = list(ats[2:])
        present = [bit for bit in (0x10, 0x20, 0x40) if t0 & bit]
        if len(interface) < len(present):
            raise ValueError(f"the ATS {ats.hex().upper()} ends inside its interface bytes")
        values = dict(zip(present, interface, strict=False))
        tb, tc = values.get(0x20), values.get(0x40)
        return cls(fsci=t0 & 0x0F if len(ats) > 1 else _FSCI_DEFAULT,
                   fwi=_FWI_DEFAULT if tb is None else tb >> 4,
                   sfgi=0 if tb is None else tb & 0x0F,
                   cid=True if tc is None else bool(tc & 0x02),
                   nad=False if tc is None else bool(tc & 0x01))


@dataclass(frozen=True, slots=True)
class Activation:
    """The card's answers before any APDU: its UID, ATQA (as sent, LSB first), last SAK, ATS."""

    uid: bytes
    atqa: bytes
    sak: int
    ats: bytes

    def __post_init__(self) -> None:
        if len(self.uid) not in _UID_SIZE_BITS:
            raise ValueError(f"a UID is 4, 7 or 10 bytes (-3 6.5.4), not {len(self.uid)}")
        if self.uid[0] == CASCADE_TAG:
            raise ValueError("a UID never starts with the cascade tag 88h (-3 6.5.4)")
        if len(self.atqa) != 2 or self.atqa[0] >> 6 != _UID_SIZE_BITS[len(self.uid)]:
            raise ValueError(f"ATQA {self.atqa.hex().upper()} does not announce a "
                             f"{len(self.uid)}-byte UID")
        if self.sak & (SAK_CASCADE | SAK_ISO_DEP) != SAK_ISO_DEP:
            raise ValueError(f"SAK {self.sak:02X} does not end the UID of an ISO-DEP card")
        Ats.parse(self.ats)

    @classmethod
    def modelled(cls, air: AirInterface = DEFAULT_AIR, uid: bytes | None = None,
                 historical: bytes | None = None) -> Activation:
        """The answers of a card as the air interface describes it, for a card whose own
        were not seen (a PC/SC or nfcpy reader keeps them): ``uid`` and ``historical`` when
        known and of the sizes the model prices, zeros otherwise."""
        if uid is None or len(uid) != air.uid_length or uid[0] == CASCADE_TAG:
            uid = bytes(air.uid_length)
        room = air.ats_length - 5
        if room < 0:
            raise ValueError(f"an ATS of {air.ats_length} bytes has no room for T0, TA, TB and TC")
        if historical is None or len(historical) != room:
            historical = bytes(room)
        ta = _TA_DEFAULT | _TA_UP_TO.get(air.bit_rate, 0)
        body = bytes((0x70 | air.fsci, ta, air.fwi << 4 | air.sfgi,
                      (0x02 if air.cid else 0) | (0x01 if air.nad else 0))) + historical
        atqa = bytes((_UID_SIZE_BITS[air.uid_length] << 6 | 0x04, 0x00))
        return cls(uid, atqa, SAK_ISO_DEP, bytes((len(body) + 1,)) + body)

    def check(self, air: AirInterface) -> None:
        """Raise ValueError unless these answers are those the timing model prices."""
        ats = Ats.parse(self.ats)
        wrong = [f"{name} {mine} (the model has {theirs})" for name, mine, theirs in (
            ("UID length", len(self.uid), air.uid_length),
            ("ATS length", len(self.ats), air.ats_length),
            ("FSCI", ats.fsci, air.fsci), ("FWI", ats.fwi, air.fwi),
            ("SFGI", ats.sfgi, air.sfgi)) if mine != theirs]
        if air.cid and not ats.cid:
            wrong.append("no CID support, but the reader uses CID")
        if air.nad and not ats.nad:
            wrong.append("no NAD support, but the reader uses NAD")
        if wrong:
            raise ValueError(f"the card's activation is not the one timed: {'; '.join(wrong)}")


class Sender(Enum):
    PCD = "PCD"
    PICC = "PICC"


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame as sent, CRC_A included where it has one, starting ``at_s`` after REQA;
    ``exchange`` is the index of the APDU exchange in the trace it carries, if any."""

    at_s: float
    sender: Sender
    data: bytes
    what: str
    exchange: int | None = None

    def __repr__(self) -> str:
        return (f"Frame({self.at_s * 1e3:.3f} ms {self.sender.value} {self.what} "
                f"{self.data.hex().upper()})")


@dataclass(frozen=True, slots=True)
class AirTrace:
    """A tap's frames and the moment, after REQA, the reader may transmit again."""

    frames: tuple[Frame, ...]
    end_s: float


class _Air:
    """The cursor of a tap being framed: frames so far and the time now."""

    def __init__(self, air: AirInterface) -> None:
        self.air = air
        self.t = 0.0
        self.frames: list[Frame] = []
        self.exchange: int | None = None

    def pcd(self, data: bytes, what: str, rate: BitRate | None = None) -> None:
        self.frames.append(Frame(self.t, Sender.PCD, data, what, self.exchange))
        self.t += self.air.pcd_frame(len(data), rate)

    def picc(self, data: bytes, what: str, rate: BitRate | None = None,
             after: float | None = None) -> None:
        self.frames.append(Frame(self.t, Sender.PICC, data, what, self.exchange))
        if after is None:
            self.t += self.air.picc_frame(len(data), rate)
        else:
            self.t += frame_time(len(data), rate or self.air.bit_rate) + after


def _cascade(uid: bytes) -> list[bytes]:
    """UID CL1, CL2, CL3: four bytes each, CT first where the UID goes on (-3 6.5.4)."""
    if len(uid) == 4:
        return [uid]
    if len(uid) == 7:
        return [bytes((CASCADE_TAG,)) + uid[:3], uid[3:]]
    return [bytes((CASCADE_TAG,)) + uid[:3], bytes((CASCADE_TAG,)) + uid[3:6], uid[6:]]


def _activate(cursor: _Air, activation: Activation) -> None:
    air, slow = cursor.air, BitRate.KBPS_106
    cursor.frames.append(Frame(0.0, Sender.PCD, bytes((REQA,)), "REQA"))
    cursor.t = SHORT_FRAME_S + frame_delay_time(REQA >> 6 & 1)  # its 7th bit is its last
    cursor.picc(activation.atqa, "ATQA", slow)
    levels = _cascade(activation.uid)
    for level, (sel, part) in enumerate(zip(SEL, levels, strict=False), start=1):
        named = part + bytes((reduce(xor, part, 0),))  # UID CLn and its BCC
        cursor.pcd(bytes((sel, NVB_ANTICOLLISION)), f"ANTICOLLISION CL{level}", slow)
        cursor.picc(named, f"UID CL{level}", slow)
        cursor.pcd(_with_crc(bytes((sel, NVB_SELECT)) + named), f"SELECT CL{level}", slow)
        sak = activation.sak if level == len(levels) else SAK_CASCADE
        cursor.picc(_with_crc(bytes((sak,))), "SAK", slow)
    cid = CID if air.cid else 0
    cursor.pcd(_with_crc(bytes((RATS, air.fsdi << 4 | cid))), "RATS", slow)
    cursor.picc(_with_crc(activation.ats), "ATS", slow,
                after=max(sfgt(air.sfgi), air.turnaround_s))
    if air.bit_rate is not slow:
        d = (air.bit_rate // 106).bit_length() - 1  # DSI = DRI: D = 2, 4, 8 -> 1, 2, 3
        cursor.pcd(_with_crc(bytes((PPSS | cid, PPS0_PPS1_FOLLOWS, d << 2 | d))), "PPS", slow)
        cursor.picc(_with_crc(bytes((PPSS | cid,))), "PPS response", slow)


def _prologue(air: AirInterface, pcb: int, nad: bool = False) -> bytes:
    if air.cid:
        pcb |= PCB_CID
    if nad:
        pcb |= PCB_NAD
    return bytes((pcb,)) + (bytes((CID,)) if air.cid else b"") + (bytes((NAD,)) if nad else b"")


def _blocks(air: AirInterface, apdu: bytes, size: int) -> list[tuple[bytes, bool, bool]]:
    """The INF of each I-block ``apdu`` takes in frames of ``size`` bytes (the chunks of
    :func:`reader.timing.i_block_sizes`), whether NAD rides in it and whether more follow."""
    chunks: list[tuple[bytes, bool, bool]] = []
    offset = 0
    sizes = i_block_sizes(len(apdu), size, air.cid, air.nad)
    for index, frame in enumerate(sizes):
        nad = air.nad and index == 0
        length = frame - 3 - air.cid - nad
        chunks.append((apdu[offset:offset + length], nad, index < len(sizes) - 1))
        offset += length
    return chunks


def _exchange(cursor: _Air, exchange: Exchange, number: int,
              profile: CardProfile) -> int:
    """Frame one APDU exchange from the reader's block ``number``; its next number."""
    air = cursor.air
    timed = exchange_timing(exchange.command, exchange.response, air, profile)

    def i_block(inf: bytes, nad: bool, more: bool) -> bytes:
        pcb = PCB_I | number | (PCB_CHAINING if more else 0)
        return _with_crc(_prologue(air, pcb, nad) + inf)

    def ack() -> bytes:
        return _with_crc(_prologue(air, PCB_R_ACK | number))

    for inf, nad, more in _blocks(air, exchange.command, air.fsc):
        cursor.pcd(i_block(inf, nad, more), "I-block")
        if more:
            cursor.picc(ack(), "R(ACK)")  # the card acknowledges with the number it got
            number ^= 1
    processing = profile.processing_s(exchange.command)
    wait = air.fwt_s
    for _ in range(timed.wtx_count):  # the card's waiting time runs out before its answer
        cursor.t += wait
        processing -= wait
        wtx = _with_crc(_prologue(air, PCB_S_WTX) + bytes((air.wtxm,)))
        cursor.picc(wtx, "S(WTX) request")
        cursor.pcd(wtx, "S(WTX) response")
        wait = air.wtxm * air.fwt_s
    cursor.t += processing
    for inf, nad, more in _blocks(air, exchange.response, air.fsd):
        cursor.picc(i_block(inf, nad, more), "I-block")
        number ^= 1  # an I-block with the reader's number: the reader toggles
        if more:
            cursor.pcd(ack(), "R(ACK)")
    return number


def tap_frames(trace: Sequence[Exchange], activation: Activation,
               air: AirInterface = DEFAULT_AIR, profile: CardProfile = DEFAULT_PROFILE,
               *, deselect: bool = True) -> AirTrace:
    """The frames of a recorded tap, timed as :func:`reader.timing.model_tap` prices it.

    ``activation`` must be the card ``air`` describes (UID and ATS lengths,
    FSCI, FWI, SFGI): a ValueError says where they differ.
    """
    activation.check(air)
    cursor = _Air(air)
    _activate(cursor, activation)
    number = 0  # rule A: the reader's first block number is 0
    for index, exchange in enumerate(trace):
        cursor.exchange = index
        number = _exchange(cursor, exchange, number, profile)
    cursor.exchange = None
    if deselect:
        block = _with_crc(_prologue(air, PCB_S_DESELECT))
        cursor.pcd(block, "S(DESELECT)")
        cursor.picc(block, "S(DESELECT)")
    return AirTrace(tuple(cursor.frames), cursor.t)


def describe(air: AirInterface) -> str:
    """The air interface a capture was modelled on, in one line for its header."""
    return (f"ISO/IEC 14443 Type A at {air.bit_rate.value} kbit/s, FSC {air.fsc}, FSD {air.fsd}, "
            f"FWI {air.fwi}, SFGI {air.sfgi}, CID {'on' if air.cid else 'off'}, "
            f"NAD {'on' if air.nad else 'off'}, reader turnaround "
            f"{air.turnaround_s * 1e6:.0f} us; frame times are modelled (reader/timing.py), "
            f"not measured")


def write_capture(sink: BinarySink, tapped: AirTrace, started_us: int,
                  air: AirInterface = DEFAULT_AIR, application: str | None = None) -> int:
    """Write ``tapped`` to ``sink`` as pcapng (``LINKTYPE_ISO_14443``): the field on at REQA,
    every frame at ``started_us`` plus its modelled start, the field off when the tap ends.
    The number of packets written."""
    notes = [describe(air), DESELECT_LEFT_OUT]
    if air.bit_rate is not BitRate.KBPS_106:
        notes.append(PPS_UNKNOWN)
    writer = PcapngWriter(sink, LINKTYPE_ISO_14443, application=application,
                          comment=". ".join(notes) + ".",
                          interface_name="koala-air",
                          interface_description_text="a Koala band tap, modelled")

    def at(seconds: float) -> int:
        return started_us + round(seconds * 1e6)

    writer.packet(at(0.0), _packet(Iso14443Event.FIELD_ON))
    for frame in tapped.frames:
        if frame.what == "S(DESELECT)":
            continue
        if frame.sender is Sender.PCD:
            writer.packet(at(frame.at_s), _packet(Iso14443Event.PCD_TO_PICC, frame.data),
                          Direction.OUTBOUND)
        else:
            writer.packet(at(frame.at_s), _packet(Iso14443Event.PICC_TO_PCD, frame.data),
                          Direction.INBOUND)
    writer.packet(at(tapped.end_s), _packet(Iso14443Event.FIELD_OFF))
    return writer.packets
