"""A stored-value card's history as a reader app shows it: typed lines in time order, each with
the balance after it, and metro rides paired from entry to exit.

The card's log (EF 0x18) keeps its last ten transactions in the order it wrote them, each with
the counter it ran under: the online counter for a load, the offline counter for a purchase
(both start at 0 and count every transaction, so the newest counter of each kind says how many
there were, and how many the log no longer holds). A record carries its amount, not the
balance; walking back from the balance the card reports gives the balance after each.
A metro gate charges both ways through a complex-application purchase: 0 at entry, the fare at
exit; which gate it was is in the terminal id (:mod:`reader.places`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from applets import bcd
from applets.pboc.layouts import LogRecord, TxType
from reader import places
from reader.metro import MetroError, MetroNetwork


class Kind(StrEnum):
    """What a line of the history was, as a rider would name it."""

    ENTRY = "entry"
    EXIT = "exit"
    BUS = "bus"
    LOAD = "load"  # cash at a station's load machine
    TOP_UP = "top-up"  # over the air, from the issuer
    PURCHASE = "purchase"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Line:
    """One transaction: ``amount`` is signed (a load adds, a purchase takes); ``counter`` is
    the online counter for loads and the offline counter for purchases (``online``)."""

    when: datetime  # wall time at the terminal, as the card holds it
    kind: Kind
    place: str
    amount: int
    balance_after: int
    counter: int
    online: bool
    terminal_id: bytes


@dataclass(frozen=True, slots=True)
class Ride:
    """A metro ride read back from its entry and exit lines."""

    entered: datetime
    exited: datetime
    origin: str
    destination: str
    km: float | None  # None when a station is not on this network
    fare: int
    balance_after: int

    @property
    def minutes(self) -> int:
        return int((self.exited - self.entered).total_seconds() // 60)


@dataclass(frozen=True, slots=True)
class History:
    """The lines newest first, and how many older transactions the card no longer holds
    (at least; a kind with no line left cannot be counted)."""

    lines: tuple[Line, ...]
    dropped: int


def _kind(record: LogRecord) -> Kind:
    kind = record.terminal_id[0]
    if record.tx_type == TxType.EP_LOAD:
        return Kind.TOP_UP if record.terminal_id == places.OTA_LOAD else Kind.LOAD
    if record.tx_type == TxType.CAPP_PURCHASE and kind == places.METRO:
        return Kind.EXIT if record.amount else Kind.ENTRY
    if record.tx_type in (TxType.EP_PURCHASE, TxType.CAPP_PURCHASE):
        return Kind.BUS if kind == places.BUS else Kind.PURCHASE
    return Kind.OTHER


def read(balance: int, log: Sequence[LogRecord], network: MetroNetwork) -> History:
    """The history of a card whose balance is ``balance`` and whose log (newest written first)
    is ``log``; lines newest first by time (by writing where two share a time)."""
    lines, after = [], balance
    for record in log:
        online = record.tx_type == TxType.EP_LOAD
        amount = record.amount if online else -record.amount
        lines.append(Line(bcd.to_datetime(record.date, record.time), _kind(record),
                          places.describe(record.terminal_id, network), amount, after,
                          record.counter, online, record.terminal_id))
        after -= amount
    held = {online: [line.counter for line in lines if line.online == online]
            for online in (True, False)}
    dropped = sum(max(counters) + 1 - len(counters) for counters in held.values() if counters)
    return History(tuple(sorted(lines, key=lambda line: line.when, reverse=True)), dropped)


def rides(history: History, network: MetroNetwork) -> list[Ride]:
    """The metro rides whose entry and exit are both still on the card, newest first: each exit
    with the entry just before it."""
    found, exit_line = [], None
    for line in history.lines:  # newest first: an exit comes before its entry
        if line.kind == Kind.EXIT:
            exit_line = line
        elif line.kind == Kind.ENTRY and exit_line is not None:
            found.append(Ride(line.when, exit_line.when,
                              places.station_name(line.terminal_id, network),
                              places.station_name(exit_line.terminal_id, network),
                              _km(line, exit_line, network), -exit_line.amount,
                              exit_line.balance_after))
            exit_line = None
    return found


def _km(entry: Line, exit_line: Line, network: MetroNetwork) -> float | None:
    try:
        return network.distance_km(places.station_code(entry.terminal_id),
                                   places.station_code(exit_line.terminal_id))
    except MetroError:
        return None
