"""The demo EMV PKI of the band's world: a demo CA, a demo issuer and the cards' certificates.

Both private keys are **demo keys**, generated once for this simulation and
published in ``issuer/demo_keys/``: the CA's under UnionPay's RID A000000333
with index 80 (an index no real UnionPay key uses), the issuer's for the demo
bank of :mod:`issuer.ecash`. They protect nothing and certify no real card;
a terminal trusts the CA only through :data:`reader.emv_ca.CA_KEYS`.

Sizes are the usual ones: a 1408-bit CA key and a 1152-bit issuer key with
exponent 3, and a fresh 1024-bit ICC key per card. Neither key fits its
certificate whole: the issuer's remainder (tag 92) has 4 bytes, a card's
(tag 9F48) 26.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from applets.emv import oda
from applets.emv.records import pan_for_certificate
from reader.emv_ca import DEMO_INDEX, UNIONPAY_RID

DEMO_KEYS = Path(__file__).parent / "demo_keys"
RID = UNIONPAY_RID
CA_INDEX = DEMO_INDEX
#: The demo bank's IIN, the leftmost PAN digits its certificate names (issuer.ecash.BIN).
ISSUER_ID = bytes.fromhex("622588FF")
ISSUER_EXPIRY = bytes.fromhex("1249")  # MMYY: 12/2049, the last month YY can name
ISSUER_SERIAL = bytes.fromhex("000001")
ICC_KEY_SIZE = 1024
ICC_EXPONENT = 3


def _private_key(path: Path) -> rsa.RSAPrivateKey:
    key = load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError(f"{path} is not an RSA private key")
    return key


@dataclass(frozen=True, slots=True)
class DemoPki:
    """The demo CA and issuer keys and the issuer's certificate under the CA."""

    ca_key: rsa.RSAPrivateKey
    issuer_key: rsa.RSAPrivateKey
    issuer_certificate: oda.Certificate
    rid: bytes = RID
    ca_index: int = CA_INDEX

    @classmethod
    def load(cls, directory: Path = DEMO_KEYS) -> DemoPki:
        """The PKI from the committed demo keys; the issuer certificate is made on loading."""
        return _load(directory)

    @property
    def ca_public(self) -> oda.PublicKey:
        return oda.PublicKey.of(self.ca_key)

    @property
    def issuer_public(self) -> oda.PublicKey:
        return oda.PublicKey.of(self.issuer_key)

    def icc_key_and_certificate(self, pan: str, expiry: bytes,
                                static_data: bytes) -> tuple[rsa.RSAPrivateKey, oda.Certificate]:
        """A fresh 1024-bit ICC key pair and its certificate for a card.

        pan: the card's PAN (digits); expiry: MMYY in 2 BCD bytes, no later
        than the issuer certificate's; static_data: the card's static data to
        be authenticated, which the certificate's hash covers.
        """
        key = rsa.generate_private_key(public_exponent=ICC_EXPONENT, key_size=ICC_KEY_SIZE)
        certificate = oda.icc_certificate(self.issuer_key, oda.PublicKey.of(key),
                                          pan_for_certificate(pan), expiry,
                                          secrets.token_bytes(3), static_data)
        return key, certificate


@cache
def _load(directory: Path) -> DemoPki:
    ca_key = _private_key(directory / f"emv_ca_{CA_INDEX:02x}.pem")
    issuer_key = _private_key(directory / "emv_issuer.pem")
    certificate = oda.issuer_certificate(ca_key, oda.PublicKey.of(issuer_key), ISSUER_ID,
                                         ISSUER_EXPIRY, ISSUER_SERIAL)
    return DemoPki(ca_key, issuer_key, certificate)
