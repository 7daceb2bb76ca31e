"""Over JetStream: several gates' uploads and two clearing workers, one of each killed with
SIGKILL mid-stream and restarted; every record booked exactly once, every card agrees with
the books to the fen and the split adds up. A lost band stops at the next gate as soon as
its blacklisting reaches the gates' bucket, and its application is blocked."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from backoffice import stream
from backoffice.books import Books, engine_for, taps
from backoffice.settlement import settle
from city.riders import Gates, riders
from reader.gate import Direction
from reader.outbox import outboxes
from tests.support.morning import DAY, END, NETWORK, START, morning

KOALA = [sys.executable, "-m", "cli"]


def koala(home: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*KOALA, "--home", str(home), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=Path(__file__).resolve().parents[2])


def booked(books: Books) -> int:
    with books.engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(taps)) or 0)


def wait_for(condition, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_killed_gates_and_workers_book_every_record_exactly_once(nats_url, books_url, tmp_path):
    homes = [tmp_path / f"station{n}" for n in (1, 2, 3)]
    spent: dict[str, int] = {}
    for number, home in enumerate(homes, 1):
        spent |= morning(home / "terminals", 250 if number == 1 else 60, seed=10 + number,
                         gate_number=number)
    lines = sum(len(list(box.entries())) for home in homes for box in outboxes(home / "terminals"))
    books = Books(engine_for(books_url))
    uploads = [koala(home, "clearing", "upload", "--nats", nats_url) for home in homes]
    worker_args = ("clearing", "run", "--nats", nats_url, "--database", books_url, "--idle", "4",
                   "--ack-wait", "2")
    workers = [koala(homes[0], *worker_args) for _ in range(2)]
    wait_for(lambda: any(box._sent_path.exists() for box in outboxes(homes[0] / "terminals")))
    os.kill(uploads[0].pid, signal.SIGKILL)  # a gate dies mid-upload
    wait_for(lambda: booked(books) > 0)
    os.kill(workers[0].pid, signal.SIGKILL)  # a worker dies mid-stream, its batch unacknowledged
    uploads[0].wait()
    workers[0].wait()
    uploads.append(koala(homes[0], "clearing", "upload", "--nats", nats_url))  # the gate is back
    workers.append(koala(homes[0], *worker_args))  # and the worker
    for process in [*uploads[1:], *workers[1:]]:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err.decode()
    assert booked(books) == lines
    assert {s: fen for s, (fen, _) in books.totals().items() if fen} == \
        {s: fen for s, fen in spent.items() if fen}
    day = settle(books, NETWORK, DAY)
    assert sum(day.positions.values()) == day.collected == sum(spent.values())


def test_a_lost_band_is_refused_within_one_stream_round_trip_of_its_report(nats_url, tmp_path):
    """The desk reports the card on one connection; the gate, on its own, watches the bucket.
    The card reaches the gate within one round trip of the report's own (the report's put and
    its acknowledgement, or the gate's request and answer, whichever is longer) once the
    report is acknowledged, give or take one more (JetStream sends the watch after the
    acknowledgement, and now and then after a following round trip: about one run in twenty).
    The gate waits for it (no sleep), and the rider's next tap is refused and blocks the card."""
    rider = next(riders(NETWORK, 1, START, END, seed=99))
    listed: set[bytes] = set()
    gates = Gates(NETWORK, tmp_path, blacklist=listed)
    serial = rider.serial.hex().upper()
    seen: dict[str, float] = {}

    async def report() -> tuple[float, float, float]:
        async with stream.connected(nats_url) as gate, stream.connected(nats_url) as desk:
            ready, arrived = asyncio.Event(), asyncio.Event()

            def heard(key: str) -> None:
                seen.setdefault(key, time.perf_counter())
                arrived.set()

            watch = asyncio.create_task(stream.watch_blacklist(gate, listed, ready, heard))
            await asyncio.wait_for(ready.wait(), 5)
            began = time.perf_counter()
            await stream.blacklist(desk, serial, "20261123070000", "lost")
            acknowledged = time.perf_counter()
            await stream.round_trip(gate)
            round_trip = time.perf_counter() - acknowledged
            await asyncio.wait_for(arrived.wait(), 5)
            watch.cancel()
            return seen[serial] - began, acknowledged - began, round_trip

    assert gates.tap(rider.band, rider.origin, Direction.ENTRY, START) is None
    delivered, reported, round_trip = asyncio.run(report())
    assert delivered <= reported + 2 * max(reported, round_trip), (
        f"the report acknowledged in {reported * 1000:.2f} ms, the gate's round trip "
        f"{round_trip * 1000:.2f} ms, the card at the gate only after {delivered * 1000:.2f} ms")
    assert rider.serial in listed
    refusal = gates.tap(rider.band, rider.destination, Direction.EXIT, END)
    assert refusal is not None and "reported lost" in refusal
    refusal = gates.tap(rider.band, rider.origin, Direction.ENTRY, END)
    assert refusal is not None and "blocked by its issuer" in refusal, "the card itself refuses now"


def test_a_found_card_leaves_the_bucket_and_every_watching_gate(nats_url):
    serial = "10000000000090000001"
    listed: set[bytes] = set()

    async def report_then_find() -> tuple[set[bytes], set[bytes], set[bytes]]:
        async with stream.connected(nats_url) as gate, stream.connected(nats_url) as desk:
            ready, changed = asyncio.Event(), asyncio.Event()
            watch = asyncio.create_task(stream.watch_blacklist(gate, listed, ready,
                                                               lambda _: changed.set()))
            await asyncio.wait_for(ready.wait(), 5)
            await stream.blacklist(desk, serial, "20261123070000", "lost")
            await asyncio.wait_for(changed.wait(), 5)
            reported = set(listed)
            changed.clear()
            await stream.unblacklist(desk, serial)
            await asyncio.wait_for(changed.wait(), 5)
            watch.cancel()
            return reported, set(listed), await stream.listed(desk)

    reported, watched, bucket = asyncio.run(report_then_find())
    card = bytes.fromhex(serial)
    assert card in reported and card not in watched and card not in bucket
