"""``--trace-file``: a tap's (and a GP session's) frames on the air as pcapng, read back by
tshark as Wireshark reads them, APDU for APDU and millisecond for millisecond against the
``--trace`` table of the same tap."""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from tests.support import tshark

AT = "2026-11-23T08:00"  # Beijing time: 00:00 UTC
STARTED = datetime(2026, 11, 23, 0, 0, tzinfo=UTC).timestamp()


def koala(home: Path, *args: str, ok: bool = True) -> str:
    # wide enough that rich folds no APDU; a fold would still be joined by table_rows
    result = CliRunner().invoke(main, ["--home", str(home), *args], env={"COLUMNS": "400"})
    assert (result.exit_code == 0) == ok, result.output
    assert "Traceback" not in result.output
    return result.output


def table_rows(output: str) -> list[list[str]]:
    """The rows of the APDU trace table, each cell's folded lines joined again."""
    rows: list[list[str]] = []
    for line in output.splitlines():
        if not line.startswith("│"):
            continue
        cells = [cell.strip() for cell in line.strip("│").split("│")]
        if cells[0]:
            rows.append(cells)
        else:
            rows[-1] = [old + new for old, new in zip(rows[-1], cells, strict=True)]
    return rows


@pytest.fixture
def home(tmp_path: Path) -> Path:
    koala(tmp_path, "band", "create", "ann", "--at", "2026-11-23T07:00")
    koala(tmp_path, "tap", "load", "--band", "ann", "--amount", "50", "--at", "2026-11-23T07:30")
    return tmp_path


def test_a_gate_taps_trace_reads_in_tshark_as_the_trace_table_shows_it(home):
    path = home / "gate.pcapng"
    out = koala(home, "tap", "gate", "--band", "ann", "--station", "Xizhimen", "--direction", "in",
                "--at", AT, "--trace", "--trace-file", str(path))
    rows = table_rows(out)
    assert [row[0] for row in rows] == [str(i) for i in range(1, len(rows) + 1)] and len(rows) >= 4
    verbose = tshark.run(path, "-V")
    assert "ISO 14443" in verbose and "ISO 7816 Command APDU" in verbose
    assert "Wrong CRC" not in verbose and "[CRC Status: Good]" in verbose
    assert tshark.malformed(path) == ""
    assert tshark.expert(path) == ""
    decoded = tshark.packets(path)
    apdus = tshark.apdus(decoded)
    assert len(apdus) == 2 * len(rows)
    for row, command, response in zip(rows, apdus[::2], apdus[1::2], strict=True):
        tshark.check_command(command, bytes.fromhex(row[1]))
        tshark.check_response(response, bytes.fromhex(row[2]))
    # the time axis: the field comes on at --at; each command starts where the rows before it
    # end (their air + card ms, rounded to 0.01 ms each); the field goes off at the modelled end
    assert decoded[0].epoch_s == pytest.approx(STARTED, abs=1e-6)
    starts = [command.packet.epoch_s for command in apdus[::2]]
    for row, start, following in zip(rows, starts, starts[1:], strict=False):
        assert (following - start) * 1e3 == pytest.approx(float(row[4]) + float(row[5]), abs=0.011)
    timing = re.search(r"modelled ([\d.]+) ms \(activation ([\d.]+)", out)
    assert timing, out
    assert (starts[0] - STARTED) * 1e3 == pytest.approx(float(timing[2]), abs=0.051)
    assert (decoded[-1].epoch_s - STARTED) * 1e3 == pytest.approx(float(timing[1]), abs=0.051)


def test_a_refused_tap_still_leaves_its_trace(home):
    path = home / "refused.pcapng"
    koala(home, "tap", "gate", "--band", "ann", "--station", "Guomao", "--direction", "out",
          "--at", AT, "--trace-file", str(path), ok=False)
    assert tshark.malformed(path) == "" and tshark.expert(path) == ""
    assert [a.command for a in tshark.apdus(tshark.packets(path))][:2] == [True, False]


def test_a_gp_session_traced(home):
    path = home / "gp.pcapng"
    koala(home, "gp", "list", "--band", "ann", "--trace-file", str(path))
    assert tshark.malformed(path) == "" and tshark.expert(path) == ""
    commands = [a.raw[:2].hex().upper() for a in tshark.apdus(tshark.packets(path)) if a.command]
    # SELECT, INITIALIZE UPDATE, EXTERNAL AUTHENTICATE and, under C-MAC, GET STATUS of the
    # card manager, the applications and the load files with their modules (one page each)
    assert commands == ["00A4", "8050", "8482", "84F2", "84F2", "84F2"]


def test_a_trace_file_that_cannot_be_written_is_one_line(home):
    (home / "taken").mkdir()
    out = koala(home, "tap", "bus", "--band", "ann", "--route", "1", "--trace-file",
                str(home / "taken"), ok=False)
    assert "is a directory" in out


def test_tshark_itself_is_there():
    """The Makefile installs tshark; the traces' tests skip without it outside CI only."""
    version = subprocess.run([tshark.tshark(), "--version"], capture_output=True, text=True,
                             check=True).stdout
    assert version.startswith("TShark")
