"""The air-interface model against hand-computed values from the ISO/IEC 14443 formulas.

Expected times are written in carrier periods (1/fc) so the arithmetic can be
checked against the standard: a standard frame of n bytes is (2 + 9n) * 128/fc
at 106 kbit/s, the card's frame delay 1236/fc (1172/fc after REQA) and the
reader's default turnaround 6780/fc.
"""

from __future__ import annotations

from itertools import pairwise
from typing import cast

import pytest

from reader.timing import (
    DEADLINE_EMV_S,
    DEADLINE_FELICA_S,
    DEADLINE_TRANSIT_S,
    DEFAULT_PROFILE,
    FC_HZ,
    SHORT_FRAME_S,
    AirInterface,
    BitRate,
    CardProfile,
    activation_time,
    deselect_time,
    exchange_timing,
    frame_delay_time,
    frame_size,
    frame_time,
    fwt,
    i_block_sizes,
    model_tap,
    sfgt,
)
from reader.trace import Exchange

AID = bytes.fromhex("A000000632010105")
FCI = bytes.fromhex("6F26" "8408") + AID + bytes.fromhex("A51A") + bytes(26)  # 40 bytes
OK = bytes.fromhex("9000")


def fc(cycles: int) -> float:
    return cycles / FC_HZ


def pcd(n_bytes: int) -> int:
    """A reader frame at 106 kbit/s and the card's FDT after it, in 1/fc."""
    return (2 + 9 * n_bytes) * 128 + 1236


def picc(n_bytes: int) -> int:
    """A card frame at 106 kbit/s and the reader's 500 us turnaround after it, in 1/fc."""
    return (2 + 9 * n_bytes) * 128 + 6780


def metro_exit() -> list[Exchange]:
    """A T-Union metro exit: select, read the transit record, and a CAPP purchase."""
    return [
        Exchange(bytes.fromhex("00A4040008") + AID + b"\x00", FCI + OK, 0.0004),
        Exchange(bytes.fromhex("00B201C430"), bytes(48) + OK, 0.0002),
        Exchange(bytes.fromhex("805003020B" "01" "00000190" "990000000001" "0F"),
                 bytes(15) + OK, 0.0011),
        Exchange(bytes.fromhex("80DC02B830") + bytes(48), OK, 0.0003),
        Exchange(bytes.fromhex("805401000F" "00000001" "20261123" "083000" "11223344" "08"),
                 bytes(8) + OK, 0.0015),
    ]


# -- bit rates and frames ---------------------------------------------------------------------

@pytest.mark.parametrize(("rate", "etu_us"), [
    (BitRate.KBPS_106, 9.4395), (BitRate.KBPS_212, 4.7198),
    (BitRate.KBPS_424, 2.3599), (BitRate.KBPS_848, 1.1799),
])
def test_etu_is_128_over_d_fc(rate, etu_us):
    assert rate.etu_s * 1e6 == pytest.approx(etu_us, abs=5e-5)


def test_standard_frame_durations_at_106():
    assert frame_time(16) == pytest.approx(fc(146 * 128))  # 1378.17 us: 16 bytes on the air
    assert frame_time(16) * 1e6 == pytest.approx(1378.17, abs=0.005)
    assert i_block_sizes(16, 256) == [19]  # 16 bytes of INF: PCB + INF + CRC_A
    assert frame_time(19) * 1e6 == pytest.approx(1633.04, abs=0.005)  # 173 etu
    assert pytest.approx(fc(9 * 128)) == SHORT_FRAME_S  # REQA: S, 7 bits, E


def test_frames_scale_with_bit_rate():
    times = [frame_time(19, rate) for rate in BitRate]
    assert times == pytest.approx([frame_time(19) / d for d in (1, 2, 4, 8)])


def test_frame_delay_depends_on_last_bit():
    assert frame_delay_time(1) == pytest.approx(fc(1236))  # 91.15 us
    assert frame_delay_time(0) == pytest.approx(fc(1172))  # 86.43 us


@pytest.mark.parametrize(("fwi", "expected"), [
    (0, 302.06e-6), (4, 4.833e-3), (8, 77.33e-3), (14, 4.949),
])
def test_frame_waiting_time(fwi, expected):
    assert fwt(fwi) == pytest.approx(expected, rel=2e-4)
    assert fwt(fwi) == fc(4096 * 2**fwi)


def test_start_up_frame_guard_time():
    assert sfgt(0) == 0.0
    assert sfgt(1) == pytest.approx(fc(8192))  # 604.1 us
    assert sfgt(4) == fwt(4)


def test_frame_sizes_from_fsci():
    assert [frame_size(i) for i in range(9)] == [16, 24, 32, 40, 48, 64, 96, 128, 256]


# -- chaining ---------------------------------------------------------------------------------

def test_chaining_starts_above_fsc_minus_three():
    assert i_block_sizes(253, 256) == [256]
    assert i_block_sizes(254, 256) == [256, 4]
    assert i_block_sizes(53, 32) == [32, 27]
    # CID in every block, NAD only in the first (-4 7.1.1.3)
    assert i_block_sizes(53, 32, cid=True, nad=True) == [32, 30]


def test_chained_command_adds_blocks_and_card_acks():
    update = bytes.fromhex("80DC02B830") + bytes(48)  # 53 bytes
    whole = exchange_timing(update, OK)
    chained = exchange_timing(update, OK, AirInterface(fsci=2))  # FSC 32: INF 29 + 24
    assert (whole.frames, chained.frames) == (2, 4)
    assert whole.air_s == pytest.approx(fc(pcd(56) + picc(5)))
    assert chained.air_s == pytest.approx(fc(pcd(32) + picc(3) + pcd(27) + picc(5)))


def test_chained_response_is_acked_by_the_reader():
    select = bytes.fromhex("00A4040008") + AID + b"\x00"
    timing = exchange_timing(select, FCI + OK, AirInterface(fsdi=0))  # FSD 16: 13 + 13 + 13 + 3
    assert timing.frames == 8  # 1 command, 4 response blocks, 3 R(ACK)
    assert timing.air_s == pytest.approx(fc(pcd(17) + 3 * picc(16) + picc(6) + 3 * pcd(3)))


# -- card processing and WTX ------------------------------------------------------------------

def test_profile_prefers_cla_specific_times():
    assert DEFAULT_PROFILE.processing_s(bytes.fromhex("80DC02B830")) == 0.003  # CAPP cache
    assert DEFAULT_PROFILE.processing_s(bytes.fromhex("00DC02B830")) == 0.008  # UPDATE RECORD
    assert DEFAULT_PROFILE.processing_s(bytes.fromhex("80540100")) == 0.030
    assert DEFAULT_PROFILE.processing_s(bytes.fromhex("00CA9F36")) == 0.005  # default
    faster = CardProfile({**DEFAULT_PROFILE.by_ins, 0x54: 0.020})
    assert faster.processing_s(bytes.fromhex("80540100")) == 0.020


def test_no_wtx_within_fwt():
    debit = exchange_timing(bytes.fromhex("805401000F") + bytes(15) + b"\x08", bytes(8) + OK)
    assert (debit.wtx_count, debit.card_s, debit.frames) == (0, 0.030, 2)


def test_wtx_extends_processing_beyond_fwt():
    debit = bytes.fromhex("805401000F") + bytes(15) + b"\x08"
    round_trip = fc(picc(4) + pcd(4))  # S(WTX) request, turnaround, response, FDT: 1.3086 ms
    timing = exchange_timing(debit, bytes(8) + OK, AirInterface(fwi=4))  # FWT 4.833 ms
    assert timing.wtx_count == 6  # ceil((30 - 4.833) / 4.833)
    assert timing.card_s == pytest.approx(0.030 + 6 * round_trip)
    assert timing.frames == 2 + 12
    assert exchange_timing(debit, bytes(8) + OK, AirInterface(fwi=4, wtxm=3)).wtx_count == 2


# -- activation and the whole tap -------------------------------------------------------------

def test_activation_of_a_single_size_uid():
    reqa_atqa = 9 * 128 + 1172 + picc(2)
    cascade = pcd(2) + picc(5) + pcd(9) + picc(3)  # ANTICOLLISION/UID, SELECT/SAK
    rats_ats = pcd(4) + (2 + 9 * 15) * 128 + 6780  # ATS of 13 bytes + CRC_A
    assert reqa_atqa + cascade + rats_ats == 81024
    assert activation_time() == pytest.approx(fc(81024))  # 5.975 ms
    assert activation_time(AirInterface(uid_length=7)) == pytest.approx(fc(81024 + cascade))
    assert activation_time(AirInterface(uid_length=10)) == pytest.approx(fc(81024 + 2 * cascade))


def test_sfgt_holds_the_reader_after_ats():
    longer = activation_time(AirInterface(sfgi=4)) - activation_time()
    assert longer == pytest.approx(sfgt(4) - fc(6780))


def test_faster_bit_rates_pay_a_pps_but_shorten_the_tap():
    pps = fc(pcd(5) + picc(3))
    assert activation_time(AirInterface(bit_rate=BitRate.KBPS_212)) == pytest.approx(
        activation_time() + pps)
    taps = [model_tap(metro_exit(), AirInterface(bit_rate=rate)) for rate in BitRate]
    exchange_air = [sum(e.air_s for e in tap.exchanges) for tap in taps]
    assert all(a > b for a, b in pairwise(exchange_air))
    assert all(a.air_s > b.air_s for a, b in pairwise(taps))
    assert len({tap.card_s for tap in taps}) == 1


def test_metro_exit_fits_the_transit_deadline():
    tap = model_tap(metro_exit())
    assert [(e.command_len, e.response_len) for e in tap.exchanges] == [
        (14, 42), (5, 50), (17, 17), (53, 2), (21, 10)]
    air = (81024 + pcd(17) + picc(45) + pcd(8) + picc(53) + pcd(20) + picc(20)
           + pcd(56) + picc(5) + pcd(24) + picc(13) + pcd(3) + picc(3))
    assert tap.air_s == pytest.approx(fc(air))
    assert tap.card_s == pytest.approx(0.045)  # 2 + 2 + 8 + 3 + 30 ms
    assert tap.modelled_s == pytest.approx(0.045 + fc(air))
    assert tap.modelled_s * 1e3 == pytest.approx(77.43, abs=0.005)
    assert tap.modelled_s < 0.150
    assert tap.host_s == pytest.approx(0.0035)
    assert tap.deadline_s == DEADLINE_TRANSIT_S == 0.300
    assert tap.within_deadline
    assert tap.margin_s == pytest.approx(0.300 - tap.modelled_s)


def test_deselect_is_optional():
    with_deselect, without = model_tap(metro_exit()), model_tap(metro_exit(), deselect=False)
    assert deselect_time() == pytest.approx(fc(pcd(3) + picc(3)))
    assert with_deselect.modelled_s - without.modelled_s == pytest.approx(deselect_time())
    assert without.deselect_s == 0.0


def test_missed_deadline_has_negative_margin():
    emv = [Exchange(bytes.fromhex("80A8000002830000"), bytes(80) + OK, 0.0),
           Exchange(bytes.fromhex("0088000004") + bytes(4) + b"\x00", bytes(128) + OK, 0.0),
           Exchange(bytes.fromhex("80AE8000") + bytes(30) + b"\x00", bytes(40) + OK, 0.0)]
    assert (DEADLINE_FELICA_S, DEADLINE_EMV_S) == (0.200, 0.500)
    assert model_tap(emv, deadline_s=DEADLINE_EMV_S).within_deadline
    tight = model_tap(emv, deadline_s=0.100)
    assert tight.card_s == pytest.approx(0.140)
    assert not tight.within_deadline
    assert tight.margin_s == pytest.approx(0.100 - tight.modelled_s) and tight.margin_s < 0


# -- bad inputs -------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [
    {"fwi": 15}, {"fwi": -1}, {"sfgi": 15}, {"fsci": 9}, {"fsdi": -1}, {"uid_length": 5},
    {"ats_length": 0}, {"fsdi": 0, "ats_length": 15}, {"wtxm": 0}, {"wtxm": 60},
    {"turnaround_s": 50e-6}, {"bit_rate": cast(BitRate, 300)},
])
def test_bad_air_interface_is_refused(kwargs):
    with pytest.raises(ValueError, match=r"must be|a UID|unknown bit rate|turnaround"):
        AirInterface(**kwargs)


def test_bit_rate_accepts_plain_kbit_values():
    assert AirInterface(bit_rate=cast(BitRate, 424)).bit_rate is BitRate.KBPS_424


def test_bad_functions_inputs_raise():
    with pytest.raises(ValueError, match=r"FWI must be 0\.\.14"):
        fwt(15)
    with pytest.raises(ValueError, match="at least one byte"):
        frame_time(0)
    with pytest.raises(ValueError, match="0 or 1"):
        frame_delay_time(2)
    with pytest.raises(ValueError, match="no room"):
        i_block_sizes(10, 3)
    with pytest.raises(ValueError, match="positive"):
        model_tap(metro_exit(), deadline_s=0.0)
    with pytest.raises(ValueError, match="non-negative"):
        CardProfile({0xA4: -0.001})
    with pytest.raises(ValueError, match="bytes"):
        CardProfile({0x1A4: 0.001})


@pytest.mark.parametrize(("command", "response", "message"), [
    (b"", OK, "CLA INS P1 P2, got nothing"),
    (bytes.fromhex("00A4"), OK, "CLA INS P1 P2, got 00A4"),
    (bytes.fromhex("00B201C430"), b"\x90", "SW1 SW2"),
])
def test_malformed_exchanges_are_refused(command, response, message):
    with pytest.raises(ValueError, match=message):
        model_tap([Exchange(command, response, 0.0)])
