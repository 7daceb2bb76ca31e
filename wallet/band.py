"""The band: a secure element on the wrist, its identity and its image.

A tap powers the secure element from the reader's field (``power_on``), runs
commands, and the band saves its image when the field goes (``power_off``).
Cards reach the band in the factory (``add_purse``, the production line's
personalisation) until over-the-air issuance takes over.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from applets.catalogue import CATALOGUE, PBOC_PURSE, SECURITY_DOMAIN
from applets.gp.cplc import cplc
from applets.gp.domain import ISD_AID, ISD_PRIVILEGES, SecurityDomain
from applets.gp.keys import KeySet
from applets.pboc.layouts import ISSUER_FILE, IssuerFile
from applets.pboc.perso import PursePersonalisation
from applets.pboc.purse import EF_ISSUER, PbocPurse
from applets.runtime import PERSONALIZED, Rng, SecureElement
from applets.store import Store
from issuer.products import Product, product_for_aid
from wallet import image
from wallet.errors import UnknownCard

UID_SIZE = 7


@dataclass(frozen=True, slots=True)
class CardInfo:
    """What the band can tell about one of its cards without a reader."""

    product: Product
    issuer_file: IssuerFile
    balance: int


class Band:
    def __init__(self, name: str, uid: bytes, store: Store, rng: Rng = os.urandom) -> None:
        if len(uid) != UID_SIZE:
            raise ValueError(f"a band UID has {UID_SIZE} bytes")
        self.name = name
        self.uid = uid
        self.se = SecureElement(store, rng, CATALOGUE)
        #: Called after every command that changed persistent memory, before its
        #: answer leaves the band: a long-running band saves its image here.
        self.on_change: Callable[[Band], None] | None = None

    @classmethod
    def new(cls, name: str, rng: Rng = os.urandom, scp: int = 3,
            isd_keys: Callable[[bytes], KeySet] | None = None, scp02_i: int = 0x55) -> Band:
        """A band fresh from the factory: a random 7-byte UID starting 04 (as NXP secure
        elements have) and a card manager answering to the GlobalPlatform test keys, or to
        ``isd_keys(div_data)``, keys diversified for this band from its maker's masters."""
        band = cls(name, b"\x04" + rng(UID_SIZE - 1), Store(), rng)
        isd = band.se.install(ISD_AID, SECURITY_DOMAIN, ISD_PRIVILEGES)
        if not isinstance(isd, SecurityDomain):
            raise TypeError("the catalogue's security domain class is not a SecurityDomain")
        keys = isd_keys(band.div_data) if isd_keys is not None else KeySet.test_keys(scp)
        isd.provision(keys, band.div_data, cplc(band.uid), scp02_i)
        band.se.store.commit()
        band.se.power_on()
        return band

    @property
    def div_data(self) -> bytes:
        """Key diversification data of the band's domains (INITIALIZE UPDATE): 00 00 00 + UID."""
        return bytes(3) + self.uid

    # -- the reader's field -------------------------------------------------------

    def power_on(self) -> None:
        self.se.power_on()

    def transmit(self, apdu: bytes) -> bytes:
        before = self.se.store.writes
        response = self.se.transmit(apdu)
        if self.on_change is not None and self.se.store.writes != before:
            self.on_change(self)
        return response

    # -- factory personalisation ---------------------------------------------------

    def add_purse(self, data: PursePersonalisation, aid: bytes) -> None:
        """Install and personalise a purse in one commit (the factory's step)."""
        applet = self.se.install(aid, PBOC_PURSE, domain=ISD_AID, lifecycle=PERSONALIZED)
        if not isinstance(applet, PbocPurse):
            raise TypeError("the catalogue's purse class is not a PbocPurse")
        applet.personalise(data)
        self.se.store.commit()

    # -- what the band knows of its cards -------------------------------------------

    def cards(self) -> list[CardInfo]:
        infos = []
        for applet in self.se.applets:
            if isinstance(applet, PbocPurse):
                issuer = ISSUER_FILE.parse(applet.files.binary(EF_ISSUER))
                infos.append(CardInfo(product_for_aid(applet.aid), issuer, applet.balance()))
        return infos

    def card(self, name: str) -> CardInfo:
        for info in self.cards():
            if info.product.name == name:
                return info
        raise UnknownCard(f"band {self.name!r} has no {name} card")

    # -- persistence ------------------------------------------------------------------

    def to_image(self) -> image.Image:
        return image.Image(self.name, self.uid, self.se.store.snapshot())

    @classmethod
    def from_image(cls, img: image.Image, rng: Rng = os.urandom) -> Band:
        return cls(img.name, img.uid, Store(img.cells), rng)

    def save(self, path: Path) -> None:
        image.save(path, self.to_image())

    @classmethod
    def load(cls, path: Path, rng: Rng = os.urandom) -> Band:
        return cls.from_image(image.load(path), rng)
