"""The keys an issuer process works with: card keys and domain keys, from its store or the demo masters.

The issuer's code asks for derived keys by product and role, never for a
master: :class:`StoreKeys` derives inside the key store (an encrypted file
or a PKCS#11 token), :class:`DemoKeys` from the documented demo masters of
``issuer.products`` (tests and development bands).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from applets.emv import crypto as emv
from applets.gp.keys import KeySet
from applets.pboc.crypto import diversify
from issuer import ecash
from issuer.gp import Diversifier, diversified
from issuer.keystore import CARD_MANAGER, CARD_MANAGER_DEMO_MASTER, KeyStore, gp_diversifier
from issuer.products import product

#: Key version number of the operators' domain keys (PUT KEY on a new domain).
DOMAIN_KVN = 0x01


class IssuerKeys(Protocol):
    def card_key(self, product: str, role: str, div_data: bytes) -> bytes:
        """A card's 16-byte key of ``role`` (purchase, load, tac; the bank card's ac and mac):
        the PBOC dispersion ``3DES(master, D ‖ ¬D)``, which for the bank card is EMV option A."""
        ...

    def domain_keys(self, key_set: str) -> Diversifier:
        """A band's SCP03 keys of the domain whose masters are ``key_set`` (a product's name, or
        :data:`~issuer.keystore.CARD_MANAGER` for the card manager)."""
        ...


@dataclass(frozen=True, slots=True)
class StoreKeys:
    store: KeyStore

    def card_key(self, product: str, role: str, div_data: bytes) -> bytes:
        return self.store.diversify_pboc(f"{product}/{role}", div_data)

    def domain_keys(self, key_set: str) -> Diversifier:
        return gp_diversifier(self.store, key_set, DOMAIN_KVN)


@dataclass(frozen=True, slots=True)
class DemoKeys:
    def card_key(self, product_name: str, role: str, div_data: bytes) -> bytes:
        if product_name == ecash.PRODUCT:
            return diversify(ecash.MASTERS[role], div_data)
        return product(product_name).demo_card_key(role, div_data)

    def domain_keys(self, key_set: str) -> Diversifier:
        master = CARD_MANAGER_DEMO_MASTER if key_set == CARD_MANAGER else product(key_set).gp_master
        return diversified(KeySet(DOMAIN_KVN, 3, master, master, master), "kdf3")


@dataclass(frozen=True, slots=True)
class LoadKeysOf:
    """One product's load and TAC keys, as a top-up needs them (``issuer.topup.CardLoadKeys``)."""

    keys: IssuerKeys
    product: str

    def load_key(self, div_data: bytes) -> bytes:
        return self.keys.card_key(self.product, "load", div_data)

    def tac_key(self, div_data: bytes) -> bytes:
        return self.keys.card_key(self.product, "tac", div_data)


@dataclass(frozen=True, slots=True)
class EcashKeysOf:
    """The bank card's AC and script MAC keys from the issuer's key store (``ecash/ac``,
    ``ecash/mac``: EMV option A is the PBOC dispersion of the PAN's digits)."""

    keys: IssuerKeys

    def ac_key(self, pan: str, psn: int) -> bytes:
        return self.keys.card_key(ecash.PRODUCT, "ac", emv.option_a_data(pan, psn))

    def mac_key(self, pan: str, psn: int) -> bytes:
        return self.keys.card_key(ecash.PRODUCT, "mac", emv.option_a_data(pan, psn))
