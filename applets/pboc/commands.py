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
80     5E    CHANGE PIN (RELOAD PIN: P1 00)        01 00                   —
84     1E    APPLICATION BLOCK (MAC, 4 bytes)      00, 00 / 01 (permanent) —
00     20    VERIFY (the holder PIN)               00 00                   —
=====  ====  ====================================  ======================  ==

The holder PIN (JR/T 0025 personal identification number) is 4 to 12 decimal
digits, sent in BCD and padded with F to whole bytes: 123456 is ``12 34 56``,
12345 is ``12 34 5F``. CHANGE PIN sends the current PIN, FF, the new PIN.
"""

from __future__ import annotations

from applets import bcd, iso7816
from applets.apdu import CommandAPDU, MalformedAPDU
from applets.errors import CardError
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
from applets.sw import SW

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


CLA_SECURE = 0x84  # proprietary, secure messaging: the data ends with a MAC
INS_APPLICATION_BLOCK = 0x1E
BLOCK_TEMPORARY, BLOCK_PERMANENT = 0x00, 0x01


def application_block_header(permanent: bool = False) -> bytes:
    """CLA INS P1 P2 Lc of APPLICATION BLOCK: what its MAC covers."""
    return bytes((CLA_SECURE, INS_APPLICATION_BLOCK, 0x00,
                  BLOCK_PERMANENT if permanent else BLOCK_TEMPORARY, TAC_SIZE))


def application_block(mac: bytes, permanent: bool = False) -> CommandAPDU:
    """APPLICATION BLOCK under the card's maintenance key: ``84 1E 00 P2 04 MAC``."""
    header = application_block_header(permanent)
    return CommandAPDU(header[0], header[1], header[2], header[3], mac)


def get_transaction_prove(tx_type: TxType, counter: int) -> CommandAPDU:
    return CommandAPDU(CLA_PROPRIETARY, Ins.GET_TRANSACTION_PROVE, PROVE_P1, tx_type,
                       counter.to_bytes(2), ne=PROVE_RESPONSE.size)


# -- the holder PIN ------------------------------------------------------------------------

PIN_DIGITS = range(4, 13)
PIN_SIZES = range(2, 7)  # bytes on the air: 4 to 12 digits padded with F
DEFAULT_PIN = "123456"  # what a card holds until its holder changes it, as card makers ship
CHANGE_PIN_P1P2 = (0x01, 0x00)
PIN_SEPARATOR = b"\xff"


def pin_bytes(pin: str) -> bytes:
    """``pin`` as VERIFY and CHANGE PIN send it; ValueError unless 4 to 12 digits."""
    if len(pin) not in PIN_DIGITS:
        raise ValueError(f"a PIN has {PIN_DIGITS.start} to {PIN_DIGITS.stop - 1} digits, "
                         f"got {len(pin)}")
    return bcd.encode_padded(pin)


def pin_digits(data: bytes) -> str:
    """The digits of a PIN sent as :func:`pin_bytes` sends it; ValueError otherwise."""
    digits = bcd.decode_padded(data)
    if len(data) != (len(digits) + 1) // 2 or len(digits) not in PIN_DIGITS:
        raise ValueError(f"{data.hex().upper()} is not a PIN of {PIN_DIGITS.start} to "
                         f"{PIN_DIGITS.stop - 1} digits padded with F")
    return digits


def presented_pin(data: bytes) -> bytes:
    """A PIN as the card reads it from VERIFY or CHANGE PIN: 6700 for a size no PIN has,
    6A80 for anything but 4 to 12 BCD digits padded with F."""
    if len(data) not in PIN_SIZES:
        raise CardError(SW.WRONG_LENGTH, f"a PIN has {PIN_SIZES.start} to "
                                         f"{PIN_SIZES.stop - 1} bytes, got {len(data)}")
    try:
        pin_digits(data)
    except ValueError as error:
        raise CardError(SW.WRONG_DATA, str(error)) from None
    return data


def verify_pin(pin: str) -> CommandAPDU:
    """VERIFY of the holder PIN, ``00 20 00 00 Lc PIN``."""
    return iso7816.verify(pin_bytes(pin))


def change_pin(current: str, new: str) -> CommandAPDU:
    """CHANGE PIN: ``80 5E 01 00 Lc`` current PIN ‖ FF ‖ new PIN."""
    return CommandAPDU(CLA_PROPRIETARY, Ins.CHANGE_PIN, *CHANGE_PIN_P1P2,
                       pin_bytes(current) + PIN_SEPARATOR + pin_bytes(new))


def parse_change_pin(apdu: CommandAPDU) -> tuple[bytes, bytes]:
    """The current and the new PIN of a CHANGE PIN: 6A86 for another P1 P2 (RELOAD PIN
    included, which needs an issuer key this card does not hold), 6700 / 6A80 as
    :func:`presented_pin`, 6A80 without the FF between them."""
    if (apdu.p1, apdu.p2) != CHANGE_PIN_P1P2:
        raise CardError(SW.INCORRECT_P1_P2, "only CHANGE PIN (P1 P2 01 00) is supported")
    current, separator, new = apdu.data.partition(PIN_SEPARATOR)
    if not separator:
        raise MalformedAPDU("CHANGE PIN separates the two PINs with FF", 5, SW.WRONG_DATA)
    return presented_pin(current), presented_pin(new)
