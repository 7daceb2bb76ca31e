"""The band on and off the wrist: the lock spares only the express card; the companion unlocks."""

from __future__ import annotations

from datetime import date

import pytest

from applets.access.wire import ACCESS_AID
from applets.emv.records import ECASH_AID, PPSE_AID
from issuer import ecash
from issuer.emv_pki import DemoPki
from issuer.products import CANTEEN, TRANSIT
from reader import pboc
from reader.errors import TransactionRefused
from reader.flow import run
from reader.pos import Pos
from reader.transport import in_field
from tests.conftest import Clock, make_band
from wallet.band import Band
from wallet.errors import BandLocked, UnknownCard


@pytest.fixture(scope="module")
def bank_card():
    profile = ecash.profile_for(ecash.pan_for(7), "Wrist", date(2026, 1, 1))
    return ecash.personalisation(profile, DemoPki.load(), balance=5000)


def selects(band: Band, aid: bytes) -> bool:
    band.power_on()
    return band.transmit(pboc.select(aid).encode())[-2:] == b"\x90\x00"


def pays(band: Band) -> bool:
    try:
        with in_field(band) as link:
            run(Pos("Shop", Clock()).purchase(100), link)
    except TransactionRefused:
        return False
    return True


def test_off_the_wrist_only_the_express_transit_card_answers(bank_card):
    band = make_band(TRANSIT, CANTEEN)
    band.add_ecash(bank_card)
    assert band.express() == TRANSIT.aid and pays(band)
    band.wrist(False)
    assert band.locked and selects(band, TRANSIT.aid)
    assert not selects(band, CANTEEN.aid) and not selects(band, ECASH_AID)
    assert not pays(band), "the PPSE lists no payment card while locked"
    band.wrist(True)
    assert band.locked and not pays(band), "back on the wrist, still locked until unlocked"
    band.unlock()
    assert not band.locked and pays(band) and selects(band, CANTEEN.aid)


def test_the_lock_survives_power_and_the_image(bank_card, tmp_path):
    band = make_band(TRANSIT)
    band.add_ecash(bank_card)
    band.wrist(False)
    band.save(tmp_path / "b.band")
    again = Band.load(tmp_path / "b.band")
    assert again.locked and not again.on_wrist
    assert selects(again, TRANSIT.aid) and not selects(again, ECASH_AID) and not pays(again)
    assert selects(again, PPSE_AID), "the PPSE answers, listing nothing"


def test_unlocking_needs_the_band_on_the_wrist():
    band = make_band(TRANSIT)
    band.wrist(False)
    with pytest.raises(BandLocked, match="on before"):
        band.unlock()


def test_the_user_chooses_the_express_card():
    band = make_band(TRANSIT, CANTEEN)
    band.set_express(CANTEEN.aid)
    band.wrist(False)
    assert selects(band, CANTEEN.aid) and not selects(band, TRANSIT.aid)
    band.set_express(TRANSIT.aid)  # while locked: the new express card answers at once
    assert selects(band, TRANSIT.aid) and not selects(band, CANTEEN.aid)
    with pytest.raises(UnknownCard):
        band.set_express(ACCESS_AID)


def test_an_issuer_lock_is_not_undone_by_unlocking_the_band():
    band = make_band(TRANSIT)
    band.se.set_lifecycle(TRANSIT.aid, band.se.entry(TRANSIT.aid).lifecycle | 0x80)
    band.se.store.commit()
    band.wrist(False)
    band.wrist(True)
    band.unlock()
    assert not selects(band, TRANSIT.aid)
