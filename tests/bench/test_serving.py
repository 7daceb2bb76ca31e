"""The SQL counts the issuer's workers leave (the KOALA_SQL_COUNTS contract) add up, and an
issuer without the counters gives none rather than zeros."""

from __future__ import annotations

import json
from pathlib import Path

from bench.serving import sql_counts


def test_the_workers_counts_add_up(tmp_path: Path) -> None:
    for pid, (statements, transactions, trips) in {101: (26, 6, 45), 102: (17, 3, 20)}.items():
        (tmp_path / f"{pid}.json").write_text(json.dumps(
            {"statements": statements, "transactions": transactions, "round_trips": trips}))
    assert sql_counts(tmp_path) == {"statements": 43, "transactions": 9, "round_trips": 65}


def test_an_issuer_without_counters_gives_none(tmp_path: Path) -> None:
    assert sql_counts(tmp_path) is None
