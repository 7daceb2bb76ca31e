"""``koala city replay``: a morning made once, its records in the outboxes, a saved file and
the stream, cleared as they come or later, the books agreeing with what the cards spent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from cli import main

DAY = ["--day", "2026-11-23"]


def koala(home: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["--home", str(home), *args])
    assert result.exit_code == 0, result.output
    return result.output


def replayed(home: Path, *args: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(koala(home, "city", "replay", *DAY, "--json", *args))
    return result


def test_a_morning_cleared_as_it_comes_and_again_from_its_saved_file(tmp_path):
    saved, chart = tmp_path / "day.jsonl", tmp_path / "day.png"
    morning = replayed(tmp_path / "home", "--riders", "20", "--clear", "--save", str(saved),
                       "--chart", str(chart))
    assert morning["taps"] == morning["records"] == morning["cleared"] == 40
    assert morning["lag"] == 0 and morning["refused"] == 0
    assert morning["books"]["cards"] == 20 and morning["books"]["anomalies"] == 0
    assert sum(minute["taps"] for minute in morning["minutes"]) == 40
    assert chart.read_bytes().startswith(b"\x89PNG")
    assert len(saved.read_bytes().splitlines()) == 40
    other = f"sqlite:///{tmp_path / 'other.db'}"
    assert "40 records: 40 booked" in koala(tmp_path / "home", "clearing", "run", "--file",
                                            str(saved), "--database", other)
    assert "0 records" in koala(tmp_path / "home", "clearing", "run", "--file", str(saved),
                                "--database", other), "what was read of the file is not again"
    settled = json.loads(koala(tmp_path / "home", "clearing", "settle", *DAY, "--json",
                               "--database", other))
    assert settled["collected_fen"] == morning["books"]["debits_fen"] == \
        sum(position["fen"] for position in settled["positions"])


def test_a_morning_on_the_stream_and_a_blacklisted_card_stopped_at_its_first_gate(nats_url,
                                                                                   tmp_path):
    home = tmp_path / "home"
    first = replayed(home, "--riders", "10", "--nats", nats_url)
    assert first["lag"] == 20 and first["cleared"] == 0, "records wait on the stream"
    koala(home, "clearing", "blacklist", "10000000000020000000", "--nats", nats_url, "--at",
          "2026-11-23T06:00")
    second = replayed(home, "--riders", "2", "--seed", "2", "--gate", "2", "--nats", nats_url,
                      "--clear")
    assert second["refused"] == 2, "refused at entry, and the blocked card at the exit"
    assert second["cleared"] == 20 + 2 and second["lag"] == 0
