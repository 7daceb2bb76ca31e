"""A day's settlement: what each issuer owes each operator for its cards' rides.

Each journey's fare is split between the operators of the lines its quickest route used
(:class:`reader.routes.Splitter`); a bus or till purchase goes whole to its terminal's
owner. The issuer collected the money when the card was loaded, so it owes each operator
the sum of those parts: the net positions, which add up to the fares collected.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass

from backoffice.books import Anomaly, Books
from backoffice.journeys import Journey, read_day
from reader import places
from reader.metro import MetroNetwork
from reader.routes import Splitter

BUS_OPERATOR, TILL_OPERATOR = "Beijing Public Transport", "Koala Works canteen"


@dataclass(frozen=True, slots=True)
class Settlement:
    day: str
    positions: dict[tuple[str, str], int]  # (issuer, operator) -> fen the issuer owes
    journeys: list[Journey]
    collected: int  # fen the day's good debits took from cards
    findings: list[Anomaly]

    def csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["day", "issuer", "operator", "fen"])
        for (issuer, operator), fen in sorted(self.positions.items()):
            writer.writerow([self.day, issuer, operator, fen])
        return out.getvalue()


def _owner(terminal: str) -> str:
    kind = bytes.fromhex(terminal)[0]
    return {places.BUS: BUS_OPERATOR, places.TILL: TILL_OPERATOR}.get(kind, f"terminal {terminal}")


def settle(books: Books, network: MetroNetwork, day: str) -> Settlement:
    """Pair, split and total ``day`` (YYYY-MM-DD); its findings are noted in the books."""
    read = read_day(day, books.day_taps(day))
    splitter = Splitter(network)
    positions: dict[tuple[str, str], int] = defaultdict(int)
    for journey in read.journeys:
        for operator, fen in splitter.split(journey.origin, journey.destination, journey.fare).items():
            positions[(journey.issuer, operator)] += fen
    for row in read.others:
        positions[(row.issuer, _owner(row.terminal))] += row.amount
    books.note(read.findings)
    collected = sum(j.fare for j in read.journeys) + sum(row.amount for row in read.others)
    return Settlement(day, dict(positions), read.journeys, collected, books.anomalies(day))
