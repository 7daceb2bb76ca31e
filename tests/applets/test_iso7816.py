"""The interindustry commands' builders against known answers, and their card-side parsers:
what a terminal builds the card reads back, and whatever arrives a parser answers with a
status word (CardError), never another exception."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from applets import iso7816, selection, tlv
from applets.apdu import CommandAPDU
from applets.errors import CardError
from applets.iso7816 import BinaryReference, Ins, ManageChannel, RecordReference, on_basic_channel, on_channel
from applets.selection import Answer, Occurrence, Select, SelectBy, SelectFile
from applets.sw import SW, is_valid

PPSE = b"2PAY.SYS.DDF01"
T_UNION = bytes.fromhex("A000000632010105")

KNOWN_ANSWERS = [
    # (command, hex, where the bytes are given)
    (selection.select(PPSE), "00A404000E325041592E5359532E444446303100",
     "EMV Contactless Book B 3.3.2: SELECT PPSE"),
    (selection.select(T_UNION), "00A4040008A00000063201010500", "JT/T 978: SELECT T-Union purse"),
    (selection.select(b"\xa0", Occurrence.NEXT), "00A4040201A000",
     "ISO/IEC 7816-4 table 40: P2 b2-b1 = 10, next occurrence"),
    (selection.select(T_UNION, answer=Answer.NONE), "00A4040C08A000000632010105",
     "ISO/IEC 7816-4 table 40: P2 b4-b3 = 11, no response data, no Le"),
    (selection.select(b""), "00A4040000", "GPCS 11.9.2.2: no name, the Issuer Security Domain"),
    (iso7816.manage_channel_open(), "0070000001", "ISO/IEC 7816-4 11.1.2: the card picks"),
    (iso7816.manage_channel_open(3), "00700003", "ISO/IEC 7816-4 11.1.2: open channel 3"),
    (iso7816.manage_channel_close(19, origin=4), "40708013",
     "ISO/IEC 7816-4 5.4.1: from channel 4 (further class 40), close channel 19"),
    (iso7816.get_response(0x2C, channel=1), "01C000002C", "ISO/IEC 7816-4 11.6.1 on channel 1"),
    (iso7816.read_record(1, 1), "00B2010C00", "EMV Book 3 6.5.11: READ RECORD SFI 1 record 1"),
    (iso7816.read_record(0x18, 3), "00B203C400", "PBOC log EF 0x18, record 3"),
    (iso7816.read_record_by_id(0x17, 0x01), "00B201B800",
     "ISO/IEC 7816-4 7.3.3: P2 b3-b1 = 000, record identifier"),
    (iso7816.read_binary(0x15), "00B0950000", "ISO/IEC 7816-4 11.3.3: P1 = 100 SFI"),
    (iso7816.read_binary(None, 0x0102), "00B0010200", "15-bit offset in the current EF"),
    (iso7816.get_data(0x9F7F), "80CA9F7F00", "GlobalPlatform CPLC"),
    (iso7816.get_data(0x0066), "80CA006600", "GlobalPlatform card recognition data"),
    (iso7816.get_data(0x9F79), "80CA9F7900", "PBOC 3.0 e-cash balance"),
    (iso7816.get_response(0x10), "00C0000010", "ISO/IEC 7816-4 11.6.1"),
    (iso7816.external_authenticate(bytes(8) + b"\x30\x30"), "008200000A" + "00" * 8 + "3030",
     "EMV Book 3 6.5.4: ARPC and ARC"),
    (iso7816.put_data(0x9F79, bytes(10)), "04DA9F790A" + "00" * 10, "PBOC 3.0 issuer script"),
    (selection.select_mf(), "00A40000023F0000", "NFCard StandardPboc: SELECT MF by identifier"),
    (selection.select_file(0x1001), "00A4000002100100",
     "Metrodroid ChinaCard, NFCard StandardPboc: SELECT the EP DF 1001"),
    (selection.select_file(0x0015, SelectBy.EF_UNDER_CURRENT_DF, Answer.NONE), "00A4020C020015",
     "ISO/IEC 7816-4 table 39: P1 = 02, EF under the current DF, no response data"),
    (selection.select_path(0x1001, 0x0015), "00A40800041001001500",
     "ISO/IEC 7816-4 table 39: P1 = 08, path from the MF without 3F00"),
    (selection.select_path(0x0018, from_mf=False, answer=Answer.FCP), "00A40904020018" + "00",
     "ISO/IEC 7816-4 table 39: P1 = 09, path from the current DF; P2 = 04, FCP"),
    (iso7816.get_challenge(), "0084000008", "ISO/IEC 7816-4 11.5.3: GET CHALLENGE, 8 bytes"),
    (iso7816.get_challenge(4), "0084000004", "PBOC: a 4-byte challenge for a MAC's IV"),
    (iso7816.verify(bytes.fromhex("123456")), "0020000003123456",
     "JR/T 0025: VERIFY the holder PIN 123456"),
    (iso7816.verify(), "00200000", "ISO/IEC 7816-4 11.5.6: VERIFY with no data, the tries left"),
]


@pytest.mark.parametrize(("command", "raw", "source"), KNOWN_ANSWERS,
                         ids=[source for _, _, source in KNOWN_ANSWERS])
def test_builders_give_the_published_bytes(command, raw, source):
    assert command.encode().hex().upper() == raw


def test_an_instruction_byte_shared_by_two_standards_is_one_value():
    # by name, since a type checker takes two names for two members
    assert Ins["STORE_DATA"] is Ins.APPEND_RECORD
    assert Ins["INITIALIZE"] is Ins.INITIALIZE_UPDATE
    assert Ins["UPDATE_CAPP_DATA_CACHE"] is Ins.UPDATE_RECORD
    assert Ins(0xA4) is Ins.SELECT


def test_fci_is_6f_with_the_df_name_and_a5():
    fci = selection.fci(b"\xa0\x00", tlv.encode(0x9F0C, b"\x01" * 30))
    assert fci == tlv.constructed(0x6F, tlv.encode(0x84, b"\xa0\x00"),
                                  tlv.encode(0xA5, tlv.encode(0x9F0C, b"\x01" * 30)))
    assert tlv.find(fci, selection.DF_NAME) == b"\xa0\x00"


@pytest.mark.parametrize("build", [
    lambda: iso7816.read_binary(31),
    lambda: iso7816.read_binary(0),
    lambda: iso7816.read_binary(0x15, 256),
    lambda: iso7816.read_binary(None, 0x8000),
    lambda: iso7816.read_record(0x18, 0),
    lambda: iso7816.read_record(31, 1),
    lambda: iso7816.read_record_by_id(0x17, 256),
    lambda: iso7816.get_data(0x10000),
    lambda: iso7816.put_data(-1, b""),
])
def test_fields_that_do_not_fit_their_bits_are_refused_before_sending(build):
    with pytest.raises(ValueError):
        build()


# -- SELECT ---------------------------------------------------------------------------

names = st.binary(min_size=1, max_size=16)


@given(names, st.sampled_from(Occurrence), st.sampled_from(Answer))
def test_select_round_trips(name, occurrence, answer):
    command = CommandAPDU.parse(selection.select(name, occurrence, answer).encode())
    assert Select.parse(command) == Select(name, occurrence, answer)


@given(st.integers(0, 255), st.binary(max_size=40))
def test_select_parser_answers_a_status_word_or_the_command(p2, data):
    command = CommandAPDU(0x00, Ins.SELECT, 0x04, p2, data)
    try:
        select = Select.parse(command, occurrences=(Occurrence.FIRST, Occurrence.NEXT))
    except CardError as refusal:
        assert refusal.sw in (SW.INCORRECT_P1_P2, SW.WRONG_LENGTH)
        return
    assert select.command().p2 == p2 and select.name == data
    assert 1 <= len(data) <= 16 and select.occurrence in (Occurrence.FIRST, Occurrence.NEXT)


@pytest.mark.parametrize(("p1", "p2", "data", "sw"), [
    (0x04, 0x10, b"\xa0", SW.INCORRECT_P1_P2),  # RFU bit
    (0x04, 0x01, b"\xa0", SW.INCORRECT_P1_P2),  # last occurrence: not this card's
    (0x04, 0x01, b"", SW.INCORRECT_P1_P2),  # P2 before the name, as the card always checked
    (0x04, 0x00, b"", SW.WRONG_LENGTH),
    (0x04, 0x00, bytes(17), SW.WRONG_LENGTH),
    (0x00, 0x00, b"\x3f\x00", SW.INCORRECT_P1_P2),  # by file identifier: not a DF name
])
def test_select_parser_refusals(p1, p2, data, sw):
    with pytest.raises(CardError) as refusal:
        Select.parse(CommandAPDU(0x00, Ins.SELECT, p1, p2, data),
                     occurrences=(Occurrence.FIRST, Occurrence.NEXT))
    assert refusal.value.sw == sw


def test_a_select_with_no_name_parses_only_where_the_card_allows_it():
    command = CommandAPDU.parse(bytes.fromhex("00A4040000"))
    assert Select.parse(command, nameless=True) == Select(b"")
    with pytest.raises(CardError) as refusal:
        Select.parse(command)
    assert refusal.value.sw == SW.WRONG_LENGTH


# -- the class byte and MANAGE CHANNEL ------------------------------------------------------


@pytest.mark.parametrize(("cla", "channel", "basic"), [
    (0x00, 0, 0x00), (0x03, 3, 0x00), (0x0F, 3, 0x0C), (0x13, 3, 0x10),  # first class
    (0x40, 4, 0x00), (0x4F, 19, 0x00), (0x6F, 19, 0x08), (0x5F, 19, 0x10),  # further class
    (0x81, 1, 0x80), (0x85, 1, 0x84), (0xC0, 4, 0x80), (0xE5, 9, 0x84),  # GP's classes
    (0x21, 0, 0x21), (0xA3, 0, 0xA3),  # RFU classes code no channel
])
def test_the_logical_channel_in_the_class_byte(cla, channel, basic):
    assert CommandAPDU(cla, 0, 0, 0).channel == channel
    assert on_basic_channel(cla) == basic


@given(st.integers(0, 0xFE))
def test_a_class_byte_moved_to_the_basic_channel_and_back(cla):
    channel = CommandAPDU(cla, 0, 0, 0).channel
    basic = on_basic_channel(cla)
    assert CommandAPDU(basic, 0, 0, 0).channel == 0
    assert iso7816.secure_messaging(basic) == iso7816.secure_messaging(cla)
    if cla & 0x60 == 0x20:
        assert basic == cla
    else:
        assert on_channel(basic, channel) == cla


@given(st.integers(0, 0xFF), st.integers(0, 0xFF), st.integers(0, 0xFF),
       st.binary(max_size=3), st.none() | st.integers(1, 256))
def test_the_manage_channel_parser_answers_a_status_word_or_the_request(cla, p1, p2, data, ne):
    try:
        request = ManageChannel.parse(CommandAPDU(cla, Ins.MANAGE_CHANNEL, p1, p2, data, ne=ne))
    except CardError as refusal:
        assert is_valid(refusal.sw)
        return
    assert request.channel == p2 and request.close == (p1 == 0x80)
    assert (request.command().p1, request.command().p2) == (p1, p2)


@given(st.integers(0, 0xFF), st.integers(0, 0xFF), st.binary(max_size=3),
       st.none() | st.integers(1, 65536))
def test_the_get_response_parser_answers_a_status_word_or_ne(p1, p2, data, ne):
    try:
        asked = iso7816.get_response_ne(CommandAPDU(0x00, Ins.GET_RESPONSE, p1, p2, data, ne=ne))
    except CardError as refusal:
        assert refusal.sw in (SW.INCORRECT_P1_P2, SW.WRONG_LENGTH)
        return
    assert (p1, p2, data, asked) == (0, 0, b"", ne)


# -- READ / UPDATE BINARY --------------------------------------------------------------


@given(st.one_of(st.tuples(st.none(), st.integers(0, 0x7FFF)),
                 st.tuples(st.integers(1, 30), st.integers(0, 255))))
def test_binary_reference_round_trips(reference):
    sfi, offset = reference
    command = CommandAPDU.parse(iso7816.read_binary(sfi, offset).encode())
    assert BinaryReference.parse(command) == BinaryReference(sfi, offset)


@given(st.integers(0, 255), st.integers(0, 255))
def test_binary_reference_parser_answers_6a86_or_the_same_p1_p2(p1, p2):
    try:
        reference = BinaryReference.parse(CommandAPDU(0x00, Ins.READ_BINARY, p1, p2))
    except CardError as refusal:
        assert refusal.sw == SW.INCORRECT_P1_P2 and p1 & 0x80 and p1 & 0x60
        return
    assert reference.p1p2() == (p1, p2)


# -- records ---------------------------------------------------------------------------


@given(st.integers(0, 30), st.integers(1, 255))
def test_record_reference_round_trips(sfi, number):
    by_number = RecordReference.parse(CommandAPDU.parse(iso7816.read_record(sfi, number).encode()))
    assert (by_number.sfi, by_number.number, by_number.identifier) == (sfi, number, None)
    by_id = RecordReference.parse(CommandAPDU.parse(
        iso7816.read_record_by_id(sfi, number).encode()))
    assert (by_id.sfi, by_id.number, by_id.identifier) == (sfi, None, number)


@given(st.integers(0, 255), st.integers(0, 255))
def test_every_record_p1_p2_decodes_and_encodes_back(p1, p2):
    reference = RecordReference.parse(CommandAPDU(0x00, Ins.READ_RECORD, p1, p2))
    assert (reference.p1, reference.p2) == (p1, p2)
    assert reference.number is None or reference.identifier is None


def test_record_number_zero_is_not_a_record_number():
    assert RecordReference.parse(CommandAPDU(0x00, Ins.READ_RECORD, 0x00, 0x0C)).number is None


# -- data objects ----------------------------------------------------------------------


@given(st.integers(0, 0xFFFF))
def test_get_data_names_its_tag_in_p1_p2(tag):
    assert iso7816.data_tag(CommandAPDU.parse(iso7816.get_data(tag).encode())) == tag
    assert iso7816.data_tag(iso7816.put_data(tag, b"\x01")) == tag


# -- SELECT by file identifier or path -------------------------------------------------

_BY_FILE = [SelectBy.FILE_ID, SelectBy.CHILD_DF, SelectBy.EF_UNDER_CURRENT_DF,
            SelectBy.PARENT_DF, SelectBy.PATH_FROM_MF, SelectBy.PATH_FROM_CURRENT_DF]
fids = st.integers(0, 0xFFFF)


@st.composite
def select_files(draw) -> SelectFile:
    by = draw(st.sampled_from(_BY_FILE))
    if by == SelectBy.PARENT_DF:
        path: tuple[int, ...] = ()
    elif by == SelectBy.FILE_ID:
        path = tuple(draw(st.lists(fids, max_size=1)))
    elif by in (SelectBy.CHILD_DF, SelectBy.EF_UNDER_CURRENT_DF):
        path = (draw(fids),)
    else:
        path = tuple(draw(st.lists(fids, min_size=1, max_size=6)))
    return SelectFile(by, path, draw(st.sampled_from(Answer)))


@given(select_files())
def test_select_file_round_trips(select):
    assert SelectFile.parse(CommandAPDU.parse(select.command().encode())) == select


@given(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=20))
def test_select_file_parser_answers_a_status_word_or_the_command(p1, p2, data):
    command = CommandAPDU(0x00, Ins.SELECT, p1, p2, data)
    try:
        select = SelectFile.parse(command)
    except CardError as refusal:
        assert refusal.sw in (SW.INCORRECT_P1_P2, SW.WRONG_LENGTH)
        return
    rebuilt = select.command()
    assert (rebuilt.p1, rebuilt.p2, rebuilt.data) == (p1, p2, data)


@pytest.mark.parametrize(("p1", "p2", "data", "sw"), [
    (0x04, 0x00, T_UNION, SW.INCORRECT_P1_P2),  # by name: Select's, not this parser's
    (0x05, 0x00, b"\x3f\x00", SW.INCORRECT_P1_P2),  # RFU P1
    (0x00, 0x02, b"\x3f\x00", SW.INCORRECT_P1_P2),  # next occurrence of a file identifier
    (0x00, 0x10, b"\x3f\x00", SW.INCORRECT_P1_P2),  # RFU bit of P2
    (0x00, 0x00, b"\x3f", SW.WRONG_LENGTH),
    (0x00, 0x00, b"\x10\x01\x00\x15", SW.WRONG_LENGTH),  # two identifiers: a path's
    (0x02, 0x00, b"", SW.WRONG_LENGTH),
    (0x03, 0x00, b"\x3f\x00", SW.WRONG_LENGTH),
    (0x08, 0x00, b"", SW.WRONG_LENGTH),
    (0x09, 0x00, b"\x00\x15\x00", SW.WRONG_LENGTH),
])
def test_select_file_parser_refusals(p1, p2, data, sw):
    with pytest.raises(CardError) as refusal:
        SelectFile.parse(CommandAPDU(0x00, Ins.SELECT, p1, p2, data))
    assert refusal.value.sw == sw


@pytest.mark.parametrize("raw", ["00A4000000", "00A40000", "00A40000023F00", "00A4000C023F00"])
def test_the_mf_by_no_data_or_by_3f00(raw):
    assert SelectFile.parse(CommandAPDU.parse(bytes.fromhex(raw))).is_mf


@pytest.mark.parametrize("build", [
    lambda: SelectFile(SelectBy.DF_NAME, (0x1001,)),
    lambda: SelectFile(SelectBy.FILE_ID, (0x1001, 0x0015)),
    lambda: SelectFile(SelectBy.EF_UNDER_CURRENT_DF, ()),
    lambda: SelectFile(SelectBy.PARENT_DF, (0x3F00,)),
    lambda: SelectFile(SelectBy.PATH_FROM_MF, ()),
    lambda: selection.select_file(0x10000),
    lambda: iso7816.get_challenge(16),
])
def test_file_selections_that_do_not_fit_are_refused_before_sending(build):
    with pytest.raises(ValueError):
        build()


def test_control_information_as_p2_asks():
    fcp, fmd = tlv.encode(0x83, b"\x3f\x00"), tlv.encode(0x53, b"\x01")
    assert selection.control_information(Answer.FCI, fcp, fmd) == tlv.constructed(0x6F, fcp, fmd)
    assert selection.control_information(Answer.FCP, fcp, fmd) == tlv.constructed(0x62, fcp)
    assert selection.control_information(Answer.FMD, fcp, fmd) == tlv.constructed(0x64, fmd)
    assert selection.control_information(Answer.NONE, fcp, fmd) == b""


# -- GET CHALLENGE, VERIFY ---------------------------------------------------------------


@given(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=8),
       st.none() | st.integers(1, 300))
def test_challenge_parser_answers_4_8_or_a_status_word(p1, p2, data, ne):
    try:
        size = iso7816.challenge_size(CommandAPDU(0x00, Ins.GET_CHALLENGE, p1, p2, data, ne=ne))
    except CardError as refusal:
        assert refusal.sw == (SW.INCORRECT_P1_P2 if (p1, p2) != (0, 0) else SW.WRONG_LENGTH)
        return
    assert size == ne and size in (4, 8) and not data and (p1, p2) == (0, 0)


@given(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=16))
def test_verify_parser_answers_the_data_or_6a86(p1, p2, data):
    try:
        presented = iso7816.verification_data(CommandAPDU(0x00, Ins.VERIFY, p1, p2, data))
    except CardError as refusal:
        assert refusal.sw == SW.INCORRECT_P1_P2 and (p1, p2) != (0, 0)
        return
    assert presented == data and (p1, p2) == (0, 0)
