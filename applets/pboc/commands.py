"""JR/T 0025 (PBOC 2.0) e-purse commands, declared once for the card, the terminals and the issuer.

Terminals and the issuer build the commands here; the purse checks the
headers it gets against the same constants, and both sides read the data
with the layouts of :mod:`applets.pboc.layouts`.

=====  ====  ====================================  ======================  ==
CLA    INS   command                               P1 P2                   Le
=====  ====  ====================================  ======================  ==
80     50    INITIALIZE FOR LOAD / PURCHASE /      00 / 01 / 03, 02 (EP)   16 / 15
             CAPP PURCHASE
80     52    CREDIT FOR LOAD                       00 00                   4
80     54    DEBIT FOR (CAPP) PURCHASE             01 00                   8
80     5A    GET TRANSACTION PROVE                 00, transaction type    8
80     5C    GET BALANCE                           00 02                   4
80     DC    UPDATE CAPP DATA CACHE                record id, SFI << 3     —
=====  ====  ====================================  ======================  ==
"""

from __future__ import annotations

from applets.apdu import CommandAPDU
from applets.iso7816 import BY_IDENTIFIER, CLA_PROPRIETARY, Ins, RecordReference
from applets.pboc.layouts import (
    CREDIT_COMMAND,
    DEBIT_COMMAND,
    DEBIT_RESPONSE,
    INIT_COMMAND,
    INIT_LOAD_RESPONSE,
    INIT_PURCHASE_RESPONSE,
    PROVE_RESPONSE,
    SFI_TRANSIT,
    CreditCommand,
    DebitCommand,
    InitCommand,
    TxType,
)

#: INITIALIZE P1: what the session is for; P2 02 names the electronic purse (01: the deposit).
P1_LOAD, P1_PURCHASE, P1_CAPP_PURCHASE = 0x00, 0x01, 0x03
P2_EP = 0x02
BALANCE_P1P2 = (0x00, P2_EP)
CREDIT_P1P2 = (0x00, 0x00)
DEBIT_P1P2 = (0x01, 0x00)
PROVE_P1 = 0x00  # P2 is the transaction type
TAC_SIZE = 4
#: UPDATE CAPP DATA CACHE addresses the compound file's record by its identifier.
CAPP_CACHE_P2 = RecordReference(SFI_TRANSIT, 0, BY_IDENTIFIER).p2


def get_balance() -> CommandAPDU:
    return CommandAPDU(CLA_PROPRIETARY, Ins.GET_BALANCE, *BALANCE_P1P2, ne=4)


def initialize(p1: int, command: InitCommand) -> CommandAPDU:
    """INITIALIZE FOR LOAD (``P1_LOAD``), PURCHASE or CAPP PURCHASE."""
    ne = INIT_LOAD_RESPONSE.size if p1 == P1_LOAD else INIT_PURCHASE_RESPONSE.size
    return CommandAPDU(CLA_PROPRIETARY, Ins.INITIALIZE, p1, P2_EP, INIT_COMMAND.build(command),
                       ne=ne)


def credit_for_load(command: CreditCommand) -> CommandAPDU:
    return CommandAPDU(CLA_PROPRIETARY, Ins.CREDIT_FOR_LOAD, *CREDIT_P1P2,
                       CREDIT_COMMAND.build(command), ne=TAC_SIZE)


def debit_for_purchase(command: DebitCommand) -> CommandAPDU:
    return CommandAPDU(CLA_PROPRIETARY, Ins.DEBIT_FOR_PURCHASE, *DEBIT_P1P2,
                       DEBIT_COMMAND.build(command), ne=DEBIT_RESPONSE.size)


def update_capp_data_cache(record: bytes) -> CommandAPDU:
    """Stage ``record`` (its first byte is its identifier) for the next CAPP DEBIT."""
    if not record:
        raise ValueError("a compound record starts with its identifier")
    return CommandAPDU(CLA_PROPRIETARY, Ins.UPDATE_CAPP_DATA_CACHE, record[0], CAPP_CACHE_P2,
                       record)


def get_transaction_prove(tx_type: TxType, counter: int) -> CommandAPDU:
    return CommandAPDU(CLA_PROPRIETARY, Ins.GET_TRANSACTION_PROVE, PROVE_P1, tx_type,
                       counter.to_bytes(2), ne=PROVE_RESPONSE.size)
