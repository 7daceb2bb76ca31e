"""At 80 columns no identifier is cut: card numbers, AIDs, the PAN, every APDU of a trace and
the GP registry's AIDs fold onto more lines, and read back whole down their column."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cli import main


def columns(output: str) -> list[str]:
    """Each table column's cells read top to bottom, joined: what a folded value reads as."""
    rows = [line.strip()[1:-1].split("│") for line in output.splitlines()
            if line.strip().startswith("│")]
    width = max(map(len, rows))
    return ["".join(row[i].strip() for row in rows if len(row) == width) for i in range(width)]


@pytest.fixture
def narrow(tmp_path):
    runner = CliRunner()

    def invoke(*args: str) -> str:
        result = runner.invoke(main, ["--home", str(tmp_path), *args], env={"COLUMNS": "80"})
        assert result.exit_code == 0, result.output
        return result.stdout

    invoke("band", "create", "wide", "--cards", "transit,canteen,ecash,access")
    invoke("tap", "load", "--band", "wide", "--amount", "20")
    return invoke


def test_the_card_list_keeps_every_aid_and_number_whole(narrow):
    cards = json.loads(narrow("card", "list", "--band", "wide", "--json"))
    table = narrow("card", "list", "--band", "wide")
    assert "…" not in table
    aids, numbers = columns(table)[1:3]
    for card in cards:
        assert card["aid"] in aids and card["number"] in numbers, card
    assert any(len(card["number"]) == 16 and card["number"].isdigit() for card in cards), \
        "the e-cash PAN, whole"


def test_a_trace_keeps_every_apdu_whole(narrow):
    document = json.loads(narrow("tap", "bus", "--band", "wide", "--route", "1", "--json"))
    table = narrow("tap", "bus", "--band", "wide", "--route", "1", "--trace")
    assert "…" not in table
    commands, responses = columns(table[:table.index("✓")])[1:3]
    assert len(document["trace"]) >= 3
    for exchange in document["trace"][:1]:  # the SELECT is the same in both taps
        assert exchange["command"] in commands and exchange["response"] in responses


def test_the_gp_registry_keeps_every_aid_whole(narrow):
    rows = json.loads(narrow("gp", "list", "--band", "wide", "--json"))
    table = narrow("gp", "list", "--band", "wide")
    assert "…" not in table
    aids = columns(table)[0]
    assert rows and all(row["aid"] in aids for row in rows)
