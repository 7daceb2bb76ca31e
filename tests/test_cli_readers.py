"""The koala command with real readers: a band attached to pcscd, a band emulated over nfcpy."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from click.testing import CliRunner

from cli import main
from commands.home import Home
from reader.pcsc import PcscReader
from tests.fields import PCSCD_POLL_S
from tests.support import tshark

READER = "Virtual PCD 00 00"
REPO = Path(__file__).resolve().parent.parent


def koala(home: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["--home", str(home), *args])
    assert result.exit_code == 0, result.output
    return result.output


@contextmanager
def background(home: Path, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen([sys.executable, "-m", "cli", "--home", str(home), *args],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(10)


def test_attach_a_band_and_ride_through_pcscd(pcscd, tmp_path):
    koala(tmp_path, "band", "create", "alice", "--at", "2026-11-23T07:00")
    koala(tmp_path, "tap", "load", "--band", "alice", "--amount", "20", "--at", "2026-11-23T07:30")
    with background(tmp_path, "band", "attach", "alice") as attach:
        deadline = time.monotonic() + 15
        while not PcscReader(READER).card_present():
            assert time.monotonic() < deadline, "pcscd never saw the band"
            time.sleep(0.05)
        readers = json.loads(koala(tmp_path, "pcsc", "readers", "--json"))
        assert readers[0]["atr"] == "3B8580014B4F414C414C"
        koala(tmp_path, "tap", "gate", "--reader", READER, "--station", "Xizhimen",
              "--direction", "in", "--at", "2026-11-23T08:00")
        trace = tmp_path / "exit.pcapng"
        said = koala(tmp_path, "tap", "gate", "--reader", "0", "--station", "Guomao",
                     "--direction", "out", "--at", "2026-11-23T08:30", "--json",
                     "--trace-file", str(trace))
        assert said.startswith("air trace: ")  # on stderr, before the document
        out = json.loads(said[said.index("{"):])
        assert out["accepted"] and out["fare_fen"] == 500
        assert out["timing"]["host_ms"] < 100
        # the reader's card on the air: the UID the reader reports, the ATR's historical bytes
        uid = tshark.uid(trace)
        assert bytes.fromhex(uid) == Home(tmp_path).load_band("alice").uid
        assert "Historical bytes: 4b4f414c41" in tshark.run(trace, "-V")  # KOALA
        assert tshark.malformed(trace) == "" and tshark.expert(trace) == ""
    assert attach.returncode == 0
    time.sleep(2 * PCSCD_POLL_S)
    cards = json.loads(koala(tmp_path, "card", "list", "--band", "alice", "--json"))
    assert next(c for c in cards if c["card"] == "transit")["balance_fen"] == 1500, \
        "the attached band saved every change to its image"


def test_emulate_a_band_and_tap_over_nfc(tmp_path):
    koala(tmp_path, "band", "create", "bob")
    koala(tmp_path, "tap", "load", "--band", "bob", "--amount", "5")
    path = "udp:localhost:54399"
    with background(tmp_path, "band", "emulate", "bob", "--nfc", path):
        time.sleep(1.0)  # the emulator binds its port
        trace = tmp_path / "bus.pcapng"
        said = koala(tmp_path, "tap", "bus", "--nfc", path, "--route", "7", "--json",
                     "--trace-file", str(trace))
        out = json.loads(said[said.index("{"):])
        assert out["accepted"] and out["balance_fen"] == 300
        uid = tshark.uid(trace)
        assert bytes.fromhex(uid) == Home(tmp_path).load_band("bob").uid
        assert tshark.malformed(trace) == "" and tshark.expert(trace) == ""
    cards = json.loads(koala(tmp_path, "card", "list", "--band", "bob", "--json"))
    assert next(c for c in cards if c["card"] == "transit")["balance_fen"] == 300


def test_a_tap_needs_exactly_one_card_source(tmp_path):
    result = CliRunner().invoke(main, ["--home", str(tmp_path), "tap", "bus", "--route", "1"])
    assert result.exit_code == 2 and "exactly one of --band, --reader and --nfc" in result.output
