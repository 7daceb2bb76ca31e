"""`koala issuer serve` as its own process, and `koala companion topup` against it."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from click.testing import CliRunner

from applets.gp.cplc import cplc
from cli import main

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_band_topped_up_over_the_air_through_the_cli(tmp_path):
    runner = CliRunner()
    home = ["--home", str(tmp_path)]
    assert runner.invoke(main, [*home, "band", "create", "ota"]).exit_code == 0
    cards = json.loads(runner.invoke(main, [*home, "card", "list", "--band", "ota", "--json"]).output)
    serial = next(c["serial"] for c in cards if c["card"] == "transit")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "cli", *home, "issuer", "serve", "--port", str(port),
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
        operator = httpx.Client(base_url=url, headers={"Authorization": "Bearer op-token"})
        uid = bytes(7)
        band = operator.post("/v1/bands", json={"cplc": cplc(uid).hex(), "uid": uid.hex()}).json()
        operator.post(f"/v1/bands/{band['band_id']}/cards",
                      json={"product": "transit", "app_serial": serial})
        operator.post(f"/v1/bands/{band['band_id']}/funding", json={"amount": 10_000},
                      headers={"Idempotency-Key": "fund-ota-1"})
        result = runner.invoke(main, [*home, "companion", "topup", "--band", "ota",
                                      "--issuer", url, "--band-id", str(band["band_id"]),
                                      "--token", band["device_token"], "--amount", "25"])
        assert result.exit_code == 0, result.output
        assert "order settled" in result.output and "¥25.00" in result.output
        refused = runner.invoke(main, [*home, "companion", "topup", "--band", "ota", "--issuer", url,
                                       "--band-id", str(band["band_id"]), "--token", "wrong",
                                       "--amount", "5"])
        assert refused.exit_code == 1 and "not this band's" in refused.output
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(10)
    assert (tmp_path / "issuer" / "issuer.db").exists() and (tmp_path / "issuer" / "kek").exists()
