"""Over-the-air issuance: the GP script on a fresh band, again after every possible drop."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from applets import tlv
from applets.gp.domain import ISD_AID
from applets.gp.keys import KeySet
from applets.registry import PERSONALIZED
from issuer import gp
from issuer.issuance import Domain, delete_purse, factory_keys, issue_purse, lock_purse
from issuer.products import CANTEEN, TRANSIT
from reader import pboc, places
from reader.errors import CardProtocolError, CardRemoved
from reader.flow import run
from reader.load import LoadKeys, LoadTerminal
from reader.transport import in_field
from tests.conftest import EXPIRY, START, Clock, make_band, serial_for
from tests.support.gp import full_band
from wallet.band import Band

OPERATOR_MASTER = KeySet(0x01, 3, bytes(range(0x10, 0x20)), bytes(range(0x20, 0x30)),
                         bytes(range(0x30, 0x40)))
OPERATOR = Domain(bytes.fromhex("A00000015153504B4F414C4101"),
                  gp.diversified(OPERATOR_MASTER, "kdf3"))
CARD_MANAGER = Domain(ISD_AID, factory_keys)
PERSONALISATION = TRANSIT.personalisation(serial_for(TRANSIT), START, EXPIRY, "OTA")


def issue(band: Band, seed: int = 1) -> str:
    with in_field(band) as link:
        return run(issue_purse(CARD_MANAGER, OPERATOR, TRANSIT.aid, PERSONALISATION,
                               random.Random(seed).randbytes), link)


def usable(band: Band) -> int:
    loader = LoadTerminal(places.load_id(), {TRANSIT.issuer_id: LoadKeys(TRANSIT.master.load,
                                                                         TRANSIT.master.tac)},
                          Clock())
    with in_field(band) as link:
        return run(loader.load(500), link).balance_after


def test_a_fresh_band_gets_a_domain_and_a_working_card():
    band = make_band()
    assert issue(band) == "issued"
    assert usable(band) == 500
    assert issue(band, seed=2) == "already issued"
    assert band.card("transit").balance == 500


class _DropAt:
    """The relay loses the link before the n-th APDU reaches the band."""

    def __init__(self, band: Band, n: int) -> None:
        self.band, self.n = band, n

    def power_on(self) -> None:
        self.band.power_on()

    def transmit(self, apdu: bytes) -> bytes:
        self.n -= 1
        if self.n == 0:
            raise CardRemoved("relay dropped")
        return self.band.transmit(apdu)


def test_issuance_broken_at_every_apdu_completes_on_the_next_contact():
    probe = make_band()
    with in_field(probe) as link:
        run(issue_purse(CARD_MANAGER, OPERATOR, TRANSIT.aid, PERSONALISATION,
                        random.Random(1).randbytes), link)
        apdus = len(link.trace)
    for n in range(1, apdus + 1):
        band = make_band()
        with pytest.raises(CardRemoved), in_field(_DropAt(band, n)) as link:
            run(issue_purse(CARD_MANAGER, OPERATOR, TRANSIT.aid, PERSONALISATION,
                            random.Random(1).randbytes), link)
        assert issue(band, seed=n) in ("issued", "already issued"), f"dropped before APDU {n}"
        assert usable(band) == 500


def test_store_data_gives_the_purse_its_df_identifier_and_pin():
    band = make_band()
    personalisation = replace(PERSONALISATION, pin="80246", pin_tries=4)
    with in_field(band) as link:
        assert run(issue_purse(CARD_MANAGER, OPERATOR, TRANSIT.aid, personalisation,
                               random.Random(1).randbytes), link) == "issued"
    band.power_on()
    with in_field(band) as link:
        assert run(pboc.read_issuer_file_by_fid(), link).app_serial == serial_for(TRANSIT)
        assert link.transmit(bytes.fromhex("00A4000402100100"))[-2:] == b"\x90\x00"
        fcp = link.trace[-1].response[:-2]
        assert tlv.find(fcp, 0x83) == b"\x10\x01"
        assert link.transmit(bytes.fromhex("0020000000")) == b"\x63\xc4"
        assert link.transmit(pboc.verify_pin("80246").encode()) == b"\x90\x00"


def test_the_card_refuses_a_serial_that_is_not_bcd_at_store_data():
    band = make_band()
    issuer_file = replace(PERSONALISATION.issuer_file,
                          app_serial=bytes.fromhex("100068A1322188A8C334"))
    with pytest.raises(CardProtocolError, match="6A80"), in_field(band) as link:
        run(issue_purse(CARD_MANAGER, OPERATOR, TRANSIT.aid,
                        replace(PERSONALISATION, issuer_file=issuer_file),
                        random.Random(1).randbytes), link)
    assert band.se.entry(TRANSIT.aid).lifecycle != PERSONALIZED, "nothing personalised"


def test_the_card_manager_finds_a_factory_card_past_the_first_page_of_its_registry():
    """The canteen card is the last of eight registry entries: more than one GET STATUS answer
    holds, so the issuer follows the 6310 pages (the first page alone, or 6Cxx before the
    card paged, and the card was Unproven)."""
    band = full_band(factory_cards=True)
    rng = random.Random(3).randbytes
    with in_field(band) as link:
        assert run(lock_purse(CARD_MANAGER, OPERATOR, CANTEEN.aid, rng), link) == "locked"
    assert band.se.entry(CANTEEN.aid).locked
    with in_field(band) as link:
        assert run(delete_purse(CARD_MANAGER, OPERATOR, CANTEEN.aid, rng), link) == "deleted"
        assert run(delete_purse(CARD_MANAGER, OPERATOR, CANTEEN.aid, rng), link) == "absent"
