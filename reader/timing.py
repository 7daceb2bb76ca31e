"""ISO/IEC 14443 Type A air-interface timing: what a tap costs in the field.

The host seconds in a :class:`~reader.trace.Exchange` time Python, not radio.
A gate's deadline (300 ms PBOC / T-Union transit, 200 ms FeliCa-class, 500 ms
EMV contactless) is about the card in the field, so each tap is also priced on
the air: frames at the bit rate (ISO/IEC 14443-2, -3 6.2.3), the guard times
between them (-3 6.2.1, -4 5.2.5), block framing and chaining (-4 7.1, 7.5),
waiting-time extensions (-4 7.2, 7.3), and a card profile of processing times.
Clause numbers follow ISO/IEC 14443-3:2018 and -4:2018.

The model is pure: a trace and parameters in, seconds out, no clock read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from types import MappingProxyType

from applets.iso7816 import CLA_PROPRIETARY, Ins
from reader.trace import Exchange

FC_HZ = 13.56e6
"""Carrier frequency fc (-2 6); every 14443 time is a whole number of 1/fc."""

DEADLINE_TRANSIT_S = 0.300
DEADLINE_FELICA_S = 0.200
DEADLINE_EMV_S = 0.500

FDT_PCD_MIN_S = 1172 / FC_HZ
"""Shortest PICC->PCD frame delay the standard allows a reader (-3 6.2.1.2), 86.4 us."""
TURNAROUND_DEFAULT_S = 6780 / FC_HZ
"""Reader turnaround, 500 us: the NFC Forum Digital poller minimum FDT_A,POLL,MIN,
which EMVCo and gate readers also keep; ISO's 1172/fc floor is rarely met in practice."""

_FWT_UNIT_S = 256 * 16 / FC_HZ  # -4 7.2 and 5.2.5: FWT and SFGT both step by 2**FWI units of this
_FRAME_SIZES = (16, 24, 32, 40, 48, 64, 96, 128, 256)  # FSC/FSD by FSCI/FSDI 0..8 (-4 5.1, 5.2.3)
_PROLOGUE_AND_CRC = 3  # PCB plus the 2-byte CRC_A (-4 7.1.1, -3 6.2.4); CID and NAD add one each
_REQA_LAST_BIT = 0  # REQA is 26h, 7 bits LSB first: 0,1,1,0,0,1,0 (-3 6.4.1)


class BitRate(IntEnum):
    """Bit rates in kbit/s, the same both ways: fc/128, fc/64, fc/32, fc/16 (-2 and -3 6.1)."""

    KBPS_106 = 106
    KBPS_212 = 212
    KBPS_424 = 424
    KBPS_848 = 848

    @property
    def etu_s(self) -> float:
        """One elementary time unit (a bit period): 128/(D*fc) with divisor D = 1, 2, 4, 8."""
        return 128 / (self.value // 106 * FC_HZ)


def frame_time(n_bytes: int, bit_rate: BitRate = BitRate.KBPS_106) -> float:
    """Air time of a standard frame: start bit S, 8 data bits and odd parity per byte, end bit E.

    -3 6.2.3.2.1 gives Type A this one byte-plus-parity format at fc/128 up to
    fc/16 in both directions, so it applies at every :class:`BitRate`. S and E
    count one etu each; where the last pause sits inside E is folded into FDT.
    """
    if n_bytes < 1:
        raise ValueError(f"a standard frame carries at least one byte, not {n_bytes}")
    return (2 + 9 * n_bytes) * bit_rate.etu_s


SHORT_FRAME_S = (1 + 7 + 1) * BitRate.KBPS_106.etu_s
"""REQA/WUPA short frame: S, 7 data bits, E, always at fc/128 (-3 6.2.3.1)."""


def frame_delay_time(last_bit: int = 1) -> float:
    """PCD->PICC frame delay, (n*128 + 84)/fc after a logic 1, +20 after a 0 (-3 6.2.1.1).

    n = 9, the value mandated for REQA, ANTICOLLISION and SELECT and the least
    allowed for any other frame; any longer reply is card processing time.
    The 1/fc value is kept at every bit rate: it is the card's turnaround.
    """
    if last_bit not in (0, 1):
        raise ValueError(f"the last bit of a frame is 0 or 1, not {last_bit}")
    return (9 * 128 + (84 if last_bit else 20)) / FC_HZ


def fwt(fwi: int) -> float:
    """Frame waiting time (256*16/fc) * 2**FWI, FWI 0..14 (-4 7.2): 302 us to 4.95 s."""
    if not 0 <= fwi <= 14:
        raise ValueError(f"FWI must be 0..14 (15 is RFU), not {fwi}")
    return _FWT_UNIT_S * (1 << fwi)


def sfgt(sfgi: int) -> float:
    """Start-up frame guard time after the ATS (-4 5.2.5): none for 0, else (256*16/fc)*2**SFGI."""
    if not 0 <= sfgi <= 14:
        raise ValueError(f"SFGI must be 0..14 (15 is RFU), not {sfgi}")
    return _FWT_UNIT_S * (1 << sfgi) if sfgi else 0.0


def frame_size(index: int) -> int:
    """Bytes in the largest frame for an FSCI (ATS T0) or FSDI (RATS), 0..8 -> 16..256."""
    if not 0 <= index < len(_FRAME_SIZES):
        raise ValueError(f"FSCI/FSDI must be 0..8 (16..256 bytes), not {index}")
    return _FRAME_SIZES[index]


def i_block_sizes(inf_length: int, size: int, cid: bool = False, nad: bool = False) -> list[int]:
    """Air bytes of each I-block carrying ``inf_length`` bytes of INF in frames of ``size``.

    A block is PCB, [CID], [NAD], INF, CRC_A (-4 7.1); what does not fit is
    chained (-4 7.5.2). NAD rides only in the first block of a chain (7.1.1.3).
    """
    if inf_length < 1:
        raise ValueError("an I-block needs INF: a command or response cannot be empty")
    if size <= _PROLOGUE_AND_CRC + cid + nad:
        raise ValueError(f"a {size}-byte frame leaves no room for INF")
    sizes: list[int] = []
    remaining, first = inf_length, True
    while remaining:
        overhead = _PROLOGUE_AND_CRC + cid + (nad and first)
        chunk = min(remaining, size - overhead)
        sizes.append(overhead + chunk)
        remaining, first = remaining - chunk, False
    return sizes


@dataclass(frozen=True, slots=True)
class AirInterface:
    """The link a tap runs over, as the ATS and the reader set it up.

    Defaults match a typical PBOC / T-Union CPU card (an FM1208 or JCOP-class
    ATS such as ``0D 78 80 80 02 ...``): T0 = 78h gives FSCI 8 (256 bytes) and
    TA/TB/TC present; TB = 80h gives FWI 8 (77 ms), SFGI 0; TC = 02h offers CID
    but no NAD, and with one card on the reader the gate sends no CID; TL 13 =
    TL, T0, TA, TB, TC and 8 historical bytes; a 4-byte NUID (one cascade).
    Gates stay at 106 kbit/s, the one rate every card has, and ask FSDI 8.
    ``wtxm`` is the multiplier a card puts in each S(WTX) (-4 7.3); 1 asks
    for one FWT at a time.
    """

    bit_rate: BitRate = BitRate.KBPS_106
    fwi: int = 8
    sfgi: int = 0
    fsci: int = 8
    fsdi: int = 8
    cid: bool = False
    nad: bool = False
    uid_length: int = 4
    ats_length: int = 13
    turnaround_s: float = TURNAROUND_DEFAULT_S
    wtxm: int = 1

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "bit_rate", BitRate(self.bit_rate))
        except ValueError:
            raise ValueError(
                f"unknown bit rate {self.bit_rate} kbit/s; Type A has 106, 212, 424 and 848"
            ) from None
        fwt(self.fwi)  # each of these raises ValueError when out of range
        sfgt(self.sfgi)
        frame_size(self.fsci)
        frame_size(self.fsdi)
        if self.uid_length not in (4, 7, 10):
            raise ValueError(f"a UID is 4, 7 or 10 bytes (-3 6.5.4), not {self.uid_length}")
        if not 1 <= self.ats_length <= self.fsd - 2:
            raise ValueError(f"ATS length must be 1..FSD-2={self.fsd - 2}, not {self.ats_length}")
        if self.turnaround_s < FDT_PCD_MIN_S:
            raise ValueError(f"reader turnaround {self.turnaround_s} s < 1172/fc (-3 6.2.1.2)")
        if not 1 <= self.wtxm <= 59:
            raise ValueError(f"WTXM must be 1..59 (-4 7.3), not {self.wtxm}")

    @property
    def fsc(self) -> int:
        """Largest frame the card accepts."""
        return frame_size(self.fsci)

    @property
    def fsd(self) -> int:
        """Largest frame the reader accepts."""
        return frame_size(self.fsdi)

    @property
    def fwt_s(self) -> float:
        return fwt(self.fwi)

    def pcd_frame(self, n_bytes: int, bit_rate: BitRate | None = None) -> float:
        """A reader frame and the card's frame delay after it.

        CRC_A bytes are not computed, so the last bit is taken as 1: the longer
        FDT, at most 64/fc (4.7 us) over.
        """
        return frame_time(n_bytes, bit_rate or self.bit_rate) + frame_delay_time()

    def picc_frame(self, n_bytes: int, bit_rate: BitRate | None = None) -> float:
        """A card frame and the reader's turnaround after it."""
        return frame_time(n_bytes, bit_rate or self.bit_rate) + self.turnaround_s


DEFAULT_AIR = AirInterface()


def activation_time(air: AirInterface = DEFAULT_AIR) -> float:
    """REQA to the first I-block: select (-3 6.5), RATS/ATS (-4 5.1, 5.2), PPS (-4 5.3).

    All at fc/128. One ANTICOLLISION (no collision: one card on the reader)
    and SELECT per cascade level; the ATS is followed by SFGT or the reader's
    turnaround, whichever is longer; a PPS switches to any faster bit rate.
    """
    slow = BitRate.KBPS_106
    total = SHORT_FRAME_S + frame_delay_time(_REQA_LAST_BIT) + air.picc_frame(2, slow)  # ATQA
    levels = {4: 1, 7: 2, 10: 3}[air.uid_length]
    # ANTICOLLISION SEL NVB -> UID CLn + BCC; SELECT SEL NVB UID BCC CRC_A -> SAK CRC_A
    total += levels * (air.pcd_frame(2, slow) + air.picc_frame(5, slow)
                       + air.pcd_frame(9, slow) + air.picc_frame(3, slow))
    total += air.pcd_frame(4, slow)  # RATS: E0h, FSDI|CID, CRC_A
    total += frame_time(air.ats_length + 2, slow) + max(sfgt(air.sfgi), air.turnaround_s)
    if air.bit_rate is not slow:  # PPSS PPS0 PPS1 CRC_A -> PPSS CRC_A
        total += air.pcd_frame(5, slow) + air.picc_frame(3, slow)
    return total


@dataclass(frozen=True, slots=True)
class CardProfile:
    """Card processing seconds per command: (CLA, INS) first, then INS, else ``default_s``.

    Plain data so a test or bench can price another card: build a new profile,
    e.g. ``CardProfile({**DEFAULT_PROFILE.by_ins, 0x54: 0.020})``.
    """

    by_ins: Mapping[int, float]
    by_cla_ins: Mapping[tuple[int, int], float] = field(default_factory=dict)
    default_s: float = 0.005

    def __post_init__(self) -> None:
        keys = [*self.by_ins, *(b for pair in self.by_cla_ins for b in pair)]
        if any(not 0 <= key <= 0xFF for key in keys):
            raise ValueError("CLA and INS keys must be bytes, 0x00..0xFF")
        times = [*self.by_ins.values(), *self.by_cla_ins.values(), self.default_s]
        if any(not (math.isfinite(t) and t >= 0) for t in times):
            raise ValueError("processing times must be finite and non-negative seconds")
        object.__setattr__(self, "by_ins", MappingProxyType(dict(self.by_ins)))
        object.__setattr__(self, "by_cla_ins", MappingProxyType(dict(self.by_cla_ins)))

    def processing_s(self, command: bytes) -> float:
        """Seconds the card computes before answering ``command`` (at least CLA INS P1 P2)."""
        if len(command) < 4:
            got = command.hex().upper() or "nothing"
            raise ValueError(f"a command APDU has at least CLA INS P1 P2, got {got}")
        cla, ins = command[0], command[1]
        return self.by_cla_ins.get((cla, ins), self.by_ins.get(ins, self.default_s))


# A contemporary PBOC / JCOP-class secure element: 3DES in hardware (~0.1 ms a
# block), EEPROM page erase+write ~3-4 ms and doubled by anti-tearing journals,
# RSA-1024 private-key operation ~50 ms on the crypto coprocessor.
DEFAULT_PROFILE = CardProfile(
    by_ins={
        Ins.SELECT: 0.002,  # look up the AID or FID, build the FCI; no crypto
        Ins.READ_BINARY: 0.002,  # one EEPROM read
        Ins.READ_RECORD: 0.002,  # one EEPROM read
        Ins.GET_BALANCE: 0.0015,  # a 4-byte read
        Ins.INITIALIZE: 0.008,  # FOR LOAD/PURCHASE: random, 3DES session key, MAC1
        Ins.CREDIT_FOR_LOAD: 0.030,  # journalled EEPROM writes (balance, counter, log), 3 MACs
        Ins.DEBIT_FOR_PURCHASE: 0.030,  # as CREDIT, plus the staged CAPP record
        Ins.GET_TRANSACTION_PROVE: 0.004,  # recompute MAC/TAC of the last transaction
        Ins.UPDATE_BINARY: 0.008,  # one journalled EEPROM page write
        Ins.UPDATE_RECORD: 0.008,  # one journalled EEPROM page write
        Ins.GET_PROCESSING_OPTIONS: 0.040,  # qPBOC: fDDA signing
        Ins.GENERATE_AC: 0.040,  # cryptogram MAC plus ATC and log writes, no RSA (no CDA)
        Ins.INTERNAL_AUTHENTICATE: 0.060,  # RSA-1024 signature for (f)DDA
    },
    # UPDATE CAPP DATA CACHE only stages the record in RAM; DEBIT commits it.
    by_cla_ins={(CLA_PROPRIETARY, Ins.UPDATE_CAPP_DATA_CACHE): 0.003,
                # Access card (applets.access): AES in hardware, ~0.05 ms a block.
                # door challenge: random, session key, cryptogram
                (CLA_PROPRIETARY, Ins.INTERNAL_AUTHENTICATE): 0.004,
                # door proof: check, MAC, journalled entry-log write
                (CLA_PROPRIETARY, Ins.EXTERNAL_AUTHENTICATE): 0.020},
)


@dataclass(frozen=True, slots=True)
class ExchangeTiming:
    """One APDU exchange priced: frames and guard times on the air, time in the card.

    ``frames`` counts every frame: I-blocks, chaining R(ACK)s and S(WTX) pairs.
    ``air_s`` includes the card's minimum frame delay before each answer;
    ``card_s`` is processing on top of it plus the S(WTX) round trips.
    """

    command_len: int
    response_len: int
    frames: int
    air_s: float
    card_s: float
    wtx_count: int


def exchange_timing(command: bytes, response: bytes, air: AirInterface = DEFAULT_AIR,
                    profile: CardProfile = DEFAULT_PROFILE) -> ExchangeTiming:
    """Price one C-APDU / R-APDU pair once the card is active (-4 7).

    A chained command is acknowledged block by block by the card, a chained
    response by the reader (-4 7.5.2). When processing outlasts FWT the card
    asks S(WTX) in time, each granting WTXM * FWT more (-4 7.3).
    """
    if len(response) < 2:
        raise ValueError(f"a response APDU ends in SW1 SW2, got {response.hex() or 'nothing'}")
    processing = profile.processing_s(command)
    commands = i_block_sizes(len(command), air.fsc, air.cid, air.nad)
    responses = i_block_sizes(len(response), air.fsd, air.cid, air.nad)
    ack = _PROLOGUE_AND_CRC + air.cid  # R(ACK): PCB, [CID], CRC_A
    air_s = (sum(air.pcd_frame(n) for n in commands) + sum(air.picc_frame(n) for n in responses)
             + (len(responses) - 1) * air.pcd_frame(ack)  # the reader acks a chained response
             + (len(commands) - 1) * air.picc_frame(ack))  # the card acks a chained command
    overrun = processing - air.fwt_s
    wtx_count = math.ceil(overrun / (air.wtxm * air.fwt_s)) if overrun > 0 else 0
    wtx = _PROLOGUE_AND_CRC + air.cid + 1  # S(WTX): PCB, [CID], WTXM, CRC_A, the same both ways
    card_s = processing + wtx_count * (air.picc_frame(wtx) + air.pcd_frame(wtx))
    frames = 2 * (len(commands) + len(responses) - 1 + wtx_count)
    return ExchangeTiming(len(command), len(response), frames, air_s, card_s, wtx_count)


def deselect_time(air: AirInterface = DEFAULT_AIR) -> float:
    """S(DESELECT) and its answer (-4 8), each PCB, [CID], CRC_A."""
    size = _PROLOGUE_AND_CRC + air.cid
    return air.pcd_frame(size) + air.picc_frame(size)


@dataclass(frozen=True, slots=True)
class TapTiming:
    """A whole tap against its deadline: modelled air and card time, and host time for contrast."""

    activation_s: float
    exchanges: tuple[ExchangeTiming, ...]
    deselect_s: float
    host_s: float
    deadline_s: float

    @property
    def air_s(self) -> float:
        return self.activation_s + sum(e.air_s for e in self.exchanges) + self.deselect_s

    @property
    def card_s(self) -> float:
        return sum(e.card_s for e in self.exchanges)

    @property
    def modelled_s(self) -> float:
        return self.air_s + self.card_s

    @property
    def margin_s(self) -> float:
        """Deadline left over; negative when the gate would have timed the card out."""
        return self.deadline_s - self.modelled_s

    @property
    def within_deadline(self) -> bool:
        return self.modelled_s <= self.deadline_s


def model_tap(trace: Sequence[Exchange], air: AirInterface = DEFAULT_AIR,
              profile: CardProfile = DEFAULT_PROFILE, deadline_s: float = DEADLINE_TRANSIT_S,
              *, deselect: bool = True) -> TapTiming:
    """Price a recorded tap: activation, every exchange, and the gate's DESELECT.

    The tap ends once the reader may transmit again after the last frame.
    """
    if not deadline_s > 0:
        raise ValueError(f"deadline must be a positive number of seconds, not {deadline_s}")
    return TapTiming(
        activation_s=activation_time(air),
        exchanges=tuple(exchange_timing(e.command, e.response, air, profile) for e in trace),
        deselect_s=deselect_time(air) if deselect else 0.0,
        host_s=sum(e.host_seconds for e in trace),
        deadline_s=deadline_s,
    )
