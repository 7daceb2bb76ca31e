"""The clearing records: one JSON form each, read back to the same record, the terminal's notes
kept in its files and never sent."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reader.load import Load
from reader.record import (
    EcashPurchase,
    LoadRecord,
    PurchaseRecord,
    from_json,
    to_json,
)
from reader.terminal import Debit
from tests.support.records import records

KINDS = (PurchaseRecord, LoadRecord, EcashPurchase)
DEBIT = Debit(bytes.fromhex("10000000000000000001"), 6, 200, 3, bytes.fromhex("990000000001"), 7,
              bytes.fromhex("20261123"), bytes.fromhex("090000"), bytes.fromhex("A1B2C3D4"),
              issuer_id=bytes(8), balance_after=800, mac2_verified=True)


@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.__name__)
@given(data=st.data())
def test_every_record_reads_back_from_its_json(kind, data):
    record = data.draw(records(kind))
    text = json.dumps(to_json(record))
    assert from_json(kind, json.loads(text)) == record


def test_bytes_are_upper_case_hex_and_read_in_either_case():
    written = to_json(DEBIT, PurchaseRecord)
    assert written["tac"] == "A1B2C3D4" and written["date"] == "20261123"
    assert from_json(PurchaseRecord, {**written, "tac": "a1b2c3d4"}).tac == DEBIT.tac


def test_a_terminals_notes_stay_in_its_file_and_are_never_sent():
    kept = to_json(DEBIT)
    assert (kept["issuer_id"], kept["balance_after"], kept["mac2_verified"]) == ("00" * 8, 800, True)
    sent = to_json(DEBIT, PurchaseRecord)
    assert set(sent) == {"app_serial", "tx_type", "amount", "card_counter", "terminal_id",
                         "terminal_seq", "date", "time", "tac"}
    read = from_json(PurchaseRecord, {"record": "debit", **kept})
    assert type(read) is PurchaseRecord and to_json(read) == sent
    load = Load(DEBIT.app_serial, 500, 1300, 4, DEBIT.terminal_id, DEBIT.date, DEBIT.time,
                DEBIT.tac, issuer_id=bytes(8), recovered=True)
    assert set(to_json(load)) - set(to_json(load, LoadRecord)) == {"issuer_id", "recovered"}


def test_json_of_the_wrong_form_names_the_field():
    sent = to_json(DEBIT, PurchaseRecord)
    for broken, field in (({**sent, "amount": "200"}, "amount"), ({**sent, "amount": True}, "amount"),
                          ({**sent, "tac": "A1B2C3D"}, "tac"), ({**sent, "date": 20261123}, "date")):
        with pytest.raises(ValueError, match=f"^{field}: "):
            from_json(PurchaseRecord, broken)
    with pytest.raises(ValueError, match=r"^terminal_seq: missing"):
        from_json(PurchaseRecord, {k: v for k, v in sent.items() if k != "terminal_seq"})


def test_an_ecash_purchase_may_leave_out_its_psn_and_merchant():
    purchase = from_json(EcashPurchase, {"pan": "6212345678901234", "amount": 500, "atc": 3,
                                         "cryptogram": "00" * 8, "cid": 0x40, "iad": "",
                                         "data": {"9A": "261123", "9F21": "090000"}})
    assert (purchase.psn, purchase.merchant) == (0, "")
    assert purchase.data == {0x9A: bytes.fromhex("261123"), 0x9F21: bytes.fromhex("090000")}
