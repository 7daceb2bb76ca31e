"""What the PBOC purse keeps: its persistent cells (balance and counters, configuration, the
last transaction's proof) and, in RAM between two commands, its load and purchase sessions.
Only :mod:`applets.pboc.purse` reads and writes them."""

from __future__ import annotations

from dataclasses import dataclass

from construct import Bytes, Int8ub, Int16ub, Int32ub, Struct

from applets.layout import Layout
from applets.pboc.layouts import TxType

# -- persistent cells -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PurseCell:
    balance: int
    online_counter: int
    offline_counter: int


PURSE_CELL = Layout(Struct(
    "balance" / Int32ub, "online_counter" / Int16ub, "offline_counter" / Int16ub,
), PurseCell)


@dataclass(frozen=True, slots=True)
class ConfigCell:
    max_balance: int
    mac_tries: int


CONFIG_CELL = Layout(Struct("max_balance" / Int32ub, "mac_tries" / Int8ub), ConfigCell)


@dataclass(frozen=True, slots=True)
class ProofCell:
    """What GET TRANSACTION PROVE answers for the last completed transaction."""

    tx_type: int
    counter: int
    mac: bytes
    tac: bytes


PROOF_CELL = Layout(Struct(
    "tx_type" / Int8ub, "counter" / Int16ub, "mac" / Bytes(4), "tac" / Bytes(4),
), ProofCell)


# -- volatile sessions ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoadSession:
    key_index: int
    amount: int
    terminal_id: bytes
    balance: int
    counter: int
    session_key: bytes


@dataclass(frozen=True, slots=True)
class PurchaseSession:
    tx_type: TxType
    key: bytes
    amount: int
    terminal_id: bytes
    balance: int
    counter: int
    random: bytes
    capp_record: tuple[int, bytes] | None = None
