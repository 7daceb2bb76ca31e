"""Issue 19: a 24 M-tap day cleared, projected from the steady rate at which 1 and 2 workers
clear a pre-generated slice of it from JetStream onto PostgreSQL, with the stream's lag over
time; prints Markdown for BENCHMARKS.md.

    .venv/bin/python -m bench.day [--riders 20000] [--day FILE] [--chart FILE.png] [--profile]

The slice is a morning made once by ``koala city replay --save`` (real taps at real gates)
and kept (by default in the temporary directory, named by riders and seed), so a rerun
clears the same records without making them again. It is published whole to a nats-server
of the bench's own, as a day's outboxes uploaded at once, then cleared from the stream's
start by ``koala clearing run --workers N`` on a fresh consumer and a fresh schema, while
the consumer's lag (records not yet acknowledged) is sampled. The rate is the lag's fall
between 10 % and 90 % of the slice cleared: the workers' start-up (Python, imports, the
first fetch) and the last partial batches are left out, as they are in a day-long run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from backoffice import stream
from backoffice.books import engine_for
from bench.clearing import all_booked, fresh_consumer, nats_server, profile, schema_url
from reader.outbox import document, entries

DAY_TAPS = 24_000_000
SAMPLE_S = 0.25
IDLE_S = 1.0
STEADY = (0.1, 0.9)  # the part of the slice whose clearing the rate is measured over


@dataclass(frozen=True, slots=True)
class Sample:
    seconds: float  # since the workers were started
    lag: int


def day_slice(path: Path | None, riders: int, seed: int) -> Path:
    """The saved slice, made by ``koala city replay --save`` if it is not there yet."""
    path = path or Path(tempfile.gettempdir()) / f"koala-day-{riders}-{seed}.jsonl"
    if path.exists():
        return path
    partial = path.with_suffix(".part")
    with tempfile.TemporaryDirectory() as home:
        subprocess.run([sys.executable, "-m", "cli", "--home", home, "city", "replay",
                        "--riders", str(riders), "--from", "07:00", "--to", "09:00",
                        "--day", "2026-11-23", "--seed", str(seed), "--save", str(partial)],
                       check=True, capture_output=True)
    partial.replace(path)
    return path


async def publish(url: str, lines: Sequence[bytes]) -> float:
    """Every line on its terminal's subject, a window at a time; the seconds it took."""
    by_terminal: dict[bytes, list[bytes]] = defaultdict(list)
    for data in lines:
        by_terminal[bytes.fromhex(document(data)["terminal_id"])].append(data)
    began = time.perf_counter()
    async with stream.connected(url) as js:
        for terminal, kept in by_terminal.items():
            for start in range(0, len(kept), stream.PUBLISH_WINDOW):
                await stream.publish(js, terminal, kept[start:start + stream.PUBLISH_WINDOW])
    return time.perf_counter() - began


async def watch(url: str, total: int, worker: subprocess.Popen[bytes]) -> list[Sample]:
    """The consumer's lag every :data:`SAMPLE_S` until it is nought (``total`` before the
    workers have made the consumer)."""
    samples: list[Sample] = []
    began = time.perf_counter()
    async with stream.connected(url) as js:
        while not samples or samples[-1].lag:
            if worker.poll() is not None:
                raise SystemExit(f"the workers ended with {worker.returncode}, lag "
                                 f"{samples[-1].lag if samples else total}")
            lag = total
            with contextlib.suppress(Exception):  # no consumer yet
                lag = await stream.pending(js)
            samples.append(Sample(time.perf_counter() - began, lag))
            await asyncio.sleep(SAMPLE_S)
    return samples


def clear(url: str, workers: int, total: int) -> list[Sample]:
    """The slice cleared by ``workers`` processes: the lag over time, every record booked."""
    asyncio.run(fresh_consumer(url))
    schema, database = schema_url()
    engine_for(database).dispose()
    worker = subprocess.Popen([sys.executable, "-m", "cli", "--home", tempfile.mkdtemp(),
                               "clearing", "run", "--nats", url, "--database", database,
                               "--workers", str(workers), "--idle", str(IDLE_S)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    samples = asyncio.run(watch(url, total, worker))
    _, errors = worker.communicate()
    if worker.returncode:
        raise SystemExit(errors.decode())
    all_booked(database, schema, total)
    return samples


def steady_rate(samples: Sequence[Sample], total: int) -> float:
    """Records a second between the first sample with :data:`STEADY`'s low part cleared and
    the last with no more than its high part."""
    low, high = (total * part for part in STEADY)
    first = next(s for s in samples if total - s.lag >= low)
    last = [s for s in samples if total - s.lag <= high][-1]
    if last.seconds <= first.seconds:
        raise SystemExit("the slice cleared too fast to measure: give it more --riders")
    return (first.lag - last.lag) / (last.seconds - first.seconds)


def lag_table(samples: Sequence[Sample], rows: int = 8) -> list[str]:
    """About ``rows`` samples evenly over the run, with the clearing rate since the one before."""
    step = max(1, len(samples) // rows)
    picked = [*samples[::step][:-1], samples[-1]] if len(samples) > step else list(samples)
    lines = ["| seconds | lag (records) | cleared since the row before |", "|---|---|---|"]
    before: Sample | None = None
    for sample in picked:
        rate = ("—" if before is None else
                f"{(before.lag - sample.lag) / (sample.seconds - before.seconds):,.0f} records/s")
        lines.append(f"| {sample.seconds:.1f} | {sample.lag:,} | {rate} |")
        before = sample
    return lines


def chart(runs: dict[int, list[Sample]], title: str, path: Path) -> None:
    from commands.plots import lag_plot  # noqa: PLC0415 - matplotlib only when drawing

    lag_plot({f"{workers} worker(s)": [(s.seconds, s.lag) for s in samples]
              for workers, samples in runs.items()}, title, path)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--riders", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--day", type=Path, help="the saved slice (made there if missing)")
    parser.add_argument("--chart", type=Path, help="draw the lag over time into this PNG")
    parser.add_argument("--profile", action="store_true")
    options = parser.parse_args()
    began = time.perf_counter()
    path = day_slice(options.day, options.riders, options.seed)
    made = time.perf_counter() - began
    lines = [entry.line for entry in entries(path)]
    total = len(lines)
    print(f"slice: {path}, {total:,} records ({made:.0f} s to get)\n")
    runs: dict[int, list[Sample]] = {}
    with tempfile.TemporaryDirectory() as root, nats_server(Path(root) / "js") as url:
        print(f"| {total:,} records published to JetStream (acknowledged) "
              f"| {total / asyncio.run(publish(url, lines)):,.0f} records/s |")
        for workers in (1, 2):
            samples = runs[workers] = clear(url, workers, total)
            rate = steady_rate(samples, total)
            print(f"| {workers} worker(s), steady rate ({STEADY[0]:.0%} to {STEADY[1]:.0%} of the "
                  f"slice) | {rate:,.0f} records/s ({rate / workers:,.0f} per worker); "
                  f"all {total:,} in {samples[-1].seconds:.1f} s "
                  f"| 24 M taps in {DAY_TAPS / rate / 3600:.2f} h |")
    for workers, samples in runs.items():
        print(f"\nlag over time, {workers} worker(s):\n")
        print("\n".join(lag_table(samples)))
    if options.chart is not None:
        chart(runs, f"{total:,} records from JetStream onto PostgreSQL", options.chart)
    if options.profile:
        profile(lines)


if __name__ == "__main__":
    main()
