"""The house's programs in processes of their own: the repository they run in, a free loopback
port, and `koala issuer serve` started and stopped around a test."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def issuer_serve(home: Path) -> Iterator[str]:
    """`koala issuer serve` for ``home`` in its own process, once it answers; its URL."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "cli", "--home", str(home), "issuer", "serve", "--port", str(port),
         "--operator-token", "op-token"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/v1/products", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the issuer did not start"
                time.sleep(0.1)
        yield url
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(10)
