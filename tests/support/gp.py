"""GlobalPlatform from the host's side: secure channel sessions on a band, and the transit
operator's security domain with its keys."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from applets import selection
from applets.access.perso import AccessPersonalisation
from applets.apdu import CommandAPDU
from applets.gp.channel import Level
from applets.gp.domain import ISD_AID, SecurityDomain
from applets.gp.keys import KeySet
from applets.gp.loadfiles import LOAD_FILES, PBOC_PURSE, SECURITY_DOMAIN
from applets.pboc.purse import PbocPurse
from applets.registry import PERSONALIZED, SELECTABLE
from applets.sw import SW
from issuer import gp
from issuer.products import CANTEEN, TRANSIT
from reader.flow import Flow, run
from reader.transport import in_field
from tests.conftest import EXPIRY, START, serial_for
from tests.support.access import CARD, PERMITS, SITE_KEY
from tests.support.ecash import bank_band
from wallet.band import Band

SSD_AID = bytes.fromhex("A00000015153504B4F414C4101")  # the transit operator's domain
CANTEEN_SSD_AID = bytes.fromhex("A00000015153504B4F414C4102")
SD_LOAD_FILE, SD_MODULE = LOAD_FILES[0].aid, next(iter(LOAD_FILES[0].modules))
PURSE_LOAD_FILE, PURSE_MODULE = LOAD_FILES[1].aid, next(iter(LOAD_FILES[1].modules))
OPERATOR_KEYS = KeySet(0x30, 3, bytes(range(16)), bytes(range(16, 32)), bytes(range(32, 48)))
LEVEL = Level.C_MAC | Level.C_DECRYPTION | Level.R_MAC | Level.R_ENCRYPTION


def session(aid: bytes, keys: KeySet, body: Callable[[gp.HostChannel], Flow[Any]],
            level: Level = LEVEL, seed: int = 1) -> Flow[Any]:
    """SELECT the domain, open a secure channel, run ``body`` in it."""
    yield from expect_ok(selection.select(aid))
    channel = yield from gp.open_channel(keys, level, random.Random(seed).randbytes)
    return (yield from body(channel))


def expect_ok(command: CommandAPDU) -> Flow[bytes]:
    response = yield command
    assert response.sw == SW.OK, f"{command!r} -> {response.sw:04X}"
    return response.data


def sender(command: CommandAPDU) -> Callable[[gp.HostChannel], Flow[Any]]:
    def send(channel: gp.HostChannel) -> Flow[Any]:
        return (yield from channel.send(command, f"{command!r}"))

    return send


def on(band: Band, flow: Flow[Any]) -> Any:
    with in_field(band) as link:
        return run(flow, link)


def full_band(factory_cards: bool = False) -> Band:
    """A band as the demo's is by noon: the PPSE and the bank's e-cash card, the door card,
    and transit and canteen each under its operator's domain (``factory_cards``: under the
    card manager, as the factory put them): a registry longer than one GET STATUS answer."""
    band, _ = bank_band(1)
    band.add_access_card(AccessPersonalisation.for_site(SITE_KEY, CARD, PERMITS))
    for ssd, product in ((SSD_AID, TRANSIT), (CANTEEN_SSD_AID, CANTEEN)):
        domain = band.se.install(ssd, SECURITY_DOMAIN, b"\x80\x40\x00", ISD_AID, SELECTABLE)
        purse = band.se.install(product.aid, PBOC_PURSE, domain=ISD_AID if factory_cards else ssd,
                                lifecycle=PERSONALIZED)
        if not isinstance(domain, SecurityDomain) or not isinstance(purse, PbocPurse):
            raise TypeError("the catalogue's classes are not the band's")
        domain.provision(KeySet.test_keys(), band.div_data)
        purse.personalise(product.personalisation(serial_for(product), START, EXPIRY, "Rider"))
    band.se.store.commit()
    return band
