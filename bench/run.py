"""Benchmarks of issue targets; prints a Markdown table for BENCHMARKS.md.

    .venv/bin/python bench/run.py [--rounds 7] [--taps 2000]

Figures are medians over rounds (shared, noisy machines): host time per
in-process metro exit tap (card + PSAM crypto, every APDU), the modelled air
time of that tap at each ISO 14443 bit rate, and the band image's size and
load / save times.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from issuer.products import CANTEEN, TRANSIT
from reader import places
from reader.clock import fixed
from reader.flow import run
from reader.gate import Direction, GateConfig, MetroGate
from reader.load import LoadKeys, LoadTerminal
from reader.metro import MetroNetwork
from reader.psam import Psam
from reader.timing import DEADLINE_TRANSIT_S, AirInterface, BitRate, model_tap
from reader.trace import Exchange
from reader.transport import in_field
from wallet.band import UID_SIZE, Band

START, EXPIRY = bytes.fromhex("20260101"), bytes.fromhex("20361231")


LOADER = LoadTerminal(places.load_id(), {TRANSIT.issuer_id: LoadKeys(TRANSIT.master.load,
                                                                    TRANSIT.master.tac)},
                      fixed(datetime(2026, 11, 23, 7, 0)))


def make_band() -> Band:
    band = Band.new("bench")
    for number, item in enumerate((TRANSIT, CANTEEN), start=1):
        serial = item.serial(number)
        band.add_purse(item.personalisation(serial, START, EXPIRY, "Bench"), item.aid)
    top_up(band)
    return band


def top_up(band: Band) -> None:
    with in_field(band) as link:
        run(LOADER.load(TRANSIT.max_balance - band.card("transit").balance), link)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, 8, 0)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def gates(network: MetroNetwork, clock: Clock) -> tuple[MetroGate, MetroGate]:
    keys = {TRANSIT.issuer_id: TRANSIT.master.purchase}
    entry_station, exit_station = network.find("Xizhimen"), network.find("Guomao")
    entry = MetroGate(Psam(places.gate_id(entry_station.code), keys), clock,
                      GateConfig(network, entry_station, Direction.ENTRY))
    exit_ = MetroGate(Psam(places.gate_id(exit_station.code), keys), clock,
                      GateConfig(network, exit_station, Direction.EXIT))
    return entry, exit_


def exit_tap_seconds(taps: int) -> tuple[float, list[Exchange]]:
    """Median host seconds of a metro exit tap, and the last exit's trace."""
    network = MetroNetwork.load()
    band, clock = make_band(), Clock()
    entry, exit_ = gates(network, clock)
    samples: list[float] = []
    trace: list[Exchange] = []
    for _ in range(taps):
        with in_field(band) as link:
            run(entry.tap(), link)
        entry.records.clear()
        with in_field(band) as link:
            start = time.perf_counter()
            run(exit_.tap(), link)
            samples.append(time.perf_counter() - start)
            trace = link.trace
        exit_.records.clear()
        if band.card("transit").balance < 1000:
            top_up(band)
    return statistics.median(samples), trace


def image_figures(rounds: int) -> tuple[int, float, float]:
    band = make_band()
    with tempfile.TemporaryDirectory() as root:
        path = Path(root) / "bench.band"
        saves, loads = [], []
        for _ in range(rounds * 20):
            start = time.perf_counter()
            band.save(path)
            saves.append(time.perf_counter() - start)
            start = time.perf_counter()
            Band.load(path)
            loads.append(time.perf_counter() - start)
        return path.stat().st_size, statistics.median(saves), statistics.median(loads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--taps", type=int, default=2000)
    args = parser.parse_args()
    medians: list[float] = []
    trace: list[Exchange] = []
    for _ in range(args.rounds):
        median, trace = exit_tap_seconds(args.taps)
        medians.append(median)
    tap_s = statistics.median(medians)
    size, save_s, load_s = image_figures(args.rounds)
    print("| figure | target | measured |")
    print("|---|---|---|")
    print(f"| in-process metro exit tap, host time (median of {args.rounds} rounds "
          f"x ≤{args.taps} taps) | ≤ 0.5 ms | {tap_s * 1e3:.3f} ms |")
    print(f"| in-process metro exit taps per second, one core | ≥ 2,000 | {1 / tap_s:,.0f} |")
    for rate in BitRate:
        air = AirInterface(bit_rate=rate, uid_length=UID_SIZE)
        timing = model_tap(trace, air, deadline_s=DEADLINE_TRANSIT_S)
        target = "≤ 150 ms" if rate == BitRate.KBPS_106 else "—"
        print(f"| modelled metro exit at {rate.value} kbit/s (activation + air + card) "
              f"| {target} | {timing.modelled_s * 1e3:.1f} ms |")
    print(f"| band image with transit + canteen cards, on disk | ≤ 16 KiB | {size:,} bytes |")
    print(f"| band image save (atomic, fsync), median | ≤ 5 ms | {save_s * 1e3:.2f} ms |")
    print(f"| band image load, median | ≤ 5 ms | {load_s * 1e3:.2f} ms |")


if __name__ == "__main__":
    main()
