"""Issuer time of a full over-the-air issuance; prints a Markdown row for BENCHMARKS.md.

    .venv/bin/python -m bench.issuance [--rounds 7] [--bands 50]

A fresh band gets the operator's domain (INSTALL through the card manager,
PUT KEY of its diversified keys) and a personalised purse (INSTALL, STORE
DATA under SCP03 level 13). Issuer time is the wall time of the run minus
the time spent inside the band, so it is the host's share: key derivation,
secure-channel cryptography, building and checking APDUs.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from applets.gp.domain import ISD_AID
from applets.gp.keys import KeySet
from issuer import gp
from issuer.issuance import Domain, factory_keys, issue_purse
from issuer.products import TRANSIT
from reader.flow import run
from reader.transport import InProcessTransport
from wallet.band import Band

MASTER = KeySet(0x01, 3, bytes(range(16, 32)), bytes(range(32, 48)), bytes(range(48, 64)))
OPERATOR = Domain(bytes.fromhex("A00000015153504B4F414C4101"), gp.diversified(MASTER, "kdf3"))


class TimedBand:
    """The band, with the time spent inside it added up."""

    def __init__(self, band: Band) -> None:
        self.band, self.card_s = band, 0.0

    def power_on(self) -> None:
        self.band.power_on()

    def transmit(self, apdu: bytes) -> bytes:
        start = time.perf_counter()
        try:
            return self.band.transmit(apdu)
        finally:
            self.card_s += time.perf_counter() - start


def issuer_seconds(bands: int) -> float:
    samples = []
    for number in range(bands):
        band = TimedBand(Band.new(f"b{number}", random.Random(number).randbytes))
        serial = TRANSIT.issuer_id[:2] + number.to_bytes(8)
        data = TRANSIT.personalisation(serial, bytes.fromhex("20260101"),
                                       bytes.fromhex("20361231"))
        start = time.perf_counter()
        run(issue_purse(Domain(ISD_AID, factory_keys), OPERATOR, TRANSIT.aid, data,
                        random.Random(number).randbytes), InProcessTransport(band))
        samples.append(time.perf_counter() - start - band.card_s)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--bands", type=int, default=50)
    args = parser.parse_args()
    figure = statistics.median(issuer_seconds(args.bands) for _ in range(args.rounds))
    print(f"| full issuance (SSD, PUT KEY, INSTALL, STORE DATA), issuer time, median | ≤ 100 ms "
          f"| {figure * 1e3:.2f} ms |")


if __name__ == "__main__":
    main()
