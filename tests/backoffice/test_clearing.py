"""The clearing centre without a stream: the gates' outboxes checked and booked once per card
and counter, journeys paired, fares split, and what is wrong reported, never booked as good."""

from __future__ import annotations

import json

import pytest

from backoffice.books import LISTED, Books, engine_for
from backoffice.clearing import Clearing, clear_outboxes
from backoffice.members import TIANJIN
from backoffice.settlement import settle
from reader.outbox import Outbox, outboxes
from tests.support.morning import DAY, NETWORK, morning


@pytest.fixture(scope="module")
def cleared(books_url, tmp_path_factory):
    """Twenty riders' morning, cleared once."""
    directory = tmp_path_factory.mktemp("terminals")
    spent = morning(directory, 20, seed=3)
    books = Books(engine_for(books_url))
    tally = clear_outboxes(Clearing(books), directory)
    return books, directory, spent, tally


def test_every_record_is_booked_once_and_every_card_agrees_to_the_fen(cleared):
    books, directory, spent, tally = cleared
    lines = sum(len(list(box.entries())) for box in outboxes(directory))
    assert tally.received == tally.booked == lines == 40
    assert {serial: fen for serial, (fen, _) in books.totals().items() if fen} == \
        {serial: fen for serial, fen in spent.items() if fen}
    again = clear_outboxes(Clearing(books), directory)
    assert again.received == 0, "what was cleared is not read again"


def test_the_split_adds_up_to_the_fares_and_visitors_are_cleared_to_their_issuer(cleared):
    books, _, spent, _ = cleared
    day = settle(books, NETWORK, DAY)
    assert len(day.journeys) == 20
    assert sum(day.positions.values()) == day.collected == sum(spent.values())
    issuers = {issuer for issuer, _ in day.positions}
    assert TIANJIN.name in issuers and "transit" in issuers
    assert {operator for _, operator in day.positions} <= {"Beijing Subway", "Beijing MTR"}
    assert "\ntransit,Beijing" in day.csv().replace(DAY + ",", "\n")


def _copied(directory, tmp_path, change=None):
    """A new outbox holding the first exit record of ``directory``, changed by ``change``."""
    for box in outboxes(directory):
        for entry in box.entries():
            data = json.loads(entry.line)
            if data["amount"] > 0:
                if change:
                    change(data)
                target = Outbox(tmp_path, bytes.fromhex(data["terminal_id"]))
                target.path.parent.mkdir(parents=True, exist_ok=True)
                target.path.write_bytes(json.dumps(data).encode() + b"\n")
                return data
    raise AssertionError("no exit record")


def test_a_forged_tac_is_reported_and_never_booked(cleared, tmp_path):
    books, directory, _, _ = cleared
    before = books.totals()

    def forge(data):
        data["amount"] += 100
        data["card_counter"] += 1000

    _copied(directory, tmp_path, forge)
    tally = clear_outboxes(Clearing(books), tmp_path)
    assert (tally.forged, tally.booked) == (1, 0)
    assert books.totals() == before
    assert any(a.kind == "forged TAC" for a in books.anomalies(DAY))


def test_a_replayed_record_is_reported_and_booked_once(cleared, tmp_path):
    books, directory, _, _ = cleared
    before = books.totals()
    data = _copied(directory, tmp_path)
    tally = clear_outboxes(Clearing(books), tmp_path)
    assert (tally.replays, tally.booked) == (1, 0)
    assert books.totals() == before
    assert any(a.kind == "replay" and a.serial == data["app_serial"] for a in books.anomalies(DAY))


def test_a_record_after_the_cards_blacklisting_is_held_not_booked_as_good(books_url, tmp_path):
    spent = morning(tmp_path / "terminals", 3, seed=5)
    books = Books(engine_for(books_url))
    listed = sorted(serial for serial, fen in spent.items() if fen)[0]
    books.list_card(listed, "20261123000000", "lost")
    tally = clear_outboxes(Clearing(books), tmp_path / "terminals")
    assert tally.listed == 2  # its entry and its exit
    assert listed not in books.totals()
    assert any(a.kind == "blacklisted card paid" and a.serial == listed
               for a in books.anomalies(DAY))
    assert LISTED == "listed"


def test_a_torn_last_line_is_no_record_and_the_next_append_cuts_it(tmp_path):
    morning(tmp_path, 1, seed=7)
    box = outboxes(tmp_path)[0]
    whole = box.path.read_bytes()
    box.path.write_bytes(whole + b'{"record": "debit", "app_ser')
    assert [entry.line for entry in box.entries()] == whole.splitlines(keepends=True)
