"""The PBOC e-purse driven by raw APDUs: the load and purchase a host and a PSAM would send."""

from __future__ import annotations

from applets.apdu import ResponseAPDU
from applets.pboc import crypto
from applets.pboc.layouts import (
    INIT_LOAD_RESPONSE,
    INIT_PURCHASE_RESPONSE,
    CreditCommand,
    DebitCommand,
    InitCommand,
    TxType,
)
from applets.sw import SW
from issuer.products import TRANSIT
from reader import pboc
from tests.conftest import serial_for

TERMINAL = bytes.fromhex("990000000001")
DATE, TIME = bytes.fromhex("20261123"), bytes.fromhex("083000")
DIV = crypto.div_data(serial_for(TRANSIT))
DLK = crypto.diversify(TRANSIT.master.load, DIV)
DPK = crypto.diversify(TRANSIT.master.purchase, DIV)
DTK = crypto.diversify(TRANSIT.master.tac, DIV)


def send(band, apdu) -> ResponseAPDU:
    raw = bytes.fromhex(apdu) if isinstance(apdu, str) else apdu.encode()
    return ResponseAPDU.parse(band.transmit(raw))


def load(band, amount: int, mac2: bytes | None = None) -> ResponseAPDU:
    """INITIALIZE FOR LOAD + CREDIT FOR LOAD computed as the issuer's host would."""
    init = INIT_LOAD_RESPONSE.parse(
        send(band, pboc.initialize(pboc.P1_LOAD, InitCommand(1, amount, TERMINAL))).data)
    key = crypto.load_session_key(DLK, init.random, init.counter)
    terminal = crypto.Terminal(TERMINAL, DATE, TIME)
    mac2 = mac2 or crypto.load_mac2(key, amount, TxType.EP_LOAD, terminal)
    return send(band, pboc.credit_for_load(CreditCommand(DATE, TIME, mac2)))


def purchase(band, amount: int, seq: int = 1, mac1: bytes | None = None,
             capp: bytes | None = None) -> tuple[ResponseAPDU, bytes]:
    p1 = pboc.P1_CAPP_PURCHASE if capp else pboc.P1_PURCHASE
    answer = send(band, pboc.initialize(p1, InitCommand(1, amount, TERMINAL)))
    assert answer.sw == SW.OK, hex(answer.sw)
    init = INIT_PURCHASE_RESPONSE.parse(answer.data)
    key = crypto.purchase_session_key(DPK, init.random, init.counter, seq)
    tx_type = TxType.CAPP_PURCHASE if capp else TxType.EP_PURCHASE
    mac1 = mac1 or crypto.purchase_mac1(key, amount, tx_type, crypto.Terminal(TERMINAL, DATE, TIME))
    if capp:
        assert send(band, pboc.update_capp_data_cache(capp)).sw == SW.OK
    return send(band, pboc.debit_for_purchase(DebitCommand(seq, DATE, TIME, mac1))), key
