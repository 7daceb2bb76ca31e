"""Over-the-air top-ups per second through the issuer's HTTP API on PostgreSQL.

    .venv/bin/python -m bench.ota [--bands 16] [--topups 20] [--rounds 3] [--database URL]

A load generator on loopback: one thread per band, each a companion that
orders a top-up and relays its APDUs to its own in-process band (3 HTTP
requests a top-up: the order, which opens the relay session; the batch of
SELECT and INITIALIZE FOR LOAD, after which the issuer checks MAC1 and
debits the funding account; CREDIT FOR LOAD, whose TAC settles it). The issuer runs as its own
process (``koala issuer serve``) on a fresh PostgreSQL schema. Prints the
throughput and the latency percentiles of whole top-ups.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url

from applets.gp.cplc import cplc
from issuer.db import make_engine
from issuer.products import TRANSIT
from phone.companion import Companion, IssuerClient, LocalBand
from wallet.band import Band

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REPO = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of processes so far (from /proc: Linux only)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def server_pids(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *map(int, children)]


def postgres_pids() -> list[int]:
    return [int(p.parent.name) for p in Path("/proc").glob("[0-9]*/comm")
            if p.read_text().strip().startswith("postgres")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def enrol(url: str, number: int) -> tuple[Band, int, str, bytes]:
    band = Band.new(f"bench{number}")
    serial = TRANSIT.serial(10_000_000 + number)
    band.add_purse(TRANSIT.personalisation(serial, bytes.fromhex("20260101"),
                                           bytes.fromhex("20361231")), TRANSIT.aid)
    operator = httpx.Client(base_url=url, headers={"Authorization": "Bearer bench"})
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
    return band, band_id, token, serial


def run(url: str, bands: int, topups: int) -> tuple[float, list[float]]:
    enrolled = [enrol(url, n) for n in range(bands)]
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
    return len(latencies) / elapsed, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bands", type=int, default=16)
    parser.add_argument("--topups", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database", default=PG)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    admin = make_engine(args.database)
    rates, all_latencies, cpu = [], [], []
    for _ in range(args.rounds):
        schema = f"koala_bench_{uuid.uuid4().hex[:10]}"
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        db = make_url(args.database).update_query_dict({"options": f"-csearch_path={schema}"})
        port = free_port()
        with tempfile.TemporaryDirectory() as home:
            server = subprocess.Popen(  # the issuer as its own process, as deployed
                [sys.executable, "-m", "cli", "--home", home, "issuer", "serve", "--port", str(port),
                 "--operator-token", "bench", "--workers", str(args.workers), "--database",
                 db.render_as_string(hide_password=False)],
                cwd=REPO, stdout=subprocess.DEVNULL, env={**os.environ, "KOALA_HOME": home})
            url = f"http://127.0.0.1:{port}"
            try:
                for _ in range(300):
                    try:
                        httpx.get(f"{url}/v1/products", timeout=1)
                        break
                    except httpx.HTTPError:
                        time.sleep(0.1)
                pids = server_pids(server.pid)
                before = time.process_time(), cpu_seconds(pids), cpu_seconds(postgres_pids())
                rate, latencies = run(url, args.bands, args.topups)
                after = time.process_time(), cpu_seconds(pids), cpu_seconds(postgres_pids())
                rates.append(rate)
                all_latencies.extend(latencies)
                cpu.append([(b - a) / len(latencies) for a, b in zip(before, after, strict=True)])
            finally:
                server.send_signal(signal.SIGINT)
                server.wait(20)
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    cuts = statistics.quantiles(all_latencies, n=100)
    print("| figure | target | measured |")
    print("|---|---|---|")
    print(f"| completed OTA top-ups per second, PostgreSQL, {args.bands} companions "
          f"(median of {args.rounds} rounds) | ≥ 1,000 | {statistics.median(rates):,.0f} |")
    print(f"| top-up latency p50 / p99 (3 HTTP requests each), {args.workers} server worker(s) "
          f"| p99 < 50 ms "
          f"| {cuts[49] * 1e3:.1f} ms / {cuts[98] * 1e3:.1f} ms |")
    client, issuer, database = (statistics.median(column) * 1e3 for column in zip(*cpu, strict=True))
    print(f"| CPU per top-up: load generator (companions and bands) / issuer / PostgreSQL | — "
          f"| {client:.1f} ms / {issuer:.1f} ms / {database:.1f} ms |")
    print(f"| ceiling on 2 cores at that CPU cost | — "
          f"| {2 / ((client + issuer + database) / 1e3):,.0f} top-ups/s |")


if __name__ == "__main__":
    main()
