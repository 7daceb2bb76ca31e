"""Issue 19: clearing throughput from JetStream onto PostgreSQL with 1 and 2 workers, and
blacklist propagation to a subscribed gate; prints Markdown rows for BENCHMARKS.md.

    .venv/bin/python -m bench.clearing [--riders 5000] [--profile]

The morning is made once (real taps at real gates, records in outboxes), published to a
nats-server of its own, then cleared from the stream's start by 1, then 2 worker processes
(each run on a fresh consumer and a fresh PostgreSQL schema), timed from the first worker's
start to the last one's end less its idle wait: the workers' start-up is in the figure, most
of it in so short a run; ``bench.day`` measures the steady rate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import pstats
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from backoffice import stream
from backoffice.books import Books, engine_for
from backoffice.clearing import BATCH, Clearing
from city.riders import Gates, ride, riders
from reader.metro import MetroNetwork
from reader.outbox import outboxes

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
IDLE_S = 1.0
START, END = datetime(2026, 11, 23, 7, 0), datetime(2026, 11, 23, 9, 0)
NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def nats_server(store: Path) -> Iterator[str]:
    """A nats-server of the bench's own with JetStream in ``store``: its URL."""
    port = free_port()
    server = subprocess.Popen([NATS_SERVER, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd",
                               str(store)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        yield f"nats://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait()


def schema_url() -> tuple[str, str]:
    schema = f"koala_bench_{uuid.uuid4().hex[:8]}"
    with create_engine(PG).begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(PG).update_query_dict({"options": f"-csearch_path={schema}"})
    return schema, url.render_as_string(hide_password=False)


def drop(schema: str) -> None:
    with create_engine(PG).begin() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


async def publish(url: str, directory: Path) -> float:
    began = time.perf_counter()
    async with stream.connected(url) as js:
        for box in outboxes(directory):
            await stream.upload(js, box)
    return time.perf_counter() - began


async def fresh_consumer(url: str) -> None:
    async with stream.connected(url) as js:
        with contextlib.suppress(Exception):  # none yet
            await js.delete_consumer(stream.STREAM, stream.CONSUMER)


def clear(url: str, workers: int, lines: int) -> float:
    asyncio.run(fresh_consumer(url))
    schema, database = schema_url()
    engine_for(database).dispose()
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "cli", "--home", tempfile.mkdtemp(), "clearing", "run",
                    "--nats", url, "--database", database, "--workers", str(workers),
                    "--idle", str(IDLE_S)], check=True, capture_output=True)
    elapsed = time.perf_counter() - began - IDLE_S
    all_booked(database, schema, lines)
    return elapsed


def all_booked(database: str, schema: str, expected: int) -> None:
    """Check that the run booked every record, and drop its schema."""
    with create_engine(database).connect() as connection:
        booked = connection.scalar(text("SELECT count(*) FROM taps"))
    drop(schema)
    if booked != expected:
        raise SystemExit(f"{booked} booked of {expected}")


async def propagation(url: str, cards: int) -> list[float]:
    """Seconds from each report's put to the gate's watcher holding the card."""
    listed: set[bytes] = set()
    times: list[float] = []
    async with stream.connected(url) as js:
        ready, arrived = asyncio.Event(), asyncio.Event()
        watch = asyncio.create_task(stream.watch_blacklist(js, listed, ready,
                                                           seen=lambda _: arrived.set()))
        await ready.wait()
        for number in range(cards):
            arrived.clear()
            began = time.perf_counter()
            await stream.blacklist(js, f"1000{number:016d}", "20261123070000", "lost")
            await arrived.wait()
            times.append(time.perf_counter() - began)
        watch.cancel()
    return times


def profile(lines: list[bytes], shown: int = 18) -> None:
    """One worker's clearing of ``lines`` in process, in batches as from the stream, under
    cProfile, on a fresh schema; the top of the profile by cumulative time."""
    schema, database = schema_url()
    clearing = Clearing(Books(engine_for(database)))
    profiler = cProfile.Profile()
    profiler.enable()
    for start in range(0, len(lines), BATCH):
        chunk = lines[start:start + BATCH]
        clearing.clear(chunk, [True] * len(chunk))
    profiler.disable()
    drop(schema)
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(shown)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--riders", type=int, default=5000)
    parser.add_argument("--profile", action="store_true")
    options = parser.parse_args()
    network = MetroNetwork.load()
    with tempfile.TemporaryDirectory() as root:
        directory = Path(root) / "terminals"
        began = time.perf_counter()
        gates = Gates(network, directory)
        for rider in riders(network, options.riders, START, END):
            ride(gates, rider)
        made = time.perf_counter() - began
        lines = sum(len(list(box.entries())) for box in outboxes(directory))
        print(f"| riders' taps made at real gates (outbox fsynced per tap) | {lines / made:,.0f} taps/s |")
        with nats_server(Path(root) / "js") as url:
            rate = lines / asyncio.run(publish(url, directory))
            print(f"| records published to JetStream (acknowledged) | {rate:,.0f} records/s |")
            for workers in (1, 2):
                seconds = clear(url, workers, lines)
                print(f"| {lines:,} records cleared from JetStream onto PostgreSQL, {workers} worker(s) "
                      f"| {lines / seconds:,.0f} records/s ({lines / seconds / workers:,.0f} per worker) |")
            times = sorted(asyncio.run(propagation(url, 200)))
            print(f"| blacklist propagation, put to a gate's watcher (200 cards) | median "
                  f"{statistics.median(times) * 1000:.2f} ms, p99 {times[197] * 1000:.2f} ms |")
        if options.profile:
            profile([entry.line for box in outboxes(directory) for entry in box.entries()])


if __name__ == "__main__":
    main()
