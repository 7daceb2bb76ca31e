"""The PBOC e-purse applet, driven by raw APDUs and by the reader's own flows."""

from __future__ import annotations

from dataclasses import replace

import pytest

from applets import tlv
from applets.apdu import ResponseAPDU
from applets.errors import CardError
from applets.gp.domain import ISD_AID
from applets.pboc import crypto
from applets.pboc.layouts import (
    INIT_LOAD_RESPONSE,
    ISSUER_FILE,
    LOG_RECORD,
    CreditCommand,
    DebitCommand,
    InitCommand,
    TxType,
)
from applets.sw import SW
from issuer.products import CANTEEN, TRANSIT
from reader import pboc
from reader.flow import run
from reader.transport import in_field
from tests.conftest import EXPIRY, NOW, START, make_band, serial_for
from tests.support.purse import DATE, DLK, DTK, TERMINAL, TIME, load, purchase, send


@pytest.fixture
def transit(band):
    band.power_on()
    assert send(band, pboc.select(TRANSIT.aid)).sw == SW.OK
    return band


def balance(band) -> int:
    return int.from_bytes(send(band, pboc.get_balance()).data)


def test_select_returns_fci_with_the_issuer_file(band):
    with in_field(band) as link:
        issuer = run(pboc.select_purse(), link)
    assert issuer.app_serial == serial_for(TRANSIT)
    fci = ResponseAPDU.parse(link.trace[0].response).data
    assert tlv.find(fci, 0x84) == TRANSIT.aid
    assert ISSUER_FILE.parse(tlv.find(fci, 0x9F0C) or b"") == issuer


def test_partial_name_and_next_occurrence_select_each_application(band):
    band.power_on()
    first = send(band, "00A40400" + "01" + "A0")
    assert first.sw == SW.OK and tlv.find(first.data, 0x84) == ISD_AID
    second = send(band, "00A40402" + "01" + "A0")
    assert second.sw == SW.OK and tlv.find(second.data, 0x84) == TRANSIT.aid
    assert send(band, "00A40402" + "01" + "A0").sw == SW.FILE_NOT_FOUND
    assert tlv.find(send(band, "00A4040001F0").data, 0x84) == CANTEEN.aid


def test_load_credits_and_returns_the_tac_the_issuer_expects(transit):
    response = load(transit, 5000)
    assert response.sw == SW.OK
    terminal = crypto.Terminal(TERMINAL, DATE, TIME)
    assert response.data == crypto.load_tac(DTK, 5000, 0, 5000, TxType.EP_LOAD, terminal)
    assert balance(transit) == 5000


def test_purchase_debits_logs_and_proves(transit):
    load(transit, 1000)
    response, key = purchase(transit, 300, seq=0x12345678)
    assert response.sw == SW.OK
    terminal = crypto.Terminal(TERMINAL, DATE, TIME)
    tac, mac2 = response.data[:4], response.data[4:]
    assert mac2 == crypto.purchase_mac2(key, 300)
    assert tac == crypto.purchase_tac(DTK, 300, TxType.EP_PURCHASE, terminal, 0x12345678)
    assert balance(transit) == 700
    newest = LOG_RECORD.parse(send(transit, pboc.read_record(pboc.SFI_LOG, 1)).data)
    assert (newest.amount, newest.tx_type, newest.counter) == (300, TxType.EP_PURCHASE, 0)
    prove = send(transit, pboc.get_transaction_prove(TxType.EP_PURCHASE, 0))
    assert prove.data == mac2 + tac
    assert send(transit, pboc.get_transaction_prove(TxType.EP_PURCHASE, 1)).sw == SW.MAC_NOT_AVAILABLE


def test_insufficient_balance_is_refused_at_initialize(transit):
    load(transit, 100)
    before = transit.se.store.snapshot()
    answer = send(transit, pboc.initialize(pboc.P1_PURCHASE, InitCommand(1, 101, TERMINAL)))
    assert answer.sw == SW.INSUFFICIENT_FUNDS
    assert transit.se.store.snapshot() == before


def test_load_over_the_maximum_balance_is_refused(transit):
    answer = send(transit, pboc.initialize(pboc.P1_LOAD, InitCommand(1, TRANSIT.max_balance + 1, TERMINAL)))
    assert answer.sw == SW.WRONG_DATA


def test_unknown_key_index_is_9403(transit):
    answer = send(transit, pboc.initialize(pboc.P1_PURCHASE, InitCommand(9, 0, TERMINAL)))
    assert answer.sw == SW.KEY_INDEX_NOT_SUPPORTED


def test_debit_without_initialize_is_6985(transit):
    answer = send(transit, pboc.debit_for_purchase(DebitCommand(1, DATE, TIME, bytes(4))))
    assert answer.sw == SW.CONDITIONS_NOT_SATISFIED


def test_wrong_mac1_is_counted_and_blocks_the_purchase_key(transit):
    load(transit, 1000)
    for tries_left in (2, 1, 0):
        response, _ = purchase(transit, 100, mac1=b"\x00\x00\x00\x00")
        assert response.sw == SW.MAC_INVALID
        assert transit.se.store.get(f"app/{TRANSIT.aid.hex().upper()}/tries/dpk") == bytes((tries_left,))
    blocked = send(transit, pboc.initialize(pboc.P1_PURCHASE, InitCommand(1, 100, TERMINAL)))
    assert blocked.sw == SW.AUTHENTICATION_METHOD_BLOCKED
    assert balance(transit) == 1000  # reading still works, nothing was charged
    assert load(transit, 100).sw == SW.OK  # the load key is a different key usage


def test_a_good_mac_restores_the_tries(transit):
    load(transit, 1000)
    purchase(transit, 100, mac1=bytes(4))
    assert purchase(transit, 100)[0].sw == SW.OK
    assert transit.se.store.get(f"app/{TRANSIT.aid.hex().upper()}/tries/dpk") == b"\x03"


def test_replayed_mac2_of_an_old_load_is_refused(transit):
    init = INIT_LOAD_RESPONSE.parse(
        send(transit, pboc.initialize(pboc.P1_LOAD, InitCommand(1, 500, TERMINAL))).data)
    key = crypto.load_session_key(DLK, init.random, init.counter)
    old_mac2 = crypto.load_mac2(key, 500, TxType.EP_LOAD, crypto.Terminal(TERMINAL, DATE, TIME))
    assert send(transit, pboc.credit_for_load(CreditCommand(DATE, TIME, old_mac2))).sw == SW.OK
    # the same MAC2 again: the card has a new random and a new counter
    assert load(transit, 500, mac2=old_mac2).sw == SW.MAC_INVALID
    assert balance(transit) == 500


def test_replayed_debit_is_refused(transit):
    load(transit, 1000)
    response, _ = purchase(transit, 100)
    assert response.sw == SW.OK
    replay = send(transit, pboc.debit_for_purchase(DebitCommand(1, DATE, TIME, bytes(4))))
    assert replay.sw == SW.CONDITIONS_NOT_SATISFIED  # no session any more
    assert balance(transit) == 900


def test_compound_purchase_writes_the_cached_record_with_the_debit(transit):
    load(transit, 1000)
    record = bytes((0x01, 46)) + b"\x01" + bytes(45)
    response, _ = purchase(transit, 0, capp=record)
    assert response.sw == SW.OK
    assert send(transit, pboc.read_record_by_id(pboc.SFI_TRANSIT, 0x01)).data == record


def test_capp_cache_outside_a_compound_purchase_is_refused(transit):
    record = bytes((0x01, 46)) + bytes(46)
    assert send(transit, pboc.update_capp_data_cache(record)).sw == SW.CONDITIONS_NOT_SATISFIED


def test_a_cached_record_is_dropped_if_the_debit_fails(transit):
    load(transit, 1000)
    before = send(transit, pboc.read_record_by_id(pboc.SFI_TRANSIT, 0x01)).data
    record = bytes((0x01, 46)) + b"\x02" + bytes(45)
    response, _ = purchase(transit, 100, mac1=bytes(4), capp=record)
    assert response.sw == SW.MAC_INVALID
    assert send(transit, pboc.read_record_by_id(pboc.SFI_TRANSIT, 0x01)).data == before


def test_files_keep_their_access_conditions(transit):
    assert send(transit, "00D6950001FF").sw == SW.SECURITY_STATUS_NOT_SATISFIED
    assert send(transit, "00DC01BC" + "17" + "00" * 23).sw == SW.SECURITY_STATUS_NOT_SATISFIED
    assert send(transit, "00B0950000").data[:8] == TRANSIT.issuer_id
    assert send(transit, "00A4000002001500").sw == SW.OK
    assert send(transit, "00B0000A0A").data == serial_for(TRANSIT)


def test_reselection_ends_a_session(transit):
    load(transit, 1000)
    send(transit, pboc.initialize(pboc.P1_PURCHASE, InitCommand(1, 100, TERMINAL)))
    send(transit, pboc.select(TRANSIT.aid))
    answer = send(transit, pboc.debit_for_purchase(DebitCommand(1, DATE, TIME, bytes(4))))
    assert answer.sw == SW.CONDITIONS_NOT_SATISFIED


def test_read_log_lists_newest_first(band, clock):
    assert clock() == NOW
    band.power_on()
    send(band, pboc.select(TRANSIT.aid))
    load(band, 300)
    load(band, 200)
    with in_field(band) as link:
        run(pboc.select_purse(), link)
        records = run(pboc.read_log(), link)
    assert [r.amount for r in records] == [200, 300]
    assert [r.counter for r in records] == [1, 0]


# -- card numbers: the issuer's prefix and 16 BCD digits (JT/T 978) --------------------------


@pytest.mark.parametrize("serial", ["100068A1322188A8C334", "1000" "00000000000003E8",
                                    "1000" "000000000000000A"])
def test_the_card_refuses_a_serial_that_is_not_bcd_after_the_prefix(serial):
    data = TRANSIT.personalisation(serial_for(TRANSIT), START, EXPIRY)
    band = make_band()
    with pytest.raises(CardError) as refusal:
        band.add_purse(replace(data, issuer_file=replace(data.issuer_file,
                                                         app_serial=bytes.fromhex(serial))),
                       TRANSIT.aid)
    assert refusal.value.sw == SW.WRONG_DATA
    with pytest.raises(ValueError, match="BCD"):
        TRANSIT.personalisation(bytes.fromhex(serial), START, EXPIRY)


@pytest.mark.parametrize("item", [TRANSIT, CANTEEN])
def test_factory_and_ordered_serials_are_the_prefix_and_16_bcd_digits(item):
    for serial in (item.factory_serial(bytes.fromhex("04A1B2C3D4E5F6")), item.serial(10**16 - 1),
                   item.serial(0)):
        assert len(serial) == 10 and serial[:2] == item.issuer_id[:2]
        assert serial[2:].hex().isdigit()
        item.check_serial(serial)
    with pytest.raises(ValueError, match="prefix"):
        item.check_serial((CANTEEN if item is TRANSIT else TRANSIT).serial(1))
