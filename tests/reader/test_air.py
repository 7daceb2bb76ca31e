"""The frames of a tap on the air: what they are, when they start, and that the band's own
ISO-DEP card side would have answered the reader's frames with exactly the card frames shown."""

from __future__ import annotations

import io
import itertools
import re
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reader.air import Activation, Sender, crc_a, tap_frames, write_capture
from reader.timing import (
    AirInterface,
    BitRate,
    CardProfile,
    activation_time,
    exchange_timing,
    frame_size,
    model_tap,
)
from reader.trace import Exchange
from tests.support import tshark
from wallet import contactless
from wallet.isodep import IsoDepCard

UID = bytes.fromhex("04112233445566")
BAND_ATS = contactless.Ats().encode()
BAND = Activation(UID, contactless.SENS_RES, contactless.SEL_RES, BAND_ATS)
BAND_AIR = AirInterface(uid_length=len(UID), ats_length=len(BAND_ATS))
NO_CRC = {"REQA", "ATQA", "ANTICOLLISION CL1", "ANTICOLLISION CL2", "ANTICOLLISION CL3",
          "UID CL1", "UID CL2", "UID CL3"}


def test_crc_a_known_answers():
    """ISO/IEC 14443-3 Annex B: 00 00 -> A0 1E and 12 34 -> 26 CF, in the order sent."""
    assert crc_a(bytes(2)) == bytes.fromhex("A01E")
    assert crc_a(bytes.fromhex("1234")) == bytes.fromhex("26CF")


def test_the_bands_activation_frame_by_frame():
    tapped = tap_frames([], BAND, BAND_AIR, deselect=False)
    assert [(f.sender.value, f.what, f.data.hex().upper()) for f in tapped.frames] == [
        ("PCD", "REQA", "26"),
        ("PICC", "ATQA", "4400"),  # double-size UID, bit frame anticollision
        ("PCD", "ANTICOLLISION CL1", "9320"),
        ("PICC", "UID CL1", "88041122BF"),  # cascade tag, three UID bytes, BCC
        ("PCD", "SELECT CL1", "937088041122BFB3F9"),
        ("PICC", "SAK", "04DA17"),  # UID not complete
        ("PCD", "ANTICOLLISION CL2", "9520"),
        ("PICC", "UID CL2", "3344556644"),
        ("PCD", "SELECT CL2", "95703344556644ECA3"),
        ("PICC", "SAK", "20FC70"),  # complete, ISO-DEP
        ("PCD", "RATS", "E0803173"),  # FSDI 8 (256 bytes), CID 0
        ("PICC", "ATS", "0A788080024B4F414C415169"),  # the band's ATS: FSCI 8, FWI 8, "KOALA"
    ]
    assert tapped.end_s == pytest.approx(activation_time(BAND_AIR), abs=1e-12)


def test_an_activation_must_be_the_one_the_model_prices():
    with pytest.raises(ValueError, match=re.escape("UID length 7 (the model has 4); ATS length 10")):
        tap_frames([], BAND, AirInterface())
    with pytest.raises(ValueError, match=re.escape("FWI 8 (the model has 4)")):
        tap_frames([], BAND, AirInterface(uid_length=7, ats_length=10, fwi=4))
    with pytest.raises(ValueError, match="does not announce a 4-byte UID"):
        Activation(UID[:4], contactless.SENS_RES, 0x20, BAND_ATS)
    with pytest.raises(ValueError, match="SAK 04"):
        Activation(UID, contactless.SENS_RES, 0x04, BAND_ATS)


def test_a_chained_command_a_slow_card_and_a_chained_answer():
    air = AirInterface(uid_length=7, ats_length=10, fsci=0, fsdi=0, fwi=4)
    activation = Activation.modelled(air, UID)
    command, response = bytes.fromhex("80E60C00") + bytes([20]) + bytes(range(20)), bytes(30) + b"\x90\x00"
    profile = CardProfile({0xE6: 0.012})
    tapped = tap_frames([Exchange(command, response, 0.0)], activation, air, profile)
    blocks = [(f.sender.value, f.what, f.data[:-2].hex().upper()) for f in tapped.frames
              if f.exchange == 0]
    assert blocks == [
        ("PCD", "I-block", "12" + command[:13].hex().upper()),  # chaining, block 0, 16 bytes
        ("PICC", "R(ACK)", "A2"),
        ("PCD", "I-block", "03" + command[13:].hex().upper()),  # block 1, the rest
        ("PICC", "S(WTX) request", "F201"), ("PCD", "S(WTX) response", "F201"),
        ("PICC", "S(WTX) request", "F201"), ("PCD", "S(WTX) response", "F201"),
        ("PICC", "I-block", "13" + response[:13].hex().upper()),  # chaining, block 1
        ("PCD", "R(ACK)", "A2"),  # the reader toggled: asks for the block after
        ("PICC", "I-block", "12" + response[13:26].hex().upper()),
        ("PCD", "R(ACK)", "A3"),
        ("PICC", "I-block", "03" + response[26:].hex().upper()),
    ]
    timed = exchange_timing(command, response, air, profile)
    assert (len(blocks), timed.wtx_count) == (timed.frames, 2)


@st.composite
def airs(draw, iso_dep_card: bool = False):
    fsdi = draw(st.integers(0, 8))
    return AirInterface(
        bit_rate=BitRate.KBPS_106 if iso_dep_card else draw(st.sampled_from(BitRate)),
        fwi=draw(st.integers(2, 14)), sfgi=draw(st.integers(0, 14)),
        fsci=draw(st.integers(0, 8)), fsdi=fsdi, cid=draw(st.booleans()),
        nad=False if iso_dep_card else draw(st.booleans()),
        uid_length=draw(st.sampled_from([4, 7, 10])),
        ats_length=draw(st.integers(5, frame_size(fsdi) - 2)),
        wtxm=1 if iso_dep_card else draw(st.integers(1, 59)))


exchanges = st.lists(st.builds(Exchange, st.binary(min_size=4, max_size=300),
                               st.binary(min_size=2, max_size=300), st.just(0.0)), max_size=4)
profiles = st.builds(CardProfile, st.just({}), default_s=st.floats(0, 0.05))


@given(air=airs(), trace=exchanges, profile=profiles)
def test_frames_start_where_the_timing_model_says(air, trace, profile):
    tapped = tap_frames(trace, Activation.modelled(air), air, profile)
    model = model_tap(trace, air, profile)
    assert tapped.end_s == pytest.approx(model.modelled_s, rel=1e-12)
    start = model.activation_s
    for index, timed in enumerate(model.exchanges):
        frames = [f for f in tapped.frames if f.exchange == index]
        assert frames[0].at_s == pytest.approx(start, rel=1e-12), "where the table's row starts"
        assert len(frames) == timed.frames
        start += timed.air_s + timed.card_s
    times = [f.at_s for f in tapped.frames]
    assert times == sorted(times)
    for f in tapped.frames:
        if f.what not in NO_CRC:
            assert f.data[-2:] == crc_a(f.data[:-2]), f
        if f.what == "I-block":
            assert len(f.data) <= (air.fsc if f.sender is Sender.PCD else air.fsd)


@given(air=airs(iso_dep_card=True), trace=exchanges, profile=profiles,
       historical=st.binary(max_size=8))
def test_the_bands_iso_dep_side_answers_every_reader_frame_with_the_card_frame_shown(
        air, trace, profile, historical):
    ats = contactless.Ats(air.fsci, air.fwi, air.sfgi, True, historical)
    air = replace(air, ats_length=len(ats.encode()))
    commands = iter(trace)
    received: list[bytes] = []

    def handler(apdu: bytes) -> bytes:
        received.append(apdu)
        response: bytes = next(commands).response
        return response

    waits = iter([exchange_timing(e.command, e.response, air, profile).wtx_count for e in trace])
    card = IsoDepCard(handler, ats, wtx=lambda apdu: next(waits))
    modelled = Activation.modelled(air, UID[:air.uid_length] if air.uid_length <= 7 else None)
    activation = replace(modelled, ats=ats.encode())
    frames = list(tap_frames(trace, activation, air, profile).frames)
    start = next(i for i, f in enumerate(frames) if f.what == "RATS")
    for sent, answer in itertools.pairwise(frames[start:]):
        if sent.sender is not Sender.PCD:
            continue
        assert answer.sender is Sender.PICC
        frame = sent.data[:-2]
        reply = card.rats(frame) if sent.what == "RATS" else card.receive(frame)
        assert reply == answer.data[:-2], (sent, answer)
    assert received == [e.command for e in trace]
    assert card.deselected


def test_wireshark_reads_chained_blocks_and_waiting_time_extensions(tmp_path):
    air = AirInterface(uid_length=7, ats_length=10, fsci=0, fsdi=1, fwi=4, cid=True)
    trace = [Exchange(bytes.fromhex("00A4040008A000000632010105"), bytes(40) + b"\x90\x00", 0.0),
             Exchange(bytes.fromhex("80DC00F830") + bytes(48), b"\x90\x00", 0.0),
             Exchange(bytes.fromhex("805C000204"), bytes.fromhex("000003E8") + b"\x90\x00", 0.0)]
    profile = CardProfile({0xDC: 0.02})
    path = tmp_path / "chained.pcapng"
    with path.open("wb") as sink:
        written = write_capture(sink, tap_frames(trace, Activation.modelled(air, UID), air, profile),
                                1_795_000_000_000_000, air)
    decoded = tshark.packets(path)
    assert len(decoded) == written
    assert tshark.malformed(path) == "" and tshark.expert(path) == ""
    assert all(p.crc_good for p in decoded if p.event in (0xFE, 0xFF) and p.crc_good is not None)
    apdus = tshark.apdus(decoded)
    assert len(apdus) == 2 * len(trace)
    for exchange, (command, response) in zip(trace, zip(apdus[::2], apdus[1::2], strict=True), strict=True):
        tshark.check_command(command, exchange.command)
        tshark.check_response(response, exchange.response)


def test_a_response_wireshark_takes_for_an_atr_is_still_checked_byte_for_byte(tmp_path):
    command = bytes.fromhex("805401000F0000000020261123080000C88C46DC08")
    trace = [Exchange(command, bytes.fromhex("3B21C89967512D709000"), 0.0),  # a TAC and MAC2
             Exchange(command, bytes.fromhex("3FFFC89967512D709000"), 0.0)]
    path = tmp_path / "atr.pcapng"
    with path.open("wb") as sink:
        write_capture(sink, tap_frames(trace, BAND, BAND_AIR), 0, BAND_AIR)
    assert "Malformed" in tshark.run(path), "Wireshark reads both answers as ATRs"
    assert tshark.malformed(path) == "" and tshark.expert(path) == ""
    apdus = tshark.apdus(tshark.packets(path))
    for exchange, command_apdu, response_apdu in zip(trace, apdus[::2], apdus[1::2], strict=True):
        tshark.check_command(command_apdu, exchange.command)
        tshark.check_response(response_apdu, exchange.response)


def test_the_capture_leaves_out_the_deselect_wireshark_cannot_read():
    sink = io.BytesIO()
    tapped = tap_frames([], BAND, BAND_AIR)
    assert [f.what for f in tapped.frames[-2:]] == ["S(DESELECT)", "S(DESELECT)"]
    # field on, the 12 activation frames, field off
    assert write_capture(sink, tapped, 0, BAND_AIR) == 1 + 12 + 1
