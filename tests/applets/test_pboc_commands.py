"""The e-purse's commands built once (applets.pboc.commands) against published bytes, and
the issuer file read back from the purse's FCI by the one function both the gate and the
issuer use."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from applets import tlv
from applets.apdu import CommandAPDU
from applets.errors import CardError
from applets.layout import LayoutError
from applets.pboc import commands
from applets.pboc.layouts import (
    ISSUER_FILE,
    CreditCommand,
    DebitCommand,
    InitCommand,
    IssuerFile,
    TxType,
    card_number,
    fci_issuer_file,
    purse_fci,
)
from applets.sw import SW
from reader import pboc

AID = bytes.fromhex("A000000632010105")


def hexed(command: CommandAPDU) -> str:
    return command.encode().hex().upper()


def test_initialize_and_credit_for_load_as_the_published_worked_example():
    # tests/vectors/pboc_purse.json, load example: 805000010B 01 00001000 001122334455 and
    # 805200000B 20111221 214822 3A845BF0. The example loads the deposit (P2 01); ours is the
    # purse (P2 02), and we send Le (16, 4): case 4, as on a contactless T=CL link.
    load = commands.initialize(commands.P1_LOAD,
                               InitCommand(1, 0x1000, bytes.fromhex("001122334455")))
    assert hexed(load) == "805000020B" "01" "00001000" "001122334455" "10"
    credit = commands.credit_for_load(CreditCommand(bytes.fromhex("20111221"),
                                                    bytes.fromhex("214822"),
                                                    bytes.fromhex("3A845BF0")))
    assert hexed(credit) == "805200000B" "20111221" "214822" "3A845BF0" "04"


def test_purchase_commands():
    init = commands.initialize(commands.P1_CAPP_PURCHASE, InitCommand(1, 200, bytes(6)))
    assert hexed(init) == "805003020B" "01" "000000C8" "000000000000" "0F"
    debit = commands.debit_for_purchase(DebitCommand(1, bytes.fromhex("20120229"),
                                                     bytes.fromhex("135100"),
                                                     bytes.fromhex("F15CAB75")))
    assert hexed(debit) == "805401000F" "00000001" "20120229" "135100" "F15CAB75" "08"
    assert hexed(commands.get_balance()) == "805C000204"
    assert hexed(commands.get_transaction_prove(TxType.EP_LOAD, 7)) == "805A0002020007" "08"
    record = bytes((0x01, 0x2E)) + bytes(46)
    assert hexed(commands.update_capp_data_cache(record)) == "80DC01B830" + record.hex().upper()


def test_the_reader_sends_the_card_s_own_commands():
    assert pboc.initialize is commands.initialize
    assert pboc.select(AID) == CommandAPDU(0x00, 0xA4, 0x04, 0x00, AID, ne=256)


issuer_files = st.builds(IssuerFile, st.binary(min_size=8, max_size=8), st.integers(0, 255),
                         st.integers(0, 255), st.binary(min_size=10, max_size=10),
                         st.binary(min_size=4, max_size=4), st.binary(min_size=4, max_size=4),
                         st.binary(min_size=2, max_size=2))


@given(st.binary(min_size=5, max_size=16), issuer_files)
def test_the_issuer_file_comes_back_out_of_the_purse_fci(aid, issuer):
    fci = purse_fci(aid, ISSUER_FILE.build(issuer))
    assert fci_issuer_file(fci) == issuer
    assert tlv.find(fci, 0x84) == aid


def test_an_fci_without_an_issuer_file_is_none():
    assert fci_issuer_file(bytes.fromhex("6F0A8408") + AID) is None


malformed = st.one_of(
    st.binary(max_size=80),
    st.binary(max_size=40).map(lambda value: purse_fci(AID, value)),  # an issuer file of any size
    st.tuples(issuer_files, st.integers(0, 49)).map(  # a purse FCI cut short
        lambda cut: purse_fci(AID, ISSUER_FILE.build(cut[0]))[:cut[1]]),
)


@given(malformed)
def test_a_malformed_fci_is_a_tlv_or_layout_error_only(raw):
    with contextlib.suppress(tlv.TLVError, LayoutError):
        fci_issuer_file(raw)


# -- the holder PIN ------------------------------------------------------------------------


@pytest.mark.parametrize(("pin", "raw"), [
    ("123456", "123456"), ("12345", "12345F"), ("1234", "1234"), ("123456789012", "123456789012"),
])
def test_a_pin_is_bcd_padded_with_f(pin, raw):
    assert commands.pin_bytes(pin).hex().upper() == raw
    assert commands.pin_digits(bytes.fromhex(raw)) == pin
    assert hexed(commands.verify_pin(pin)) == f"00200000{len(raw) // 2:02X}{raw}"


def test_change_pin_sends_the_current_pin_ff_and_the_new_one():
    assert hexed(commands.change_pin("123456", "65432")) == "805E010007" "123456" "FF" "65432F"


@pytest.mark.parametrize("pin", ["123", "1234567890123", "12a4", "", "\uff11\uff12\uff13\uff14"])
def test_what_is_no_pin_is_refused_before_sending(pin):
    with pytest.raises(ValueError):
        commands.pin_bytes(pin)


@given(st.binary(max_size=8))
def test_the_card_reads_a_presented_pin_or_answers_6700_or_6a80(data):
    try:
        presented = commands.presented_pin(data)
    except CardError as refusal:
        assert refusal.sw in (SW.WRONG_LENGTH, SW.WRONG_DATA)
        return
    assert commands.pin_bytes(commands.pin_digits(presented)) == data


@given(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=16))
def test_change_pin_parser_answers_two_pins_or_a_status_word(p1, p2, data):
    command = CommandAPDU(0x80, 0x5E, p1, p2, data)
    try:
        current, new = commands.parse_change_pin(command)
    except CardError as refusal:
        assert refusal.sw in (SW.INCORRECT_P1_P2, SW.WRONG_LENGTH, SW.WRONG_DATA)
        return
    assert (p1, p2) == (0x01, 0x00) and data == current + b"\xff" + new


# -- card numbers ---------------------------------------------------------------------------


def test_a_card_number_is_16_bcd_digits_after_the_issuer_prefix():
    assert card_number(bytes.fromhex("1000" "0000000000000001")) == "0000000000000001"
    assert card_number(bytes.fromhex("4B4F" "1234567890123456")) == "1234567890123456"


@pytest.mark.parametrize("serial", [
    "100068A1322188A8C334",  # the OTA card of the issue: random bytes after the prefix
    "1000" "00000000000003E8",  # a counter in binary, as test helpers made them
    "1000" "00000000000001",  # 9 bytes
])
def test_a_serial_that_is_not_bcd_after_the_prefix_is_no_card_number(serial):
    with pytest.raises(ValueError):
        card_number(bytes.fromhex(serial))
