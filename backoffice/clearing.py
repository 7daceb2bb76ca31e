"""The clearing run: batches of the terminals' lines checked and booked, from the outboxes on
disk or from the stream's shared pull consumer.

Either way a batch is checked (:func:`backoffice.proof.verify`) and booked in one
transaction with how far it read (the outboxes' offsets), or acknowledged to the stream
only after it is booked: a worker killed at any point leaves each record booked once, by
itself or by whichever worker gets it again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backoffice import stream
from backoffice.books import Books
from backoffice.members import CardKeys
from backoffice.proof import verify
from reader.outbox import Entry, entries, outboxes

BATCH = 2000


@dataclass(slots=True)
class Tally:
    """What a clearing run did, summed over its batches."""

    received: int = 0
    booked: int = 0
    duplicates: int = 0
    replays: int = 0
    forged: int = 0
    listed: int = 0
    conflicts: int = 0
    findings: int = 0

    def add(self, other: Tally) -> None:
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


class Clearing:
    def __init__(self, books: Books, keys: CardKeys | None = None) -> None:
        self.books = books
        self.keys = keys or CardKeys()

    def clear(self, lines: Sequence[bytes], fresh: Sequence[bool],
              offsets: dict[str, int] | None = None) -> Tally:
        """Check and book one batch; ``fresh`` says which lines come for the first time."""
        checked = verify(lines, self.keys, self.books.listed())
        first = {(row["serial"], row["kind"], row["counter"])
                 for row, origin in zip(checked.rows, checked.origins, strict=True) if fresh[origin]}
        booking = self.books.book(checked.rows, checked.findings, first, offsets)
        return Tally(len(lines), booking.booked, booking.duplicates, len(booking.replays),
                     checked.forged, checked.listed, len(booking.conflicts),
                     len(checked.findings) + len(booking.replays) + len(booking.conflicts))


def clear_outboxes(clearing: Clearing, directory: Path,
                   progress: Callable[[int], None] | None = None) -> Tally:
    """Clear what every outbox in ``directory`` holds beyond what was cleared before."""
    return clear_files(clearing, [box.path for box in outboxes(directory)], progress)


def clear_files(clearing: Clearing, paths: Sequence[Path],
                progress: Callable[[int], None] | None = None) -> Tally:
    """Clear what each file of outbox lines (an outbox, a saved day) holds beyond what was
    cleared of it before: the books keep how far they read each, by its path."""
    tally = Tally()
    read = clearing.books.offsets()
    for path in paths:
        name = str(path.resolve())
        batch: list[Entry] = []
        for entry in entries(path, read.get(name, 0)):
            batch.append(entry)
            if len(batch) == BATCH:
                tally.add(_clear_entries(clearing, name, batch, progress))
                batch = []
        if batch:
            tally.add(_clear_entries(clearing, name, batch, progress))
    return tally


def _clear_entries(clearing: Clearing, name: str, batch: list[Entry],
                   progress: Callable[[int], None] | None) -> Tally:
    done = clearing.clear([entry.line for entry in batch], [True] * len(batch),
                          {name: batch[-1].end})
    if progress is not None:
        progress(len(batch))
    return done


async def clear_stream(clearing: Clearing, url: str, idle_s: float, ack_wait_s: float = 30.0,
                       batch: int = BATCH, progress: Callable[[int], None] | None = None) -> Tally:
    """Clear from the shared pull consumer until nothing has come for ``idle_s`` seconds."""
    tally = Tally()
    async with stream.connected(url) as js:
        pull = await stream.subscription(js, ack_wait_s)
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < idle_s:
            done = await clear_pending(clearing, pull, min(1.0, idle_s), batch, progress)
            if done.received:
                tally.add(done)
                quiet_since = time.monotonic()
    return tally


async def clear_pending(clearing: Clearing, pull: Any, timeout_s: float, batch: int = BATCH,
                        progress: Callable[[int], None] | None = None, once: bool = False) -> Tally:
    """Clear batches from the pull consumer until one does not come within ``timeout_s``
    (``once``: one batch at most); each is acknowledged once booked.

    Booking runs in a thread, so the connection keeps up its heartbeats and the next batch
    is fetched while this one is checked and booked (the event loop was idle for a sixth
    of a worker's time waiting for it, BENCHMARKS.md); a batch fetched and not booked, the
    worker killed, is redelivered after the consumer's ack wait like any other."""
    tally = Tally()
    delivery = await stream.fetch(pull, batch, timeout_s)
    while delivery is not None:
        following = None if once else asyncio.create_task(stream.fetch(pull, batch, timeout_s))
        try:
            done = await asyncio.to_thread(clearing.clear, delivery.lines, delivery.fresh)
            await delivery.acknowledge()
        except BaseException:
            if following is not None:
                following.cancel()
            raise
        tally.add(done)
        if progress is not None:
            progress(len(delivery.lines))
        delivery = None if following is None else await following
    return tally
