"""The SQL counts each issuer worker leaves at shutdown (``KOALA_SQL_COUNTS``), as
``bench.ota`` reads them: a real ``koala issuer serve`` with two workers places top-up
orders, and its workers' files add up to what the order service did."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.ota import enrol
from bench.serving import serving, sql_counts
from phone.companion import Companion, IssuerClient, LocalBand


def test_each_worker_counts_its_statements_transactions_and_round_trips(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'issuer.db'}"
    with serving(database, 1) as issuer:  # enrolment, uncounted
        band, band_id, token, serial = enrol(issuer.url, 1)
    counts = tmp_path / "counts"
    counts.mkdir()
    with serving(database, 2, counts) as issuer:
        companion = Companion(LocalBand(band), band_id, IssuerClient(issuer.url, token))
        for _ in range(3):
            assert companion.topup(serial, 1)["state"] == "settled"
    assert len(list(counts.glob("*.json"))) == 2, "one file per worker"
    counted = sql_counts(counts)
    # Three top-ups, each three transactions (place and open, debit, settle).
    assert counted["transactions"] == 9
    assert 9 * 4 <= counted["statements"] <= 9 * 8
    assert counted["round_trips"] >= counted["statements"] + 2 * counted["transactions"]


def test_an_issuer_started_without_the_variable_leaves_nothing_to_count(tmp_path: Path) -> None:
    with serving(f"sqlite:///{tmp_path / 'issuer.db'}", 1):
        pass
    with pytest.raises(FileNotFoundError, match="KOALA_SQL_COUNTS"):
        sql_counts(tmp_path)
