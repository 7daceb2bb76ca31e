"""A day's taps read as journeys, and what does not add up about them.

An entry is a metro gate's purchase of nothing, its exit the fare at another gate with the
card's next offline counter: the pair is a journey. Found on the way: a card's counters
with a gap (records missing somewhere), a terminal's sequence with a gap, an exit whose
record before is no entry, a journey longer than a gate allows.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from backoffice.books import GOOD, Anomaly
from reader.places import METRO, station_code

MAX_JOURNEY = timedelta(hours=4)  # reader.gate's limit


@dataclass(frozen=True, slots=True)
class Journey:
    serial: str
    issuer: str
    origin: int
    destination: int
    fare: int
    entered: str
    left: str


@dataclass(frozen=True, slots=True)
class Day:
    journeys: list[Journey]
    others: list[Any]  # the day's other good debits (buses, tills): to their terminal's owner
    findings: list[Anomaly]


def _metro(row: Any) -> bool:
    return bytes.fromhex(row.terminal)[0] == METRO


def _when(at: str) -> datetime:
    return datetime.strptime(at, "%Y%m%d%H%M%S")


def read_day(day: str, taps: Sequence[Any]) -> Day:
    """``taps``: the day's rows and each card's debit before them, by card, kind, counter."""
    journeys, others, findings = [], [], []
    cards: dict[str, list[Any]] = defaultdict(list)
    for row in taps:
        if row.kind == "debit":
            cards[row.serial].append(row)
    for serial, debits in cards.items():
        for previous, row in zip([None, *debits], debits, strict=False):
            if previous is not None and row.counter != previous.counter + 1 and row.day == day:
                findings.append(Anomaly(f"gap:{serial}:{previous.counter}:{row.counter}",
                                        "counter gap", serial, day,
                                        f"offline counters {previous.counter + 1} to {row.counter - 1} "
                                        f"missing: records lost somewhere"))
            if row.day != day or row.status != GOOD:
                continue
            if not _metro(row):
                others.append(row)
            elif row.amount > 0:
                entry = previous if (previous is not None and previous.counter == row.counter - 1
                                     and _metro(previous) and previous.amount == 0) else None
                if entry is None:
                    findings.append(Anomaly(f"no-entry:{serial}:{row.counter}",
                                            "exit without entry", serial, day,
                                            f"exit at {row.terminal} at {row.at}: no entry just "
                                            f"before; the fare goes to the exit's operator"))
                    journeys.append(Journey(serial, row.issuer, station_code(bytes.fromhex(row.terminal)),
                                            station_code(bytes.fromhex(row.terminal)), row.amount,
                                            row.at, row.at))
                    continue
                if _when(row.at) - _when(entry.at) > MAX_JOURNEY:
                    findings.append(Anomaly(f"overtime:{serial}:{row.counter}", "over-time journey",
                                            serial, day, f"entered {entry.at}, left {row.at}"))
                journeys.append(Journey(serial, row.issuer,
                                        station_code(bytes.fromhex(entry.terminal)),
                                        station_code(bytes.fromhex(row.terminal)), row.amount,
                                        entry.at, row.at))
    findings += _sequence_gaps(day, taps)
    return Day(journeys, others, findings)


def _sequence_gaps(day: str, taps: Sequence[Any]) -> list[Anomaly]:
    """Each terminal's PSAM numbers its purchases one by one: a gap is a record not here."""
    seqs: dict[str, list[int]] = defaultdict(list)
    for row in taps:
        if row.kind == "debit" and row.day == day:
            seqs[row.terminal].append(row.seq)
    findings = []
    for terminal, numbers in seqs.items():
        numbers.sort()
        for low, high in itertools.pairwise(numbers):
            if high > low + 1:
                findings.append(Anomaly(f"seq:{terminal}:{low}:{high}", "terminal sequence gap",
                                        "", day, f"terminal {terminal}: sequence {low + 1} to {high - 1} "
                                                 f"missing"))
    return findings
