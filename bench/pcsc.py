"""PC/SC benchmarks through pcscd and vpcd; prints Markdown rows for BENCHMARKS.md.

    .venv/bin/python bench/pcsc.py [--rounds 5] [--apdus 2000] [--taps 200]

Runs on a pcscd of its own where the machine allows (tests/fields.py), else on
the machine's, started when it is not running. Figures are
medians of per-round medians: one APDU round trip (SELECT of the transit
purse) with the bridge's delayed-ACK fix on and off, and a whole metro exit
tap through pyscard, pcscd and the band.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager

from bench.run import Clock, gates, make_band
from reader.flow import run
from reader.metro import MetroNetwork
from reader.pboc import select
from reader.pcsc import PcscReader, PcscTransport
from tests.fields import PCSCD_POLL_S, Pcscd, running_pcscd
from wallet.band import Band
from wallet.vpcd import VpcdBridge, VpcdCard


@contextmanager
def attached(pcscd: Pcscd, band: Band, quickack: bool) -> Iterator[PcscTransport]:
    bridge = VpcdBridge(VpcdCard(band), port=pcscd.port, quickack=quickack).start()
    card = PcscReader(pcscd.reader()).wait_for_card(15)
    try:
        yield card
    finally:
        card.disconnect()
        bridge.stop()
        time.sleep(2 * PCSCD_POLL_S)


def round_trip_s(pcscd: Pcscd, apdus: int, quickack: bool) -> float:
    command = select(bytes.fromhex("A000000632010105")).encode()
    with attached(pcscd, make_band(), quickack) as card:
        samples = []
        for _ in range(apdus):
            start = time.perf_counter()
            card.transmit(command)
            samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def exit_tap_s(pcscd: Pcscd, taps: int) -> float:
    band, clock = make_band(), Clock()
    entry, exit_ = gates(MetroNetwork.load(), clock)
    samples = []
    with attached(pcscd, band, quickack=True) as card:
        for _ in range(taps):
            run(entry.tap(), card)
            start = time.perf_counter()
            run(exit_.tap(), card)
            samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--apdus", type=int, default=2000)
    parser.add_argument("--taps", type=int, default=200)
    args = parser.parse_args()
    with running_pcscd() as pcscd:
        fast = statistics.median(round_trip_s(pcscd, args.apdus, True) for _ in range(args.rounds))
        slow = statistics.median(round_trip_s(pcscd, max(args.apdus // 40, 20), False)
                                 for _ in range(args.rounds))
        tap = statistics.median(exit_tap_s(pcscd, args.taps) for _ in range(args.rounds))
    print("| figure | target | measured |")
    print("|---|---|---|")
    print(f"| APDU round trip through pcscd + vpcd (SELECT, median) | ≤ 1 ms | {fast * 1e3:.3f} ms |")
    print(f"| the same with delayed ACKs left on at the bridge | — | {slow * 1e3:.1f} ms |")
    print(f"| metro exit tap through PC/SC, host time (median) | ≤ 10 ms | {tap * 1e3:.2f} ms |")


if __name__ == "__main__":
    main()
