"""$KOALA_HOME keeps bands safe: one process at a time, the right file, no damaged image."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from commands.home import Home
from wallet.errors import WalletError

REPO = Path(__file__).resolve().parents[2]


def koala(home: Path, *args: str, ok: bool = True) -> str:
    result = CliRunner().invoke(main, ["--home", str(home), *args])
    assert (result.exit_code == 0) == ok, result.output
    assert "Traceback" not in result.output
    return result.output


def test_taps_from_many_processes_on_one_band_lose_no_update(tmp_path):
    koala(tmp_path, "band", "create", "busy", "--at", "2026-11-23T07:00")
    koala(tmp_path, "tap", "load", "--band", "busy", "--amount", "50", "--at", "2026-11-23T07:10")
    taps = [subprocess.Popen([sys.executable, "-m", "cli", "--home", str(tmp_path), "tap", "bus",
                              "--band", "busy", "--route", str(route), "--at",
                              f"2026-11-23T08:{route:02d}", "--json"],
                             cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            for route in range(1, 7)]
    for process in taps:
        out, _ = process.communicate(timeout=60)
        assert process.returncode == 0, out.decode()
    history = json.loads(koala(tmp_path, "card", "history", "--band", "busy", "--json"))
    assert history["balance_fen"] == 5000 - 6 * 200
    assert [row["type"] for row in history["log"]].count("bus") == 6


def test_a_band_in_use_waits_then_says_who_holds_it(tmp_path):
    home = Home(tmp_path)
    koala(tmp_path, "band", "create", "held")
    with home.changing("held"), pytest.raises(WalletError, match="in use by another koala"), \
            Home(tmp_path).changing("held", wait=0.1):
        pass


def test_a_damaged_image_is_refused_and_left_as_it_is(tmp_path):
    koala(tmp_path, "band", "create", "dent")
    path = tmp_path / "bands" / "dent.band"
    document = json.loads(path.read_text())
    cell = next(iter(document["cells"]))
    value = document["cells"][cell]
    document["cells"][cell] = ("1" if value[0] != "1" else "2") + value[1:]
    damaged = json.dumps(document, separators=(",", ":"))
    path.write_text(damaged)
    out = koala(tmp_path, "tap", "bus", "--band", "dent", "--route", "1", ok=False)
    assert "damaged" in out and len(out.strip().splitlines()) == 1
    assert path.read_text() == damaged


def test_an_image_is_never_saved_under_another_bands_name(tmp_path):
    koala(tmp_path, "band", "create", "victim")
    koala(tmp_path, "band", "create", "thief")
    bands = tmp_path / "bands"
    victim = (bands / "victim.band").read_bytes()
    (bands / "k.band").write_bytes(victim)  # a crafted image: victim's, under another name
    out = koala(tmp_path, "tap", "gate", "--band", "k", "--station", "Xizhimen", "--direction", "in",
                ok=False)
    assert "holds the image of band 'victim'" in out
    assert (bands / "victim.band").read_bytes() == victim
