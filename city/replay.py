"""A city's morning replayed: every rider's taps in time order through the gates, a minute of
the network's time at a time.

Each tap is a real transaction whose record is in its gate's outbox before the next rider
comes (:class:`city.riders.Gates`). At the end of each minute the minute's records are
appended to a saved day, if one is kept, and the touched outboxes are sent to the stream,
if there is one (as a station computer forwards its gates' records); with a clearing, what
has come is cleared as ``koala clearing run`` would. What each minute did is kept for the
report and the chart.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import groupby
from typing import Any, BinaryIO

from backoffice import stream
from backoffice.clearing import Clearing, Tally, clear_outboxes, clear_pending
from city.riders import Gates, Rider
from reader.gate import Direction
from reader.metro import Station
from reader.outbox import Outbox

PULL_TIMEOUT_S = 0.5  # how long clearing waits for a batch the consumer says it holds


@dataclass(frozen=True, slots=True)
class Tap:
    at: datetime
    rider: Rider
    station: Station
    direction: Direction


def timetable(riders: Iterable[Rider]) -> list[Tap]:
    """Every rider's entry and exit, in the order of their times (an exit is always minutes
    after its entry)."""
    taps = []
    for rider in riders:
        taps.append(Tap(rider.enters, rider, rider.origin, Direction.ENTRY))
        taps.append(Tap(rider.enters + timedelta(minutes=rider.minutes), rider,
                        rider.destination, Direction.EXIT))
    taps.sort(key=lambda tap: tap.at)
    return taps


@dataclass(frozen=True, slots=True)
class Minute:
    """One minute of the network's time: taps made, records cleared, records not yet cleared
    at its end (the stream's consumer lag, or the outboxes' lines not yet read)."""

    at: datetime
    taps: int
    cleared: int
    lag: int


@dataclass(slots=True)
class Outcome:
    minutes: list[Minute] = field(default_factory=list)
    records: int = 0
    refusals: list[str] = field(default_factory=list)
    seconds: float = 0.0  # wall time of the whole replay
    tally: Tally = field(default_factory=Tally)

    @property
    def taps(self) -> int:
        return sum(minute.taps for minute in self.minutes)

    @property
    def lag(self) -> int:
        return self.minutes[-1].lag if self.minutes else 0


async def replay(taps: Iterable[Tap], gates: Gates, save: BinaryIO | None = None,
                 js: Any = None, clearing: Clearing | None = None,
                 progress: Callable[[], None] | None = None) -> Outcome:
    """Make every tap, minute by minute; ``js`` a JetStream context (records sent there, and
    cleared from its consumer), else the clearing reads the outboxes."""
    outcome = Outcome()
    pull = None if js is None else await stream.subscription(js, ack_wait_s=30.0)
    began = time.perf_counter()
    for minute, group in groupby(taps, key=lambda tap: tap.at.replace(second=0, microsecond=0)):
        count = 0
        for tap in group:
            refused = gates.tap(tap.rider.band, tap.station, tap.direction, tap.at)
            if refused is not None:
                outcome.refusals.append(refused)
            count += 1
            if progress is not None:
                progress()
        written = gates.written()
        outcome.records += sum(map(len, written.values()))
        if save is not None:
            save.write(b"".join(line for lines in written.values() for line in lines))
        if js is not None:
            for terminal in written:
                await stream.upload(js, Outbox(gates.directory, terminal))
        cleared = Tally()
        if clearing is not None and pull is None:
            cleared = clear_outboxes(clearing, gates.directory)
        elif clearing is not None:
            while await stream.undelivered(js):  # a fetch from an empty consumer waits it out
                cleared.add(await clear_pending(clearing, pull, PULL_TIMEOUT_S, once=True))
        outcome.tally.add(cleared)
        lag = (max(0, outcome.records - outcome.tally.received) if js is None
               else await stream.pending(js))
        outcome.minutes.append(Minute(minute, count, cleared.received, lag))
    outcome.seconds = time.perf_counter() - began
    return outcome
