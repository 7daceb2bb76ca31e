"""The band and the phone as two processes on Bluetooth controllers: Bumble's virtual
controllers app stands in for the radio, so the CLI's real-controller path runs end to end."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from commands.home import Home
from commands.local_issuer import local_issuer
from tests.support.command import koala_in
from tests.support.processes import REPO, free_port


def wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    import socket  # noqa: PLC0415

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert process.poll() is None, "the controllers app ended"
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port}")


def test_a_band_advertising_in_its_own_process_is_found_paired_and_read(tmp_path):
    koala = koala_in(tmp_path)
    koala("band", "create", "kim", "--cards", "transit,ecash", "--ecash-balance", "8")
    band_port, phone_port = free_port(), free_port()
    radio = subprocess.Popen([sys.executable, "-m", "bumble.apps.controllers",
                              f"tcp-server:_:{band_port}", f"tcp-server:_:{phone_port}"],
                             cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    band = None
    try:
        wait_for_port(band_port, radio)
        band = subprocess.Popen(
            [sys.executable, "-m", "cli", "--home", str(tmp_path), "band", "advertise", "kim",
             "--transport", f"tcp-client:127.0.0.1:{band_port}", "--yes"],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        phone = f"tcp-client:127.0.0.1:{phone_port}"
        assert "Koala" in koala("companion", "scan", "--transport", phone, "--timeout", "20")
        assert "paired with kim" in koala("companion", "pair", "--band", "kim", "--transport",
                                          phone, "--yes")
        cards = json.loads(koala("companion", "cards", "--band", "kim", "--transport", phone,
                                 "--json"))
        assert {c["card"]: c["balance_fen"] for c in cards} == {"transit": 0, "ecash": 800}
        with local_issuer(Home(tmp_path)):
            koala("band", "register", "kim")
            koala("band", "fund", "kim", "--amount", "30")
            assert "ecash balance ¥20.00" in koala(
                "companion", "topup", "--band", "kim", "--card", "ecash", "--amount", "12",
                "--transport", phone)
            assert "issued canteen" in koala("companion", "issue", "--band", "kim", "--product",
                                             "canteen", "--transport", phone)
    finally:
        if band is not None:
            band.send_signal(signal.SIGINT)
            output = band.communicate(timeout=20)[0].decode()
            assert output.count("(link)") == 1, "only pairing compared digits: then the bond"
        radio.terminate()
        radio.wait(10)
    home = Home(tmp_path)
    bond = home.phone_bond("kim")
    saved = home.load_band("kim")
    assert bond is not None and saved.bonds[bond.phone_id] == bond.key, \
        "both sides kept the pairing: the band in its image, the phone in its home"
    assert saved.balances() == {"transit": 0, "ecash": 2000, "canteen": 0}, \
        "the advertising band saved what the issuer did to it"
    assert "not paired" in koala("companion", "cards", "--band", "nobody", ok=False)
