"""``koala issuer serve`` as its own process, as deployed, and the SQL counts it leaves.

The counts contract with the issuer: with ``KOALA_SQL_COUNTS`` naming a
directory, each worker process writes ``<dir>/<pid>.json`` at shutdown,
``{"statements": int, "transactions": int, "round_trips": int}``. They cover
the process's whole life, so the bench starts a fresh issuer for each measured
phase and divides by every top-up that issuer served. An issuer without the
counters writes nothing: :func:`sql_counts` is then None, shown as n/a.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.backends import stat_fields

REPO = Path(__file__).resolve().parent.parent
TOKEN = "bench"
COUNTS = ("statements", "transactions", "round_trips")


@dataclass(frozen=True, slots=True)
class Issuer:
    url: str
    pids: list[int]  # the server process and its workers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def process_tree(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *map(int, children)]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of the processes so far (ended ones count nothing)."""
    total = 0
    for pid in pids:
        try:
            fields = stat_fields(pid)
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def settle(pids: list[int], timeout: float = 60.0) -> None:
    """Wait until the processes are idle (workers done importing and starting up)."""
    deadline, last = time.monotonic() + timeout, cpu_seconds(pids)
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = cpu_seconds(pids)
        if now - last < 0.02:
            return
        last = now


@contextmanager
def serving(database: str, workers: int, counts: Path | None = None) -> Iterator[Issuer]:
    """The issuer on ``database`` with ``workers`` workers, started and idle; stopped (SIGINT,
    as an operator would) at the end, so that its workers write their counts."""
    port = free_port()
    env = {**os.environ, **({"KOALA_SQL_COUNTS": str(counts)} if counts else {})}
    with tempfile.TemporaryDirectory() as home:
        server = subprocess.Popen(
            [sys.executable, "-m", "cli", "--home", home, "issuer", "serve", "--port", str(port),
             "--operator-token", TOKEN, "--workers", str(workers), "--database", database],
            cwd=REPO, stdout=subprocess.DEVNULL, env={**env, "KOALA_HOME": home})
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(600):
                if server.poll() is not None:
                    raise RuntimeError(f"the issuer exited with status {server.returncode}")
                try:
                    httpx.get(f"{url}/v1/products", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            while workers > 1 and len(process_tree(server.pid)) < workers + 1:
                time.sleep(0.1)
            pids = process_tree(server.pid)
            settle(pids)
            yield Issuer(url, pids)
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(30)


def sql_counts(directory: Path) -> dict[str, int] | None:
    """The sum of the workers' counts in ``directory``; None when the issuer wrote none."""
    files = sorted(directory.glob("*.json"))
    if not files:
        return None
    total = dict.fromkeys(COUNTS, 0)
    for file in files:
        counted = json.loads(file.read_text())
        for name in COUNTS:
            total[name] += int(counted[name])
    return total
