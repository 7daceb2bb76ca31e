"""Terminal side of the PBOC 2.0 e-purse: command builders and card-reading flows.

Builders return :class:`CommandAPDU`; flows yield them and parse the answers
with the same layouts the card builds them with (``applets.pboc.layouts``).
"""

from __future__ import annotations

from applets import tlv
from applets.apdu import CommandAPDU
from applets.pboc.layouts import (
    CREDIT_COMMAND,
    DEBIT_COMMAND,
    INIT_COMMAND,
    ISSUER_FILE,
    LOG_RECORD,
    PROVE_RESPONSE,
    TRANSIT_RECORD,
    CreditCommand,
    DebitCommand,
    InitCommand,
    IssuerFile,
    LogRecord,
    ProveResponse,
    TransitRecord,
    TxType,
)
from applets.sw import SW
from reader.errors import CardProtocolError
from reader.flow import Flow, Refusals, check, exchange, parse

T_UNION_AID = bytes.fromhex("A000000632010105")
SFI_ISSUER, SFI_HOLDER, SFI_TRANSIT, SFI_LOG = 0x15, 0x16, 0x17, 0x18
LOG_RECORDS = 10
P1_LOAD, P1_PURCHASE, P1_CAPP_PURCHASE = 0x00, 0x01, 0x03

#: What riders are told when the card refuses; anything else is a card fault.
REFUSALS: Refusals = {
    SW.INSUFFICIENT_FUNDS: "insufficient balance: top up the card",
    SW.AUTHENTICATION_METHOD_BLOCKED: "card blocked after repeated security errors: contact the issuer",
    SW.APPLICATION_PERMANENTLY_LOCKED: "card locked: contact the issuer",
    SW.TRANSACTION_COUNTER_AT_LIMIT: "card worn out (transaction counter at its limit): replace it",
    SW.FILE_NOT_FOUND: "not a card this terminal accepts (none here, or locked by its issuer)",
}


def select(aid: bytes) -> CommandAPDU:
    return CommandAPDU(0x00, 0xA4, 0x04, 0x00, aid, ne=256)


def get_balance() -> CommandAPDU:
    return CommandAPDU(0x80, 0x5C, 0x00, 0x02, ne=4)


def read_binary(sfi: int, offset: int = 0) -> CommandAPDU:
    return CommandAPDU(0x00, 0xB0, 0x80 | sfi, offset, ne=256)


def read_record(sfi: int, number: int) -> CommandAPDU:
    return CommandAPDU(0x00, 0xB2, number, (sfi << 3) | 0b100, ne=256)


def read_record_by_id(sfi: int, identifier: int) -> CommandAPDU:
    return CommandAPDU(0x00, 0xB2, identifier, sfi << 3, ne=256)


def initialize(p1: int, command: InitCommand) -> CommandAPDU:
    ne = 16 if p1 == P1_LOAD else 15
    return CommandAPDU(0x80, 0x50, p1, 0x02, INIT_COMMAND.build(command), ne=ne)


def credit_for_load(command: CreditCommand) -> CommandAPDU:
    return CommandAPDU(0x80, 0x52, 0x00, 0x00, CREDIT_COMMAND.build(command), ne=4)


def debit_for_purchase(command: DebitCommand) -> CommandAPDU:
    return CommandAPDU(0x80, 0x54, 0x01, 0x00, DEBIT_COMMAND.build(command), ne=8)


def update_capp_data_cache(record: bytes) -> CommandAPDU:
    return CommandAPDU(0x80, 0xDC, record[0], SFI_TRANSIT << 3, record)


def get_transaction_prove(tx_type: TxType, counter: int) -> CommandAPDU:
    return CommandAPDU(0x80, 0x5A, 0x00, tx_type, counter.to_bytes(2), ne=8)


# -- flows ---------------------------------------------------------------------------


def select_purse(aid: bytes = T_UNION_AID) -> Flow[IssuerFile]:
    """SELECT the purse and read its issuer file from the FCI (tag 9F0C)."""
    fci = yield from exchange(select(aid), "SELECT", REFUSALS)
    try:
        issuer = tlv.find(fci, 0x9F0C)
    except tlv.TLVError as exc:
        raise CardProtocolError("SELECT", SW.OK, f"FCI is not BER-TLV: {exc}") from exc
    if issuer is None:
        issuer = yield from exchange(read_binary(SFI_ISSUER), "READ BINARY 15")
    return parse(ISSUER_FILE, issuer, "issuer file")


def read_balance() -> Flow[int]:
    data = yield from exchange(get_balance(), "GET BALANCE", REFUSALS)
    check(len(data) == 4, "GET BALANCE", f"{len(data)} bytes instead of 4")
    return int.from_bytes(data)


def read_transit_record(identifier: int) -> Flow[TransitRecord]:
    data = yield from exchange(read_record_by_id(SFI_TRANSIT, identifier), "READ RECORD 17")
    return parse(TRANSIT_RECORD, data, "transit record")


def transaction_prove(tx_type: TxType, counter: int) -> Flow[ProveResponse | None]:
    """GET TRANSACTION PROVE: the MAC and TAC of a completed transaction, None if it never
    completed (9406). The card answers this only for its last transaction of that kind."""
    response = yield get_transaction_prove(tx_type, counter)
    if response.sw == SW.MAC_NOT_AVAILABLE:
        return None
    if response.sw != SW.OK:
        raise CardProtocolError("GET TRANSACTION PROVE", response.sw)
    return parse(PROVE_RESPONSE, response.data, "GET TRANSACTION PROVE")


def read_log() -> Flow[list[LogRecord]]:
    """The transaction log, newest first, stopping at the first absent record."""
    records = []
    for number in range(1, LOG_RECORDS + 1):
        response = yield read_record(SFI_LOG, number)
        if response.sw == SW.RECORD_NOT_FOUND:
            break
        if response.sw != SW.OK:
            raise CardProtocolError("READ RECORD 18", response.sw)
        records.append(parse(LOG_RECORD, response.data, "log record"))
    return records
