"""Issuer time of a full over-the-air issuance order; prints Markdown rows for BENCHMARKS.md.

    .venv/bin/python -m bench.issuance [--rounds 5] [--bands 20] [--database URL]

Each fresh band gets an issuance order relayed to the end through the
issuer's own order service (``issuer.orders``) on PostgreSQL (a fresh
schema) with the encrypted key store: the operator's domain (INSTALL
through the card manager, PUT KEY of its KDF3 keys derived in the store)
and a personalised purse (INSTALL, STORE DATA under SCP03), every relayed
answer one database transaction that replays the session's log. Issuer time
is the wall time minus the time spent inside the band; HTTP is left out
(``bench.ota`` measures it for top-ups).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from common.relay import run_batch
from issuer.db import Band as BandRow
from issuer.db import make_engine, migrate, session_factory
from issuer.keys import StoreKeys
from issuer.keystore import EncryptedKeyStore, load_demo_keys
from issuer.orders import Orders
from issuer.products import TRANSIT
from reader import places
from reader.clock import system_clock
from wallet.band import Band

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def issuance(service: Orders, sessions_band: tuple[int, Band], number: int) -> tuple[float, int]:
    """One issuance order relayed to its end: (issuer seconds, APDUs)."""
    band_id, band = sessions_band
    start = time.perf_counter()
    in_band = 0.0
    order = service.issue(band_id, "transit", TRANSIT.serial(number),
                          f"bench-{number}")
    band.power_on()
    apdus = 0

    def transmit(command: bytes) -> bytes:
        nonlocal in_band, apdus
        inside = time.perf_counter()
        response = band.transmit(command)
        in_band += time.perf_counter() - inside
        apdus += 1
        return response

    step = service.open(order)
    while step.commands:
        step = service.answer(step.session_id, step.step, run_batch(transmit, step.commands))
    if step.state.value != "settled":
        raise SystemExit(f"issuance ended {step.state}")
    return time.perf_counter() - start - in_band, apdus


def round_(database: str, bands: int, first: int) -> tuple[list[float], int]:
    admin = make_engine(database)
    schema = f"koala_bench_{uuid.uuid4().hex[:10]}"
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(database).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        engine = make_engine(url.render_as_string(hide_password=False))
        migrate(engine)
        sessions = session_factory(engine)
        with tempfile.TemporaryDirectory() as home:
            store = EncryptedKeyStore(Path(home))
            load_demo_keys(store)
            service = Orders(sessions, StoreKeys(store), places.load_id(0x0A))
            samples, apdus = [], 0
            for number in range(first, first + bands):
                band = Band.new(f"b{number}")
                with sessions.begin() as session:
                    row = BandRow(cplc=f"{number:084X}", uid=band.uid.hex(), device_token_hash="-",
                                  created_at=system_clock())
                    session.add(row)
                    session.flush()
                    band_id = row.id
                seconds, apdus = issuance(service, (band_id, band), number)
                samples.append(seconds)
        engine.dispose()
        return samples, apdus
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--bands", type=int, default=20)
    parser.add_argument("--database", default=PG)
    args = parser.parse_args()
    medians, apdus = [], 0
    for number in range(args.rounds):
        samples, apdus = round_(args.database, args.bands, number * args.bands)
        medians.append(statistics.median(samples))
    print(f"| full issuance order ({apdus} relayed APDUs: SSD, PUT KEY, INSTALL, STORE DATA), "
          f"issuer time, median of {args.rounds} rounds x {args.bands} bands | ≤ 100 ms "
          f"| {statistics.median(medians) * 1e3:.1f} ms |")


if __name__ == "__main__":
    main()
