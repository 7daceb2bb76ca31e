"""The demo bank behind the band's e-cash card: its card data, its keys and its host's checks.

The bank keeps two 3DES master keys (AC and script MAC), derives each card's
keys from them with the PAN (EMV option A), certifies each card's RSA key
under its issuer key, which the demo CA certified (:mod:`issuer.emv_pki`),
and verifies the cryptograms terminals send it. The master keys below are
documented demo keys, like the transit operator's in :mod:`issuer.products`.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import date

from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from applets.brands import ECASH
from applets.emv import crypto
from applets.emv.ecash import EcashPersonalisation
from applets.emv.records import Profile, ac_input, static_data
from applets.validity import Validity
from issuer.emv_pki import DemoPki
from reader.record import EcashPurchase

PRODUCT = ECASH  # the bank's card in the issuer's books (not one of our products)
AC_MASTER = bytes.fromhex("3C8A5E1F2D4B6A79C1E3F50718293A4B")
MAC_MASTER = bytes.fromhex("4D9B6F203E5C7B8AD2F4061829304B5C")
MASTERS = {"ac": AC_MASTER, "mac": MAC_MASTER}
#: The demo bank's BIN (UnionPay's 62 range) and its cards' validity.
BIN = "62258800"
VALIDITY_YEARS = 5


def pan_for(number: int) -> str:
    """The demo bank's 16-digit PAN for an account number, with its Luhn check digit."""
    body = f"{BIN}{number:07d}"
    if len(body) != 15:
        raise ValueError("account numbers have at most 7 digits")
    return body + str(luhn_digit(body))


def account_for(uid: bytes) -> int:
    """The account number of the card the bank puts on the band with chip ``uid``: derived from
    the chip, so bands made anywhere get distinct PANs (the demo bank's 7-digit range)."""
    return int.from_bytes(hashlib.sha256(b"koala demo bank account:" + uid).digest()[:8]) % 10**7


def luhn_digit(digits: str) -> int:
    total = 0
    for i, digit in enumerate(reversed(digits)):
        value = int(digit) * (2 if i % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return (10 - total % 10) % 10


def profile_for(pan: str, holder: str, issued: date, psn: int = 0) -> Profile:
    start, expiry = Validity.for_years(issued, VALIDITY_YEARS).bcd_short()
    return Profile(pan, psn, expiry, start, holder)


def personalisation(profile: Profile, pki: DemoPki, balance: int = 0,
                    balance_limit: int = 100_000, single_limit: int = 50_000) -> EcashPersonalisation:
    """Everything the bank's data preparation writes into a new e-cash card."""
    icc_key, icc_certificate = pki.icc_key_and_certificate(profile.pan, _mmyy(profile.expiry),
                                                           static_data(profile))
    der = icc_key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
    return EcashPersonalisation(
        profile=profile,
        ac_key=crypto.icc_master_key(AC_MASTER, profile.pan, profile.psn),
        mac_key=crypto.icc_master_key(MAC_MASTER, profile.pan, profile.psn),
        icc_key=der, ca_index=pki.ca_index, issuer_certificate=pki.issuer_certificate,
        icc_certificate=icc_certificate, balance=balance, balance_limit=balance_limit,
        single_limit=single_limit)


def _mmyy(yymmdd: bytes) -> bytes:
    """A certificate's expiry (MMYY) from a YYMMDD record date."""
    return yymmdd[1:2] + yymmdd[0:1]


APPROVED = b"00"  # the authorisation response code (8A)


def authorise(purchase: EcashPurchase) -> bytes | None:
    """The demo bank's host answering an authorisation request (an acquirer, for the POS):
    ARPC ‖ ARC when the ARQC is the card's, None (declined) when not."""
    card_key = _demo_card_key(purchase)
    if not cryptogram_holds(purchase, card_key):
        return None
    key = crypto.session_key(card_key, purchase.atc)
    return crypto.arpc(key, purchase.cryptogram, APPROVED) + APPROVED


def verify_cryptogram(purchase: EcashPurchase) -> bool:
    """The demo bank's check of a purchase's ARQC or TC, with its documented master key."""
    return cryptogram_holds(purchase, _demo_card_key(purchase))


def _demo_card_key(purchase: EcashPurchase) -> bytes:
    return crypto.icc_master_key(AC_MASTER, purchase.pan, purchase.psn)


def cryptogram_holds(purchase: EcashPurchase, card_key: bytes) -> bool:
    """Whether the card whose AC key is ``card_key`` computed the purchase's cryptogram over
    its data (the issuer's check at authorisation and at clearing)."""
    key = crypto.session_key(card_key, purchase.atc)
    expected = crypto.application_cryptogram(key, ac_input(dict(purchase.data), purchase.atc,
                                                           purchase.iad))
    return hmac.compare_digest(expected, purchase.cryptogram)
