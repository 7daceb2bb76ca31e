"""A small morning for the back office's tests: riders through real gates, their records in
the gates' outboxes, and what each card holds at the end."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from city.riders import OPENING_FEN, Gates, ride, riders
from reader.metro import MetroNetwork

NETWORK = MetroNetwork.load()
START, END = datetime(2026, 11, 23, 7, 0), datetime(2026, 11, 23, 9, 0)
DAY = "2026-11-23"


def morning(directory: Path, count: int, seed: int = 1, gate_number: int = 1) -> dict[str, int]:
    """``count`` riders' taps into ``directory``; each card's serial → the fen it spent."""
    gates = Gates(NETWORK, directory, gate_number)
    spent = {}
    for rider in sorted(riders(NETWORK, count, START, END, seed), key=lambda r: r.enters):
        ride(gates, rider)
        spent[rider.serial.hex().upper()] = OPENING_FEN - rider.band.cards()[0].balance
    return spent
