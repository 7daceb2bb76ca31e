"""The band: a secure element on the wrist, its identity and its image.

A tap powers the secure element from the reader's field (``power_on``), runs
commands, and the band saves its image when the field goes (``power_off``).
Cards reach the band in the factory (``add_purse``, the production line's
personalisation) until over-the-air issuance takes over.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path

from applets.access.card import AccessCard
from applets.access.perso import AccessPersonalisation
from applets.access.wire import ACCESS_AID
from applets.access.wire import LogEntry as AccessLogEntry
from applets.brands import ECASH, ECASH_LABEL, TRANSIT, Brand, brand_for_aid
from applets.catalogue import CATALOGUE, PBOC_PURSE, SECURITY_DOMAIN
from applets.emv.ecash import EcashCard, EcashPersonalisation
from applets.emv.ppse import Ppse
from applets.emv.records import ECASH_AID, PPSE_AID, pan_for_certificate
from applets.gp.cplc import cplc
from applets.gp.domain import ISD_AID, ISD_PRIVILEGES, SecurityDomain
from applets.gp.keys import KeySet
from applets.gp.loadfiles import ACCESS_CARD, PBOC_ECASH, PPSE
from applets.pboc.layouts import ISSUER_FILE, IssuerFile
from applets.pboc.perso import PursePersonalisation
from applets.pboc.purse import EF_ISSUER, PbocPurse
from applets.registry import PERSONALIZED
from applets.runtime import Rng, SecureElement
from applets.store import Store
from wallet import image
from wallet.errors import BandLocked, UnknownCard

UID_SIZE = 7
#: The band's own state, kept in the secure element's memory with its cards.
_WRIST, _LOCKED, _EXPRESS = "device/wrist", "device/locked", "device/express"
_BOND = "device/bond/"  # + a paired phone's id (hex): its app-layer key


class Bonds(MutableMapping[bytes, bytes]):
    """The phones paired with the band (id → app-layer key), kept with the band's memory so a
    pairing survives power-off; every change commits at once."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __getitem__(self, phone_id: bytes) -> bytes:
        value = self._store.get(_BOND + phone_id.hex().upper())
        if value is None:
            raise KeyError(phone_id)
        return value

    def __setitem__(self, phone_id: bytes, key: bytes) -> None:
        self._store.put(_BOND + phone_id.hex().upper(), key)
        self._store.commit()

    def __delitem__(self, phone_id: bytes) -> None:
        self[phone_id]  # KeyError for a phone that is not there
        self._store.delete(_BOND + phone_id.hex().upper())
        self._store.commit()

    def __iter__(self) -> Iterator[bytes]:
        return (bytes.fromhex(key.removeprefix(_BOND)) for key in self._store.keys(_BOND))

    def __len__(self) -> int:
        return len(self._store.keys(_BOND))


ACCESS = "access"  # the compound's door card, likewise
TRANSIT_AID = TRANSIT.aid


@dataclass(frozen=True, slots=True)
class CardInfo:
    """What the band can tell about one of its cards without a reader."""

    brand: Brand
    issuer_file: IssuerFile
    balance: int


@dataclass(frozen=True, slots=True)
class CardSummary:
    """One card as the band (and its companion) lists it, whatever its kind."""

    name: str
    label: str
    aid: bytes
    serial: bytes  # what the issuer knows it by: application serial, PAN padded with F, card id
    number: str  # what the holder is shown: the serial, or the PAN
    balance: int | None  # fen; None for a card that holds no money
    valid_until: str  # YYYYMMDD
    active: bool  # answers readers now (not locked by the band or its issuer)


def _purse_info(applet: PbocPurse) -> CardInfo:
    issuer = ISSUER_FILE.parse(applet.files.binary(EF_ISSUER))
    return CardInfo(brand_for_aid(applet.aid), issuer, applet.balance())


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

    def add_access_card(self, data: AccessPersonalisation, aid: bytes = ACCESS_AID) -> None:
        """Install and personalise a door access card in one commit (the factory's step)."""
        applet = self.se.install(aid, ACCESS_CARD, domain=ISD_AID, lifecycle=PERSONALIZED)
        if not isinstance(applet, AccessCard):
            raise TypeError("the catalogue's access card class is not an AccessCard")
        applet.personalise(data)
        self.se.store.commit()

    def add_ecash(self, data: EcashPersonalisation) -> None:
        """Install and personalise the bank's e-cash card, and the PPSE that lists it, in one
        commit (the bank's factory step)."""
        if not any(isinstance(applet, Ppse) for applet in self.se.applets):
            self.se.install(PPSE_AID, PPSE, domain=ISD_AID, lifecycle=PERSONALIZED)
        applet = self.se.install(ECASH_AID, PBOC_ECASH, domain=ISD_AID, lifecycle=PERSONALIZED)
        if not isinstance(applet, EcashCard):
            raise TypeError("the catalogue's e-cash class is not an EcashCard")
        applet.personalise(data)
        self.se.store.commit()

    # -- what the band knows of its cards -------------------------------------------

    def cards(self) -> list[CardInfo]:
        return [_purse_info(applet) for applet in self.se.applets if isinstance(applet, PbocPurse)]

    def summaries(self) -> list[CardSummary]:
        """Every card on the band, in installation order."""
        selectable = self.se.selectable()
        found = []
        for applet in self.se.applets:
            active = applet.aid in selectable
            if isinstance(applet, PbocPurse):
                info = _purse_info(applet)
                serial = info.issuer_file.app_serial
                found.append(CardSummary(info.brand.name, info.brand.label, applet.aid,
                                         serial, serial.hex().upper(), info.balance,
                                         info.issuer_file.expiry_date.hex(), active))
            elif isinstance(applet, EcashCard):
                pan, expiry = applet.pan_and_expiry()
                found.append(CardSummary(ECASH, ECASH_LABEL, applet.aid,
                                         pan_for_certificate(pan), pan,
                                         applet.balance(), f"20{expiry.hex()}", active))
            elif isinstance(applet, AccessCard):
                until = max((p.valid_until.hex() for p in applet.permissions()), default="")
                found.append(CardSummary(ACCESS, "door access", applet.aid, applet.card_id(),
                                         applet.card_id().hex().upper(), None, until, active))
        return found

    def access_log(self) -> list[AccessLogEntry]:
        """The doors the access card opened, newest first; UnknownCard without one."""
        for applet in self.se.applets:
            if isinstance(applet, AccessCard):
                return applet.entry_log()
        raise UnknownCard(f"band {self.name!r} has no access card")

    def card_list(self) -> list[dict[str, object]]:
        """The cards as the band tells its paired phone (GATT card list): name, the serial the
        issuer knows it by, balance, whether it answers readers."""
        return [{"card": c.name, "serial": c.serial.hex().upper(), "balance_fen": c.balance,
                 "answers_readers": c.active} for c in self.summaries()]

    def balances(self) -> dict[str, int]:
        """Every card's balance in fen by name: the purses by product, the bank card as ecash."""
        return {card.name: card.balance for card in self.summaries() if card.balance is not None}

    def summary(self, name: str) -> CardSummary:
        for found in self.summaries():
            if found.name == name:
                return found
        raise UnknownCard(f"band {self.name!r} has no {name} card")

    def card(self, name: str) -> CardInfo:
        for info in self.cards():
            if info.brand.name == name:
                return info
        raise UnknownCard(f"band {self.name!r} has no {name} card")

    # -- on the wrist: the lock and the express card ----------------------------------------

    @property
    def bonds(self) -> Bonds:
        return Bonds(self.se.store)

    @property
    def on_wrist(self) -> bool:
        return self.se.store.get(_WRIST) != b"\x00"

    @property
    def locked(self) -> bool:
        return self.se.store.get(_LOCKED) == b"\x01"

    def card_aids(self) -> list[bytes]:
        """The band's cards (not its security domains or the PPSE), in installation order."""
        return [applet.aid for applet in self.se.applets
                if not isinstance(applet, SecurityDomain | Ppse)]

    def express(self) -> bytes | None:
        """The card a gate may use while the band is locked: the user's choice, else the
        first transit card."""
        chosen = self.se.store.get(_EXPRESS)
        if chosen is not None and chosen in self.card_aids():
            return chosen
        return next((aid for aid in self.card_aids() if aid == TRANSIT_AID), None)

    def set_express(self, aid: bytes) -> None:
        """Make ``aid`` the express card (a stored-value card: gates use it without unlock)."""
        if not any(isinstance(applet, PbocPurse) and applet.aid == aid
                   for applet in self.se.applets):
            raise UnknownCard("only a transit or canteen card on this band can be the express "
                              "card")
        self.se.store.put(_EXPRESS, aid)
        if self.locked:
            self._deactivate_all_but_express(aid)
        self.se.store.commit()

    def wrist(self, on: bool) -> None:
        """The wrist sensor: taking the band off locks every card but the express one."""
        self.se.store.put(_WRIST, b"\x01" if on else b"\x00")
        if not on:
            self.lock()
        self.se.store.commit()

    def lock(self) -> None:
        """Lock every card but the express one (the wearer's choice, from the companion)."""
        self.se.store.put(_LOCKED, b"\x01")
        self._deactivate_all_but_express(self.express())
        self.se.store.commit()

    def unlock(self) -> None:
        """The companion unlocks the band once its user has confirmed it (on the wrist only)."""
        if not self.on_wrist:
            raise BandLocked("put the band on before unlocking it")
        self.se.store.put(_LOCKED, b"\x00")
        self.se.set_deactivated(frozenset())
        self.se.store.commit()

    def _deactivate_all_but_express(self, express: bytes | None) -> None:
        self.se.set_deactivated(frozenset(aid for aid in self.card_aids() if aid != express))

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
