"""JR/T 0025 (PBOC 2.0) e-purse files, FCI and command data, declared once.

Card and reader both use these: the card to build, the reader to parse.
Amounts and balances are fen (0.01 CNY), unsigned, big-endian; dates and
times are BCD (YYYYMMDD, hhmmss); terminal identifiers have 6 bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from construct import Bytes, Int8ub, Int16ub, Int24ub, Int32ub, Padding, Struct

from applets import bcd, selection, tlv
from applets.layout import Layout

#: Short file identifiers of the purse's EFs, and the records its cyclic log keeps.
SFI_ISSUER, SFI_HOLDER, SFI_TRANSIT, SFI_LOG = 0x15, 0x16, 0x17, 0x18
LOG_RECORDS = 10
#: The application serial number (EF 0x15 bytes 10-19): the issuer's 2-byte prefix, then the
#: card number, 16 decimal digits in BCD as T-Union readers show it (JT/T 978).
SERIAL_SIZE, SERIAL_PREFIX, SERIAL_DIGITS = 10, 2, 16


class TxType(IntEnum):
    """Transaction type identifiers in MACs, TACs and the 0x18 log."""

    ED_LOAD = 0x01
    EP_LOAD = 0x02
    ED_PURCHASE = 0x05
    EP_PURCHASE = 0x06
    CAPP_PURCHASE = 0x09


class JourneyStatus(IntEnum):
    NONE = 0x00
    ENTERED = 0x01
    EXITED = 0x02


@dataclass(frozen=True, slots=True)
class IssuerFile:
    """EF 0x15, public application basic data (30 bytes); also FCI tag 9F0C."""

    issuer_id: bytes
    app_type: int
    app_version: int
    app_serial: bytes
    start_date: bytes
    expiry_date: bytes
    fci_custom: bytes


ISSUER_FILE = Layout(Struct(
    "issuer_id" / Bytes(8), "app_type" / Int8ub, "app_version" / Int8ub,
    "app_serial" / Bytes(SERIAL_SIZE), "start_date" / Bytes(4), "expiry_date" / Bytes(4),
    "fci_custom" / Bytes(2),
), IssuerFile)


def card_number(app_serial: bytes) -> str:
    """The 16 digits of the card number in ``app_serial``; ValueError if the serial is not
    10 bytes or not BCD after the issuer's prefix."""
    if len(app_serial) != SERIAL_SIZE:
        raise ValueError(f"an application serial number has 10 bytes, got {len(app_serial)}")
    digits = app_serial[SERIAL_PREFIX:].hex().upper()
    try:
        return bcd.decode(app_serial[SERIAL_PREFIX:])
    except ValueError:
        raise ValueError(f"application serial {app_serial.hex().upper()}: the card number "
                         f"{digits} after the issuer's prefix is not {SERIAL_DIGITS} BCD "
                         f"digits") from None


FCI_VERSION, FCI_ISSUER_FILE = 0x9F08, 0x9F0C


def purse_proprietary(issuer_file: bytes) -> bytes:
    """The data objects of a purse's proprietary template (A5): application version 02 and
    the issuer file."""
    return tlv.encode(FCI_VERSION, b"\x02") + tlv.encode(FCI_ISSUER_FILE, issuer_file)


def purse_fci(aid: bytes, issuer_file: bytes) -> bytes:
    """The FCI a purse answers SELECT with: its AID, application version 02 and the issuer
    file, so that a terminal needs no READ BINARY of EF 0x15."""
    return selection.fci(aid, purse_proprietary(issuer_file))


def fci_issuer_file(fci: bytes) -> IssuerFile | None:
    """The issuer file in a purse's FCI (tag 9F0C), None if the FCI carries none.

    :class:`~applets.tlv.TLVError` if the FCI is not BER-TLV, :class:`~applets.layout.LayoutError`
    if the issuer file is not one.
    """
    found = tlv.find(fci, FCI_ISSUER_FILE)
    return None if found is None else ISSUER_FILE.parse(found)


@dataclass(frozen=True, slots=True)
class HolderFile:
    """EF 0x16, card holder data (55 bytes); name GBK, ID number ASCII, space-padded."""

    holder_type: int
    staff: int
    name: bytes
    id_number: bytes
    id_type: int


HOLDER_FILE = Layout(Struct(
    "holder_type" / Int8ub, "staff" / Int8ub, "name" / Bytes(20),
    "id_number" / Bytes(32), "id_type" / Int8ub,
), HolderFile)


@dataclass(frozen=True, slots=True)
class LogRecord:
    """A record of the cyclic transaction log EF 0x18 (23 bytes), newest first."""

    counter: int
    overdraft: int
    amount: int
    tx_type: int
    terminal_id: bytes
    date: bytes
    time: bytes


LOG_RECORD = Layout(Struct(
    "counter" / Int16ub, "overdraft" / Int24ub, "amount" / Int32ub, "tx_type" / Int8ub,
    "terminal_id" / Bytes(6), "date" / Bytes(4), "time" / Bytes(3),
), LogRecord)


@dataclass(frozen=True, slots=True)
class TransitRecord:
    """The metro record of the compound application file EF 0x17 (48 bytes).

    Its first byte is the record identifier that UPDATE CAPP DATA CACHE and
    READ RECORD (P2 b3-b1 = 000) address it by; the second is the length of
    what follows. The card writes it only as part of a compound purchase.
    """

    record_id: int
    length: int
    status: int
    city: bytes
    entry_station: int
    entry_terminal: bytes
    entry_date: bytes
    entry_time: bytes
    exit_station: int
    exit_terminal: bytes
    exit_date: bytes
    exit_time: bytes
    fare: int


TRANSIT_RECORD = Layout(Struct(
    "record_id" / Int8ub, "length" / Int8ub, "status" / Int8ub, "city" / Bytes(2),
    "entry_station" / Int16ub, "entry_terminal" / Bytes(6),
    "entry_date" / Bytes(4), "entry_time" / Bytes(3),
    "exit_station" / Int16ub, "exit_terminal" / Bytes(6),
    "exit_date" / Bytes(4), "exit_time" / Bytes(3),
    "fare" / Int32ub, "_reserved" / Padding(9),
), TransitRecord)

METRO_RECORD_ID = 0x01


# -- command and response data ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class InitCommand:
    """INITIALIZE FOR LOAD / PURCHASE / CAPP PURCHASE data (11 bytes)."""

    key_index: int
    amount: int
    terminal_id: bytes


INIT_COMMAND = Layout(Struct(
    "key_index" / Int8ub, "amount" / Int32ub, "terminal_id" / Bytes(6),
), InitCommand)


@dataclass(frozen=True, slots=True)
class InitLoadResponse:
    balance: int
    counter: int
    key_version: int
    algorithm: int
    random: bytes
    mac1: bytes


INIT_LOAD_RESPONSE = Layout(Struct(
    "balance" / Int32ub, "counter" / Int16ub, "key_version" / Int8ub,
    "algorithm" / Int8ub, "random" / Bytes(4), "mac1" / Bytes(4),
), InitLoadResponse)


@dataclass(frozen=True, slots=True)
class CreditCommand:
    date: bytes
    time: bytes
    mac2: bytes


CREDIT_COMMAND = Layout(Struct(
    "date" / Bytes(4), "time" / Bytes(3), "mac2" / Bytes(4),
), CreditCommand)


@dataclass(frozen=True, slots=True)
class InitPurchaseResponse:
    balance: int
    counter: int
    overdraft: int
    key_version: int
    algorithm: int
    random: bytes


INIT_PURCHASE_RESPONSE = Layout(Struct(
    "balance" / Int32ub, "counter" / Int16ub, "overdraft" / Int24ub,
    "key_version" / Int8ub, "algorithm" / Int8ub, "random" / Bytes(4),
), InitPurchaseResponse)


@dataclass(frozen=True, slots=True)
class DebitCommand:
    terminal_seq: int
    date: bytes
    time: bytes
    mac1: bytes


DEBIT_COMMAND = Layout(Struct(
    "terminal_seq" / Int32ub, "date" / Bytes(4), "time" / Bytes(3), "mac1" / Bytes(4),
), DebitCommand)


@dataclass(frozen=True, slots=True)
class DebitResponse:
    tac: bytes
    mac2: bytes


DEBIT_RESPONSE = Layout(Struct("tac" / Bytes(4), "mac2" / Bytes(4)), DebitResponse)


@dataclass(frozen=True, slots=True)
class ProveResponse:
    """GET TRANSACTION PROVE: the MAC and TAC of an earlier transaction."""

    mac: bytes
    tac: bytes


PROVE_RESPONSE = Layout(Struct("mac" / Bytes(4), "tac" / Bytes(4)), ProveResponse)
