"""Registration proven by the band: its card manager takes the issuer's keys, and a card made
elsewhere comes under the issuer at the balance it proves."""

from __future__ import annotations

import os

from sqlalchemy import Engine

from applets import selection
from applets.apdu import CommandAPDU, ResponseAPDU
from applets.crypto import scp03
from applets.gp.cplc import cplc
from applets.gp.domain import ISD_AID
from applets.gp.keys import TEST_KEY
from applets.sw import SW
from issuer import gp
from issuer.db import Band as BandRow
from issuer.db import Order, OrderState, session_factory
from issuer.issuance import factory_keys, open_domain
from issuer.keys import DemoKeys
from issuer.keystore import CARD_MANAGER, TEST_KEY_SET
from reader.flow import run
from reader.transport import in_field
from tests.conftest import seeded
from tests.support.cards import Relay, books, card_row, issue, new_band, orders
from tests.support.factory import ON_CARD, factory_purse
from wallet.band import Band


def registered(engine: Engine) -> tuple[int, Band, int]:
    """A band known to the issuer under its CPLC, and the order that takes its card manager
    over."""
    band_id, band = new_band(engine)
    with session_factory(engine).begin() as session:
        session.get_one(BandRow, band_id).cplc = cplc(band.uid).hex().upper()
    order = orders(engine).take_over(band_id)
    assert order is not None
    return band_id, band, order


def key_set(engine: Engine, band_id: int) -> str:
    with session_factory(engine)() as session:
        return session.get_one(BandRow, band_id).isd_key_set


def issuers_keys(band: Band) -> gp.Diversifier:
    keys = DemoKeys().domain_keys(CARD_MANAGER)
    return lambda _claimed: keys(bytes(3) + band.uid)


def transmit(band: Band, command: CommandAPDU) -> ResponseAPDU:
    return ResponseAPDU.parse(band.transmit(command.encode()))


def test_the_test_keys_open_nothing_on_a_registered_band_and_the_issuers_do(engine):
    band_id, band, order = registered(engine)
    assert Relay(engine, band)(order) is OrderState.SETTLED
    assert key_set(engine, band_id) == CARD_MANAGER
    # a host with GP's test keys: the card's cryptogram does not verify, the card refuses the
    # host's, and management stays closed
    band.power_on()
    assert transmit(band, selection.select(ISD_AID)).sw == SW.OK
    host_challenge = os.urandom(8)
    update = transmit(band, CommandAPDU(0x80, 0x50, 0x00, 0x00, host_challenge, ne=256)).data
    assert update[10] == 0x01, "the card manager's key set is the issuer's (KVN 01)"
    card_challenge, card_cryptogram = update[13:21], update[21:29]
    session = scp03.session_keys(TEST_KEY, TEST_KEY, host_challenge, card_challenge)
    assert scp03.card_cryptogram(session.s_mac, host_challenge, card_challenge) != card_cryptogram
    body = scp03.host_cryptogram(session.s_mac, host_challenge, card_challenge)
    mac, _ = scp03.c_mac(session.s_mac, bytes(16), bytes((0x84, 0x82, 0x33, 0x00, 16)) + body)
    assert transmit(band, CommandAPDU(0x84, 0x82, 0x33, 0x00, body + mac)).sw == SW.VERIFY_FAILED
    assert transmit(band, gp.get_status(0x40)).sw == SW.SECURITY_STATUS_NOT_SATISFIED  # 6982
    # the issuer's keys for this band open it, and its over-the-air issuance works with them
    band.power_on()
    with in_field(band) as link:
        assert run(open_domain(ISD_AID, issuers_keys(band), os.urandom), link) is not None
    issue(engine, band_id, band)


def test_another_bands_card_manager_gets_none_of_our_keys(engine):
    """A relay that takes the order to another band (on the test keys) is caught by that
    band's CPLC under R-MAC: it keeps its test keys, and the order waits for the right band."""
    band_id, band, order = registered(engine)
    stranger = Band.new("stranger", seeded(987_654))
    assert Relay(engine, stranger)(order) is OrderState.IN_RELAY
    assert key_set(engine, band_id) == TEST_KEY_SET
    with session_factory(engine)() as session:
        assert "not the registered band's" in (session.get_one(Order, order).last_error or "")
    stranger.power_on()
    with in_field(stranger) as link:
        assert run(open_domain(ISD_AID, factory_keys, os.urandom), link) is not None
    assert Relay(engine, band)(order) is OrderState.SETTLED


def test_the_take_over_torn_at_every_write_completes_at_the_next_contact(engine):
    tear = 1
    while True:
        band_id, band, order = registered(engine)
        relay = Relay(engine, band)
        whole = relay(order, tear=tear) is OrderState.SETTLED
        assert whole or relay(order) is OrderState.SETTLED, f"torn at write {tear}"
        assert key_set(engine, band_id) == CARD_MANAGER
        band.power_on()
        with in_field(band) as link:
            assert run(open_domain(ISD_AID, issuers_keys(band), os.urandom), link) is not None
        if whole:
            break
        tear += 1
    assert tear > 3, "the take-over writes more than that"


def test_a_factory_card_opens_at_its_proven_balance_and_registering_again_changes_nothing(engine):
    band_id, band, number = factory_purse(engine)
    order, new = orders(engine).register(band_id, "transit", number)
    assert new and order is not None
    assert orders(engine).register(band_id, "transit", number) == (order, False)
    assert card_row(engine, order).status.value == "issuing"
    assert Relay(engine, band)(order) is OrderState.SETTLED
    assert card_row(engine, order).status.value == "active"
    assert books(engine, band_id, number.hex().upper())[1] == ON_CARD == band.card("transit").balance
    assert orders(engine).register(band_id, "transit", number) == (order, False)
    assert books(engine, band_id, number.hex().upper())[1] == ON_CARD, "booked once"


def test_a_card_issued_here_registers_as_itself_without_an_order(engine):
    band_id, band = new_band(engine)
    issued = issue(engine, band_id, band)
    assert orders(engine).register(band_id, "transit", bytes.fromhex(issued)) == (None, False)
