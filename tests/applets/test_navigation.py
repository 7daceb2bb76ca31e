"""PBOC file navigation by identifier and path, as older PBOC terminals, reader apps and
opensc walk a card: the MF 3F00, the purse's DF (1001 transit, 1002 canteen), its EFs 0015
to 0018, and READ BINARY / READ RECORD of the EF selected last."""

from __future__ import annotations

from dataclasses import replace

import pytest

from applets import bcd, mf, tlv
from applets.apdu import CommandAPDU
from applets.errors import CardError
from applets.iso7816 import Ins
from applets.pboc.layouts import (
    HOLDER_FILE,
    ISSUER_FILE,
    LOG_RECORD,
    TRANSIT_RECORD,
    DebitCommand,
    InitCommand,
)
from applets.selection import Answer, SelectFile
from applets.sw import SW
from issuer.products import CANTEEN, TRANSIT
from reader import pboc
from reader.flow import run
from reader.transport import in_field
from tests.conftest import EXPIRY, START, make_band, serial_for
from tests.support.purse import load, send


@pytest.fixture
def card():
    band = make_band(TRANSIT, CANTEEN)
    band.power_on()
    return band


@pytest.fixture
def transit(card):
    assert send(card, pboc.select(TRANSIT.aid)).sw == SW.OK
    return card


def issuer_file(band):
    """The issuer file of the current EF, read with no SFI."""
    answer = send(band, "00B0000000")
    assert answer.sw == SW.OK, f"{answer.sw:04X}"
    return ISSUER_FILE.parse(answer.data)


def test_an_older_terminal_walks_from_the_mf_to_the_issuer_file(transit):
    mf_answer = send(transit, "00A40000023F00")
    assert mf_answer.sw == SW.OK
    assert tlv.find(mf_answer.data, 0x83) == b"\x3f\x00"
    assert tlv.find(mf_answer.data, 0x82) == b"\x38"  # a DF
    df = send(transit, "00A4000002100100")
    assert df.sw == SW.OK
    assert tlv.find(df.data, 0x84) == TRANSIT.aid
    assert ISSUER_FILE.parse(tlv.find(df.data, 0x9F0C) or b"").app_serial == serial_for(TRANSIT)
    ef = send(transit, "00A40000020015")
    assert ef.sw == SW.OK
    assert ef.data == tlv.constructed(0x6F, bytes.fromhex("8002001E" "820101" "83020015"))
    read = issuer_file(transit)
    assert read.issuer_id == TRANSIT.issuer_id and read.app_serial == serial_for(TRANSIT)
    assert bcd.decode(read.app_serial[2:]) == "0000000000000001"


def test_the_reader_flow_reads_the_issuer_file_by_file_identifier(card):
    with in_field(card) as link:
        issuer = run(pboc.read_issuer_file_by_fid(), link)
    assert issuer.app_serial == serial_for(TRANSIT)
    assert [exchange.command.hex().upper()[:8] for exchange in link.trace] == [
        "00A4000C", "00A40000", "00A4020C", "00B00000"]
    with in_field(card) as link:
        assert run(pboc.read_issuer_file_by_fid(CANTEEN.brand.file_id), link).issuer_id == \
            CANTEEN.issuer_id


@pytest.mark.parametrize(("fid", "p1", "read", "parse"), [
    ("0016", "00", "00B0000000", HOLDER_FILE.parse),
    ("0016", "02", "00B0000000", HOLDER_FILE.parse),
    ("0017", "00", "00B2010400", TRANSIT_RECORD.parse),
    ("0017", "02", "00B2010400", TRANSIT_RECORD.parse),
])
def test_each_ef_is_reachable_by_identifier_then_read_as_the_current_ef(transit, fid, p1, read,
                                                                         parse):
    assert send(transit, f"00A4{p1}0C02{fid}").sw == SW.OK
    answer = send(transit, read)
    assert answer.sw == SW.OK
    parse(answer.data)


def test_the_log_by_identifier_reads_newest_first(transit):
    load(transit, 300)
    load(transit, 200)
    assert send(transit, "00A40000020018").sw == SW.OK
    assert [LOG_RECORD.parse(send(transit, f"00B20{n}0400").data).amount for n in (1, 2)] == [
        200, 300]
    assert send(transit, "00B2030400").sw == SW.RECORD_NOT_FOUND


def test_a_record_ef_is_not_read_as_binary(transit):
    assert send(transit, "00A40000020018").sw == SW.OK
    assert send(transit, "00B0000000").sw == SW.COMMAND_INCOMPATIBLE_WITH_FILE


def test_select_mf_with_no_data_is_the_mf_not_6700(transit):
    answer = send(transit, "00A4000000")
    assert answer.sw == SW.OK and tlv.find(answer.data, 0x83) == b"\x3f\x00"
    # the MF is the current DF now: the purse is no longer selected
    assert send(transit, pboc.get_balance()).sw == SW.CONDITIONS_NOT_SATISFIED
    assert send(transit, "00A40000").sw == SW.OK  # case 1, no Le


def test_the_mf_exists_with_the_card_manager_selected(card):
    card.power_on()  # the card manager is selected by default
    assert send(card, "00A4000C023F00").sw == SW.OK
    assert send(card, "00A4000C023F00").data == b""
    canteen = send(card, "00A4000002100200")
    assert canteen.sw == SW.OK and tlv.find(canteen.data, 0x84) == CANTEEN.aid
    assert send(card, pboc.get_balance()).sw == SW.OK


@pytest.mark.parametrize(("p2", "template"), [("00", 0x6F), ("04", 0x62), ("08", 0x64),
                                               ("0C", None)])
@pytest.mark.parametrize("command", ["00A400{p2}023F00", "00A400{p2}021001", "00A408{p2}0410010015",
                                     "00A400{p2}00"])
def test_each_file_answers_as_p2_asks(transit, command, p2, template):
    answer = send(transit, command.format(p2=p2))
    assert answer.sw == SW.OK
    if template is None:
        assert answer.data == b""
    else:
        assert answer.data[0] == template and tlv.decode(answer.data)[0].tag == template


def test_the_purse_df_control_parameters_name_it(transit):
    fcp = send(transit, "00A4000402100100").data
    assert tlv.find(fcp, 0x82) == b"\x38"
    assert tlv.find(fcp, 0x83) == b"\x10\x01"
    assert tlv.find(fcp, 0x84) == TRANSIT.aid
    fmd = send(transit, "00A4000802100100").data
    assert ISSUER_FILE.parse(tlv.find(fmd, 0x9F0C) or b"").app_serial == serial_for(TRANSIT)
    by_name = send(transit, "00A4040408" + TRANSIT.aid.hex())
    assert by_name.data == fcp


def test_record_files_describe_their_records(transit):
    log = send(transit, "00A40004020018").data
    assert tlv.find(log, 0x82) == bytes.fromhex("06" "21" "0017" "0A")  # cyclic, 10 x 23
    assert tlv.find(log, 0x80) == (23 * 10).to_bytes(2)
    record = send(transit, "00A40004020017").data
    assert tlv.find(record, 0x82) == bytes.fromhex("02" "21" "0030" "01")  # linear fixed, 1 x 48


def test_paths_from_the_mf_and_from_the_current_df(card):
    assert send(card, "00A408000410020015").sw == SW.OK  # from the card manager, via the MF
    assert issuer_file(card).issuer_id == CANTEEN.issuer_id
    assert send(card, "00A40800033F0010").sw == SW.WRONG_LENGTH  # half an identifier
    assert send(card, "00A40800063F0010010015").sw == SW.OK  # opensc keeps the MF's 3F00
    assert issuer_file(card).issuer_id == TRANSIT.issuer_id
    assert send(card, "00A40900020016").sw == SW.OK  # from the transit DF
    assert HOLDER_FILE.parse(send(card, "00B0000000").data)
    assert send(card, "00A40900021002").sw == SW.FILE_NOT_FOUND  # a DF is not in a DF
    assert send(card, "00A4000C023F00").sw == SW.OK
    assert send(card, "00A409000410010015").sw == SW.OK  # from the MF: as from the MF
    assert issuer_file(card).issuer_id == TRANSIT.issuer_id
    assert send(card, "00A4080006100100150016").sw == SW.FILE_NOT_FOUND  # an EF has no child
    assert send(card, "00A40800023F00").sw == SW.OK  # the MF alone


def test_parent_child_and_sibling_dfs(transit):
    assert send(transit, "00A40100021002").sw == SW.FILE_NOT_FOUND  # the purse has no child DF
    canteen = send(transit, "00A4000002100200")  # a sibling under the MF, by P1 00
    assert tlv.find(canteen.data, 0x84) == CANTEEN.aid
    assert send(transit, "00A4030C00").sw == SW.OK  # its parent: the MF
    assert send(transit, "00A4030C00").sw == SW.FILE_NOT_FOUND  # the MF has none
    assert send(transit, "00A4020C020015").sw == SW.FILE_NOT_FOUND  # the MF holds no EF
    assert tlv.find(send(transit, "00A40100021001").data, 0x84) == TRANSIT.aid  # MF's child


def test_a_file_not_there_is_6a82_and_leaves_the_current_file(card):
    assert send(card, "00A408000410020015").sw == SW.OK
    for raw in ("00A40000020019", "00A4000002100300", "00A408000410010099", "00A4000002FFFF",
                "00A40200021001"):
        assert send(card, raw).sw == SW.FILE_NOT_FOUND, raw
    assert issuer_file(card).issuer_id == CANTEEN.issuer_id


@pytest.mark.parametrize("raw", ["00A40500023F00", "00A40002023F00", "00A40010023F00",
                                 "00A40001023F00", "00A40F0000"])
def test_wrong_p1_p2_is_6a86(transit, raw):
    assert send(transit, raw).sw == SW.INCORRECT_P1_P2


def test_reselecting_the_df_by_identifier_ends_a_session(transit):
    load(transit, 500)
    initialize = pboc.initialize(pboc.P1_PURCHASE, InitCommand(1, 100, bytes(6)))
    assert send(transit, initialize).sw == SW.OK
    send(transit, "00A4000C021001")
    debit = send(transit, pboc.debit_for_purchase(DebitCommand(1, bytes(4), bytes(3), bytes(4))))
    assert debit.sw == SW.CONDITIONS_NOT_SATISFIED


def test_selecting_an_ef_keeps_the_session(transit):
    assert send(transit, "00A4000C020015").sw == SW.OK
    assert send(transit, "00A4000C020018").sw == SW.OK
    assert send(transit, "00B0950000").sw == SW.OK  # by SFI: the current EF becomes 0015
    assert issuer_file(transit).issuer_id == TRANSIT.issuer_id


def test_a_locked_card_is_not_found_by_its_identifier_either(card):
    card.lock()  # all but the express (transit) card switched off for the reader
    assert send(card, "00A4000002100200").sw == SW.FILE_NOT_FOUND
    assert send(card, "00A4000002100100").sw == SW.OK


def test_a_purse_personalised_without_an_identifier_answers_by_aid_only():
    band = make_band()
    band.add_purse(replace(TRANSIT.personalisation(serial_for(TRANSIT), START, EXPIRY),
                           file_id=None), TRANSIT.aid)
    band.power_on()
    assert send(band, "00A4000002100100").sw == SW.FILE_NOT_FOUND
    assert send(band, pboc.select(TRANSIT.aid)).sw == SW.OK
    fcp = send(band, "00A4040408" + TRANSIT.aid.hex()).data
    assert tlv.find(fcp, 0x83) is None
    assert send(band, "00A40000020015").sw == SW.OK  # its EFs still by identifier


@pytest.mark.parametrize(("fid", "sw"), [(0x1001, SW.FILE_ALREADY_EXISTS),
                                         (0x3F00, SW.WRONG_DATA), (0x0015, SW.WRONG_DATA)])
def test_a_df_identifier_is_unique_under_the_mf_and_not_reserved(fid, sw):
    band = make_band(TRANSIT)
    with pytest.raises(CardError) as refusal:
        band.add_purse(replace(CANTEEN.personalisation(serial_for(CANTEEN), START, EXPIRY),
                               file_id=fid), CANTEEN.aid)
    assert refusal.value.sw == sw


def test_the_brands_give_the_purses_their_identifiers():
    assert (TRANSIT.brand.file_id, CANTEEN.brand.file_id) == (0x1001, 0x1002)
    assert TRANSIT.personalisation(serial_for(TRANSIT), START, EXPIRY).file_id == 0x1001


# -- the rules, without a card (applets.mf) -------------------------------------------------

DFS = {0x1001: "transit", 0x1002: "canteen"}
EFS = {"transit": {0x15, 0x16}, "canteen": {0x15}}


def resolve(p1: int, data: str, current: str | None):
    select = SelectFile.parse(CommandAPDU(0x00, Ins.SELECT, p1, 0x00, bytes.fromhex(data)))
    target = mf.resolve(select, current, DFS, lambda df, fid: fid in EFS[df])
    return target.df, target.ef


@pytest.mark.parametrize(("p1", "data", "current", "reached"), [
    (0x00, "", "transit", (None, None)),
    (0x00, "3F00", None, (None, None)),
    (0x00, "1001", None, ("transit", None)),
    (0x00, "1001", "transit", ("transit", None)),
    (0x00, "1002", "transit", ("canteen", None)),
    (0x00, "0016", "transit", ("transit", 0x16)),
    (0x02, "0015", "canteen", ("canteen", 0x15)),
    (0x01, "1002", None, ("canteen", None)),
    (0x03, "", "canteen", (None, None)),
    (0x08, "10020015", "transit", ("canteen", 0x15)),
    (0x08, "3F00", "transit", (None, None)),
    (0x09, "0016", "transit", ("transit", 0x16)),
    (0x09, "10010016", None, ("transit", 0x16)),
])
def test_what_each_select_reaches(p1, data, current, reached):
    assert resolve(p1, data, current) == reached


@pytest.mark.parametrize(("p1", "data", "current"), [
    (0x00, "0016", None), (0x00, "0016", "canteen"), (0x00, "1003", "transit"),
    (0x01, "1002", "transit"), (0x02, "0015", None), (0x03, "", None),
    (0x08, "0015", None), (0x08, "10010017", None), (0x08, "100100150015", None),
    (0x09, "1002", "transit"),
])
def test_what_no_select_reaches(p1, data, current):
    with pytest.raises(CardError) as refusal:
        resolve(p1, data, current)
    assert refusal.value.sw == SW.FILE_NOT_FOUND


def test_the_mf_answers_as_a_df_named_3f00():
    assert mf.answer(Answer.FCP) == bytes.fromhex("620A" "820138" "83023F00" "8A0105")
    assert mf.answer(Answer.FMD) == bytes.fromhex("6400")
    assert mf.answer(Answer.NONE) == b""
