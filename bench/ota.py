"""Over-the-air top-ups per second through the issuer's HTTP API on PostgreSQL, and their cost.

    .venv/bin/python -m bench.ota [--bands 16] [--topups 30] [--rounds 3] [--workers 1,2]

The bench makes a database of its own on the server, migrates it and seeds it
with history (:mod:`bench.history`), then enrols its live bands through the API
(band, card, the rekey and register orders relayed by each band's companion,
funding) with one issuer process. Each round then starts a fresh ``koala
issuer serve`` (as deployed, its own process), warms it up with one top-up per
band, and measures: one load-generator thread per band, each a companion that
orders a top-up and relays its APDUs to its own in-process band (3 HTTP
requests a top-up: the order, which opens the relay session; SELECT and
INITIALIZE FOR LOAD, after which the issuer checks MAC1 and debits the funding
account; CREDIT FOR LOAD, whose TAC settles it).

Per measured top-up: the CPU of the load generator (this process, less its
/proc sampler), of the issuer's processes and of PostgreSQL's backends serving
the bench's database, and those backends' waits (round trips and the like) and
syscalls (:mod:`bench.backends`). Per top-up the issuer process served (warm-up
included, as the counters cover its whole life): PostgreSQL's transactions and
new connections (:mod:`bench.postgres`) and the issuer's own SQL counts
(:mod:`bench.serving`). The table is :mod:`bench.report`'s.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import Connection, Engine, text

from applets.gp.cplc import cplc
from bench import history
from bench.backends import Backends
from bench.postgres import backend_pids, counters, database_url, postmaster, scratch_database
from bench.report import Round, Setting, report
from bench.serving import TOKEN, cpu_seconds, serving, sql_counts
from issuer.db import make_engine, migrate
from issuer.products import TRANSIT
from phone.companion import Companion, IssuerClient, LocalBand
from wallet.band import Band

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
WARM_UP = 1  # top-ups per band before each round's measurement
Enrolled = tuple[Band, int, str, bytes]  # the band, its id, device token and transit serial


def enrol(url: str, number: int) -> Enrolled:
    """A new band with a transit card, registered, its orders relayed, and funded."""
    band = Band.new(f"bench{number}")
    serial = TRANSIT.serial(10_000_000 + number)
    band.add_purse(TRANSIT.personalisation(serial, bytes.fromhex("20260101"),
                                           bytes.fromhex("20361231")), TRANSIT.aid)
    operator = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"})
    made = operator.post("/v1/bands", json={"cplc": cplc(band.uid).hex(), "uid": band.uid.hex()})
    made.raise_for_status()
    band_id, token = made.json()["band_id"], made.json()["device_token"]
    operator.post(f"/v1/bands/{band_id}/cards", json={"product": "transit",
                                                        "app_serial": serial.hex()}).raise_for_status()
    client = IssuerClient(url, token)
    synced = Companion(LocalBand(band), band_id, client).sync()  # rekey, then register
    client.close()
    if any(order["state"] != "settled" for order in synced):
        raise RuntimeError(f"enrolment of band {band_id} ended {synced}")
    operator.post(f"/v1/bands/{band_id}/funding", json={"amount": 9_000_000},
                  headers={"Idempotency-Key": f"bench-fund-{number}"}).raise_for_status()
    operator.close()
    return band, band_id, token, serial


def drive(url: str, enrolled: list[Enrolled], topups: int) -> tuple[float, list[float]]:
    """``topups`` top-ups of 1 fen by each band's companion at once: top-ups per second and
    each one's latency."""
    latencies: list[float] = []
    lock = threading.Lock()

    def companion(band: Band, band_id: int, token: str, serial: bytes) -> None:
        client = IssuerClient(url, token)
        mine = []
        for _ in range(topups):
            start = time.perf_counter()
            result = Companion(LocalBand(band), band_id, client).topup(serial, 1)
            mine.append(time.perf_counter() - start)
            if result["state"] != "settled":
                raise RuntimeError(f"top-up ended {result['state']}")
        client.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=companion, args=e) for e in enrolled]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    if len(latencies) != len(enrolled) * topups:
        raise RuntimeError("a companion failed: see its traceback above")
    return len(latencies) / elapsed, latencies


def measure(admin: Connection, url: str, name: str, enrolled: list[Enrolled], workers: int,
            topups: int) -> Round:
    """One round on database ``name`` (at ``url``): a fresh issuer, warmed up, then ``topups``
    top-ups per band measured."""
    served = len(enrolled) * (WARM_UP + topups)
    before = counters(admin, name)
    with tempfile.TemporaryDirectory() as directory:
        with serving(url, workers, Path(directory)) as issuer:
            drive(issuer.url, enrolled, WARM_UP)
            with Backends(postmaster(admin), name) as backends:
                start = time.process_time(), cpu_seconds(issuer.pids)
                rate, latencies = drive(issuer.url, enrolled, topups)
                end = time.process_time(), cpu_seconds(issuer.pids)
                backends.sample(backend_pids(admin, name))
        counted = sql_counts(Path(directory))
    after, used, n = counters(admin, name), backends.total, len(latencies)
    return Round(rate=rate, latencies=latencies,
                 client=(end[0] - start[0] - backends.overhead) / n, issuer=(end[1] - start[1]) / n,
                 postgres=used.cpu / n, waits=used.waits / n, reads=used.reads / n, writes=used.writes / n,
                 transactions=(after.transactions - before.transactions) / served,
                 sessions=(after.sessions - before.sessions) / served,
                 sql=None if counted is None else {k: v / served for k, v in counted.items()},
                 ended=backends.ended)


@contextmanager
def disposing(engine: Engine) -> Iterator[Engine]:
    """The engine, its connections closed at the end: the bench's database must have no
    backend but the issuer's while it counts."""
    try:
        yield engine
    finally:
        engine.dispose()


def balanced(url: str) -> None:
    with disposing(make_engine(url)) as engine, engine.connect() as connection:
        history.check_balanced(connection)


def workers_list(value: str) -> list[int]:
    try:
        counts = [int(part) for part in value.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of worker counts: {value!r}") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("worker counts are at least 1")
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bands", type=int, default=16, help="live bands, one companion each")
    parser.add_argument("--topups", type=int, default=30, help="measured top-ups per band and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per worker count (medians)")
    parser.add_argument("--workers", type=workers_list, default=[1, 2],
                        help="issuer worker counts to run, comma-separated (default 1,2)")
    parser.add_argument("--server", default=PG,
                        help="PostgreSQL on this machine; the bench makes and drops its own database")
    parser.add_argument("--history-bands", type=int, default=10_000,
                        help="bands in the seeded history, each with an active transit card")
    parser.add_argument("--history-topups", type=int, default=200_000,
                        help="past settled top-ups in the seeded history")
    args = parser.parse_args()
    with scratch_database(args.server) as (name, admin):
        url = database_url(args.server, name)
        started = time.perf_counter()
        migrate(url)
        with disposing(make_engine(url)) as engine:
            history.seed(engine, args.history_bands, args.history_topups, datetime.now(UTC))
        balanced(url)
        seeded = time.perf_counter() - started
        with serving(url, 1) as issuer:
            enrolled = [enrol(issuer.url, n) for n in range(args.bands)]
        results = [Setting(workers, [measure(admin, url, name, enrolled, workers, args.topups)
                                     for _ in range(args.rounds)]) for workers in args.workers]
        balanced(url)
        version = admin.execute(text("SHOW server_version")).scalar_one()
    print(f"PostgreSQL {version}, database {name}: history of {args.history_bands:,} bands and "
          f"{args.history_topups:,} top-ups seeded in {seeded:.1f} s; {args.bands} live bands x "
          f"{args.topups} top-ups x {args.rounds} rounds; the ledger balances before and after.\n")
    report(results)


if __name__ == "__main__":
    main()
