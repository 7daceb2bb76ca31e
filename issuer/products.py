"""Card products and the demo issuers' documented test master keys.

Until the OTA service exists (and in development bands afterwards) cards are
personalised from these products. The master keys are test keys, published
here on purpose, like GlobalPlatform's 404142…4F: anybody may build a
terminal that accepts a demo card. Production keys never appear in code.

=========  ==========================  ================================
product    AID                         master keys (DPK / DLK / DTK /
                                       DAMK)
=========  ==========================  ================================
transit    A000000632010105 (T-Union)  11…11 22…22 / 33…33 44…44 /
                                       55…55 66…66 / DD…DD EE…EE
canteen    F04B4F414C4143414E54        77…77 88…88 / 99…99 AA…AA /
                                       BB…BB CC…CC / EE…EE FF…FF
=========  ==========================  ================================

Each issuer keeps its cards in its own security domain on the band, opened
with SCP03 keys diversified per band (KDF3) from one AES master for ENC, MAC
and DEK: transit A00000015153504B4F414C4101 with master 10 11 … 1F, canteen
A00000015153504B4F414C4102 with master 20 21 … 2F.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from applets import bcd, brands
from applets.brands import Brand
from applets.pboc import crypto
from applets.pboc.layouts import (
    HOLDER_FILE,
    METRO_RECORD_ID,
    SERIAL_DIGITS,
    TRANSIT_RECORD,
    HolderFile,
    IssuerFile,
    TransitRecord,
    card_number,
)
from applets.pboc.perso import KEY_INDEX, CardKey, PursePersonalisation

KEY_VERSION = 0x01
SERIAL_NUMBERS = 10**SERIAL_DIGITS  # an application serial's digits after the issuer's prefix


#: A card's 16-byte key of a role ("purchase", "load", "tac", "maintenance") from its
#: diversification data.
CardKeys = Callable[[str, bytes], bytes]


class UnknownProduct(KeyError):
    """No card product of that name."""


@dataclass(frozen=True, slots=True)
class MasterKeys:
    purchase: bytes
    load: bytes
    tac: bytes
    maintenance: bytes  # DAMK: APPLICATION BLOCK, which a gate's PSAM sends to a blacklisted card


@dataclass(frozen=True, slots=True)
class Product:
    """A stored-value card an issuer sells: its brand (what everyone knows it by), and what
    only its issuer knows: where it lives on the band, its keys and limits."""

    brand: Brand
    city: bytes
    master: MasterKeys
    max_balance: int
    has_transit_record: bool
    domain_aid: bytes
    gp_master: bytes  # AES-128, the domain's ENC, MAC and DEK master

    @property
    def name(self) -> str:
        return self.brand.name

    @property
    def label(self) -> str:
        return self.brand.label

    @property
    def aid(self) -> bytes:
        return self.brand.aid

    @property
    def issuer_id(self) -> bytes:
        return self.brand.issuer_id

    def personalisation(self, serial: bytes, start: bytes, expiry: bytes, holder_name: str = "",
                        card_key: CardKeys | None = None) -> PursePersonalisation:
        """The purse contents of one card: files and keys diversified for ``serial``.

        ``card_key(role, div_data)`` gives the card's purchase, load, TAC and maintenance keys
        (the issuer's key store); by default they come from the demo masters. ValueError
        for a serial that is not this issuer's prefix and 16 BCD digits (:meth:`serial`).
        """
        self.check_serial(serial)
        div = crypto.div_data(serial)
        derive = card_key or self.demo_card_key

        def key(role: str) -> CardKey:
            return CardKey(KEY_VERSION, derive(role, div))

        name = holder_name.encode("gbk")[:20].ljust(20, b" ")
        holder = HOLDER_FILE.build(HolderFile(0x00, 0x00, name, b" " * 32, 0x00))
        records: tuple[bytes, ...] = ()
        if self.has_transit_record:
            empty = TransitRecord(METRO_RECORD_ID, TRANSIT_RECORD.size - 2, 0, self.city,
                                  0, bytes(6), bytes(4), bytes(3), 0, bytes(6), bytes(4),
                                  bytes(3), 0)
            records = (TRANSIT_RECORD.build(empty),)
        return PursePersonalisation(
            issuer_file=IssuerFile(self.issuer_id, 0x02, 0x01, serial, start, expiry, bytes(2)),
            holder_file=holder,
            purchase_keys={KEY_INDEX: key("purchase")},
            load_keys={KEY_INDEX: key("load")},
            tac_key=derive("tac", div),
            maintenance_key=derive("maintenance", div),
            max_balance=self.max_balance,
            transit_records=records,
            file_id=self.brand.file_id,
        )

    def serial(self, number: int) -> bytes:
        """Application serial number ``number``: the issuer's two-byte prefix, then 16 decimal
        digits in BCD, as reader apps show T-Union card numbers."""
        if not 0 <= number < SERIAL_NUMBERS:
            raise ValueError(f"a card number has at most 16 digits, not {number}")
        return self.issuer_id[:2] + bcd.encode(f"{number:016d}")

    def check_serial(self, serial: bytes) -> None:
        """ValueError unless ``serial`` is one :meth:`serial` gives: this issuer's prefix,
        then 16 decimal digits in BCD."""
        card_number(serial)
        if serial[:2] != self.issuer_id[:2]:
            raise ValueError(f"application serial {serial.hex().upper()} does not start with "
                             f"the {self.name} issuer's prefix {self.issuer_id[:2].hex().upper()}")

    def factory_serial(self, uid: bytes) -> bytes:
        """The serial the band maker gives this product's card on the band with chip ``uid``:
        derived from the chip, so bands made in any factory (any ``$KOALA_HOME``) never share
        one at an issuer."""
        digest = hashlib.sha256(b"koala factory serial:" + self.name.encode() + b":" + uid).digest()
        return self.serial(int.from_bytes(digest[:8]) % SERIAL_NUMBERS)

    def demo_card_key(self, role: str, div_data: bytes) -> bytes:
        """A card key from the documented demo master of ``role`` (purchase, load, tac or
        maintenance)."""
        return crypto.diversify(getattr(self.master, role), div_data)


def _key(a: int, b: int) -> bytes:
    return bytes((a,)) * 8 + bytes((b,)) * 8


TRANSIT = Product(
    brand=brands.TRANSIT,
    city=bytes.fromhex("1000"),
    master=MasterKeys(_key(0x11, 0x22), _key(0x33, 0x44), _key(0x55, 0x66), _key(0xDD, 0xEE)),
    max_balance=100_000,
    has_transit_record=True,
    domain_aid=bytes.fromhex("A00000015153504B4F414C4101"),
    gp_master=bytes(range(0x10, 0x20)),
)

CANTEEN = Product(
    brand=brands.CANTEEN,
    city=bytes.fromhex("1000"),
    master=MasterKeys(_key(0x77, 0x88), _key(0x99, 0xAA), _key(0xBB, 0xCC), _key(0xEE, 0xFF)),
    max_balance=50_000,
    has_transit_record=False,
    domain_aid=bytes.fromhex("A00000015153504B4F414C4102"),
    gp_master=bytes(range(0x20, 0x30)),
)

PRODUCTS = {product.name: product for product in (TRANSIT, CANTEEN)}


def product(name: str) -> Product:
    try:
        return PRODUCTS[name]
    except KeyError:
        raise UnknownProduct(f"no card product {name!r}; known: {', '.join(PRODUCTS)}") from None


def product_for_aid(aid: bytes) -> Product:
    for candidate in PRODUCTS.values():
        if candidate.aid == aid:
            return candidate
    raise UnknownProduct(f"no card product with AID {aid.hex().upper()}")
