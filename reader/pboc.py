"""Terminal side of the PBOC 2.0 e-purse: command builders and card-reading flows.

The builders are the card's own (``applets.iso7816`` for the interindustry
commands, ``applets.pboc.commands`` for the purse's), gathered here so that
a terminal imports one module; flows yield them and parse the answers with
the same layouts the card builds them with (``applets.pboc.layouts``).
"""

from __future__ import annotations

from collections.abc import Callable

from applets import tlv
from applets.iso7816 import get_challenge, read_binary, read_record, read_record_by_id
from applets.layout import LayoutError
from applets.pboc.commands import (
    P1_CAPP_PURCHASE,
    P1_LOAD,
    P1_PURCHASE,
    application_block,
    change_pin,
    credit_for_load,
    debit_for_purchase,
    get_balance,
    get_transaction_prove,
    initialize,
    update_capp_data_cache,
    verify_pin,
)
from applets.pboc.layouts import (
    ISSUER_FILE,
    LOG_RECORD,
    LOG_RECORDS,
    PROVE_RESPONSE,
    SFI_HOLDER,
    SFI_ISSUER,
    SFI_LOG,
    SFI_TRANSIT,
    TRANSIT_RECORD,
    IssuerFile,
    LogRecord,
    ProveResponse,
    TransitRecord,
    TxType,
    fci_issuer_file,
)
from applets.selection import Answer, SelectBy, select, select_file, select_mf, select_path
from applets.sw import SW
from reader.errors import CardProtocolError
from reader.flow import Flow, Refusals, check, exchange, parse

__all__ = [
    "EF_ISSUER",
    "EP_DF",
    "LOG_RECORDS",
    "P1_CAPP_PURCHASE",
    "P1_LOAD",
    "P1_PURCHASE",
    "REFUSALS",
    "SFI_HOLDER",
    "SFI_ISSUER",
    "SFI_LOG",
    "SFI_TRANSIT",
    "T_UNION_AID",
    "application_block",
    "block_application",
    "change_pin",
    "credit_for_load",
    "debit_for_purchase",
    "get_balance",
    "get_challenge",
    "get_transaction_prove",
    "initialize",
    "read_balance",
    "read_binary",
    "read_issuer_file_by_fid",
    "read_log",
    "read_record",
    "read_record_by_id",
    "read_transit_record",
    "select",
    "select_file",
    "select_mf",
    "select_path",
    "select_purse",
    "transaction_prove",
    "update_capp_data_cache",
    "verify_pin",
]

T_UNION_AID = bytes.fromhex("A000000632010105")
#: The electronic purse's DF on Beijing and T-Union cards, and the issuer file's EF in it.
EP_DF, EF_ISSUER = 0x1001, 0x0015

#: What riders are told when the card refuses; anything else is a card fault.
REFUSALS: Refusals = {
    SW.INSUFFICIENT_FUNDS: "insufficient balance: top up the card",
    SW.AUTHENTICATION_METHOD_BLOCKED: "card blocked after repeated security errors: contact the issuer",
    SW.APPLICATION_PERMANENTLY_LOCKED: "card locked: contact the issuer",
    SW.TRANSACTION_COUNTER_AT_LIMIT: "card worn out (transaction counter at its limit): replace it",
    SW.FILE_NOT_FOUND: "not a card this terminal accepts (none here, or locked by its issuer)",
    SW.FUNCTION_NOT_SUPPORTED: "card blocked by its issuer (reported lost): see station staff",
}


# -- flows ---------------------------------------------------------------------------


def select_purse(aid: bytes = T_UNION_AID) -> Flow[IssuerFile]:
    """SELECT the purse and read its issuer file from the FCI (tag 9F0C)."""
    fci = yield from exchange(select(aid), "SELECT", REFUSALS)
    try:
        issuer = fci_issuer_file(fci)
    except tlv.TLVError as exc:
        raise CardProtocolError("SELECT", SW.OK, f"FCI is not BER-TLV: {exc}") from exc
    except LayoutError as exc:
        raise CardProtocolError("issuer file", SW.OK, str(exc)) from exc
    if issuer is None:
        data = yield from exchange(read_binary(SFI_ISSUER), "READ BINARY 15")
        issuer = parse(ISSUER_FILE, data, "issuer file")
    return issuer


def block_application(mac_for: Callable[[bytes], bytes]) -> Flow[None]:
    """GET CHALLENGE, then APPLICATION BLOCK with the MAC ``mac_for(challenge)`` (the PSAM's,
    under the card's maintenance key)."""
    challenge = yield from exchange(get_challenge(4), "GET CHALLENGE")
    check(len(challenge) == 4, "GET CHALLENGE", f"{len(challenge)} bytes instead of 4")
    yield from exchange(application_block(mac_for(challenge)), "APPLICATION BLOCK")


def read_issuer_file_by_fid(df: int = EP_DF) -> Flow[IssuerFile]:
    """The issuer file as older PBOC terminals and reader apps read it, by file identifier:
    SELECT the MF (a card without one may refuse: go on), the purse's DF, EF 0015 with no
    answer, then READ BINARY of the current EF."""
    yield select_mf(Answer.NONE)
    yield from exchange(select_file(df), "SELECT DF", REFUSALS)
    yield from exchange(select_file(EF_ISSUER, SelectBy.EF_UNDER_CURRENT_DF, Answer.NONE),
                        "SELECT EF 0015")
    data = yield from exchange(read_binary(None, ne=ISSUER_FILE.size), "READ BINARY")
    return parse(ISSUER_FILE, data, "issuer file")


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
