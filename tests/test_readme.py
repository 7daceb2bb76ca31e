"""The README is a contract: every shell block in it runs, in order, as written, in a fresh world.

Blocks are read from README.md as the reader sees them. A block whose fence is preceded by a
``<!-- readme: hardware -->`` line needs a Bluetooth controller or NFC device and is skipped;
``<!-- readme: ci -->`` marks the set-up block that CI itself runs (``make test`` cannot run
inside the tests). Nothing else is skipped: the issuer's background server, the PC/SC bridge
(pcscd started by the ``pcscd`` fixture) and the card tools run for real. Jobs a block leaves
in the background are stopped at the end.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
FENCE = re.compile(r"(?:<!-- readme: (?P<mark>\w+) -->\n)?```sh\n(?P<body>.*?)```", re.S)
SKIPPED = {"hardware", "ci"}


def blocks() -> list[tuple[str | None, str]]:
    return [(m["mark"], m["body"]) for m in FENCE.finditer(README.read_text(encoding="utf-8"))]


def test_the_readme_marks_only_what_cannot_run_here():
    marks = [mark for mark, _ in blocks() if mark]
    assert set(marks) <= SKIPPED, marks
    assert marks.count("ci") == 1
    runnable = [body for mark, body in blocks() if mark is None]
    assert len(runnable) >= 6 and all("usb:" not in body for body in runnable)


def script() -> str:
    """All runnable blocks as one bash script: the first failing command fails it."""
    parts = ["set -euo pipefail", "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT"]
    for number, (mark, body) in enumerate(blocks(), start=1):
        if mark in SKIPPED:
            continue
        parts.append(f"echo '### README block {number}'")
        parts.append(body)
    return "\n".join(parts) + "\n"


@pytest.mark.usefixtures("pcscd")
def test_every_command_in_the_readme_runs_as_written(tmp_path):
    env = {**os.environ, "KOALA_HOME": str(tmp_path / "home"), "COLUMNS": "100",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for variable in ("KOALA_ISSUER", "KOALA_OPERATOR_TOKEN", "KOALA_ISSUER_DB"):
        env.pop(variable, None)
    result = subprocess.run(["bash", "-c", script()], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=600, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "Traceback" not in output, output[-6000:]
    # the one refusal the README shows on purpose: a POS without a link (``! koala …``)
    assert result.stdout.count("✗ refused") == README.read_text().count("\n! koala ")
