"""How long the ``koala`` command takes to start, against what it cannot do without.

    .venv/bin/python -m bench.startup [--runs 20]

Whole processes, timed from outside (start to exit), median of ``--runs`` each, in a fresh
world: ``koala --help``; a bus tap on a band (read the image, the tap, save the image); and
the floors: Python doing nothing, and Python importing only what a tap needs to hold the
card (the band's package with every applet, click and rich). Prints a Markdown table for
BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PYTHON = sys.executable
KOALA = str(Path(PYTHON).with_name("koala"))


def median_seconds(command: list[str], runs: int, env: dict[str, str]) -> float:
    subprocess.run(command, env=env, check=True, capture_output=True)  # warm the page cache
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, env=env, check=True, capture_output=True)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "KOALA_HOME": home}
        subprocess.run([KOALA, "band", "create", "bench"], env=env, check=True, capture_output=True)
        subprocess.run([KOALA, "tap", "load", "--band", "bench", "--amount", "900"], env=env,
                       check=True, capture_output=True)
        rows = [
            ("`koala --help`", "≤ 0.2 s", [KOALA, "--help"]),
            ("`koala tap bus` on a band (image read, tap, image saved)", "≤ 0.2 s",
             [KOALA, "tap", "bus", "--band", "bench", "--route", "1"]),
            ("floor: Python starting and doing nothing", "—", [PYTHON, "-c", "pass"]),
            ("floor: importing the band with every applet, click and rich", "—",
             [PYTHON, "-c", "import wallet.band, rich.console, click"]),
        ]
        print(f"| whole process, median of {args.runs} | target | measured |")
        print("|---|---|---|")
        for label, target, command in rows:
            print(f"| {label} | {target} | {median_seconds(command, args.runs, env):.3f} s |")


if __name__ == "__main__":
    main()
