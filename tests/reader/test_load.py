"""The local load terminal: MAC1, MAC2, TAC, and exactly-once loads across tears."""

from __future__ import annotations

import pytest

from applets.pboc.layouts import TxType
from issuer.products import CANTEEN, TRANSIT
from reader import pboc
from reader.errors import CardProtocolError, CardRemoved, TransactionRefused
from reader.flow import run
from reader.transport import in_field
from tests.conftest import TearDuring, make_band
from wallet.band import Band


def load(band, terminal, amount, aid=TRANSIT.aid):
    with in_field(band) as link:
        return run(terminal.load(amount, aid), link)


def test_loads_each_card_with_its_own_issuer_keys(band, load_terminal):
    assert load(band, load_terminal, 5000).balance_after == 5000
    assert load(band, load_terminal, 700, CANTEEN.aid).balance_after == 700
    assert [r.amount for r in load_terminal.records] == [5000, 700]
    assert band.card("canteen").balance == 700


def test_a_terminal_without_the_issuer_key_refuses(band, load_terminal):
    load_terminal._keys.pop(CANTEEN.issuer_id)
    with pytest.raises(TransactionRefused, match="cannot load"):
        load(band, load_terminal, 100, CANTEEN.aid)


class _ReplayTac:
    """A band whose answers to CREDIT FOR LOAD are replaced by an old TAC."""

    def __init__(self, band: Band, tac: bytes) -> None:
        self.band, self.tac = band, tac

    def power_on(self) -> None:
        self.band.power_on()

    def transmit(self, apdu: bytes) -> bytes:
        response = self.band.transmit(apdu)
        return self.tac + b"\x90\x00" if apdu[1] == 0x52 else response


def test_a_replayed_tac_is_refused(band, load_terminal):
    old = load(band, load_terminal, 100).tac
    with pytest.raises(CardProtocolError, match="TAC is wrong"):
        load(_ReplayTac(band, old), load_terminal, 100)


def test_a_load_torn_at_any_write_is_loaded_exactly_once(load_terminal):
    probe = make_band(TRANSIT)
    probe.se.store.writes = 0
    load(probe, load_terminal, 1000)
    writes = probe.se.store.writes
    settled = set()
    for k in range(writes):
        band = make_band(TRANSIT)
        load_terminal.records.clear()
        with pytest.raises(CardRemoved):
            load(TearDuring(band, 0x52, k), load_terminal, 1000)
        retry = load(band, load_terminal, 1000)
        assert band.card("transit").balance == 1000, f"tear before write {k + 1}"
        assert sum(r.amount for r in load_terminal.records) == band.card("transit").balance
        assert retry.balance_after == 1000
        settled.add("proved by the card" if retry.recovered else "loaded again")
    assert settled == {"proved by the card", "loaded again"}


def test_prove_answers_for_a_completed_load(band, load_terminal):
    record = load(band, load_terminal, 300)
    with in_field(band) as link:
        run(pboc.select_purse(), link)
        response = link.transmit(pboc.get_transaction_prove(TxType.EP_LOAD, 0).encode())
    assert response[4:8] == record.tac and response[-2:] == b"\x90\x00"
