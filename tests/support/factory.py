"""A band made at the factory: a transit card loaded at a station, that the issuer does not
know until the band registers it at the balance it proves."""

from __future__ import annotations

from sqlalchemy import Engine

from issuer.products import CANTEEN, TRANSIT
from reader import places
from reader.flow import run
from reader.load import LoadKeys, LoadTerminal
from reader.transport import in_field
from tests.conftest import EXPIRY, START, Clock
from tests.support import cards
from wallet.band import Band

ON_CARD = 1_000  # what a transit card holds when it is cancelled or its band lost


def factory_purse(engine: Engine) -> tuple[int, Band, bytes]:
    """A band made at the factory with a transit card (under the card manager) holding
    ON_CARD, loaded at a station, that the issuer does not know yet."""
    band_id, band = cards.new_band(engine)
    number = cards.serial(TRANSIT, band_id)
    band.add_purse(TRANSIT.personalisation(number, START, EXPIRY), TRANSIT.aid)
    # a canteen card beside it: a band left with no application cannot prove the purse gone
    # (GET STATUS finding nothing answers 6A88, which carries no R-MAC)
    band.add_purse(CANTEEN.personalisation(cards.serial(CANTEEN, band_id), START, EXPIRY), CANTEEN.aid)
    with in_field(band) as link:
        station = LoadTerminal(places.load_id(), {TRANSIT.issuer_id: LoadKeys(
            TRANSIT.master.load, TRANSIT.master.tac)}, Clock())
        run(station.load(ON_CARD, TRANSIT.aid), link)
    return band_id, band, number
