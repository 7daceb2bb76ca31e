"""Card keys diversified from an issuer master key, the EMV and VISA2 schemes of GlobalPlatformPro.

An issuer seldom stores each card's ENC, MAC and DEK: it keeps one master key
and derives the card's keys from the 10-byte key diversification data that
opens the card's INITIALIZE UPDATE answer (GP Card Specification v2.3, E.5.1).
GlobalPlatform leaves the derivation to the issuer; these two are the common
ones. Each key is 3DES-ECB under the master key of two blocks, six bytes of
the diversification data followed by F0 or 0F and the key number
(1 = ENC, 2 = MAC, 3 = DEK). The schemes differ only in the six bytes:

* EMV (EMV Card Personalization Specification): div[4:10].
* VISA2: div[0:2] || div[4:8].

These are the byte choices of GlobalPlatformPro's ``emv`` and ``visa2`` KDF
templates (PlaintextKeys.kdf_templates). The results are not parity adjusted;
DES ignores parity bits.
"""

from __future__ import annotations

from applets.crypto.des import encrypt_ecb

DIV_DATA_SIZE = 10
KEY_SIZE = 16
KEY_NUMBERS = (1, 2, 3)  # ENC, MAC, DEK


def _derive(master16: bytes, six: bytes) -> tuple[bytes, bytes, bytes]:
    """Three keys from six chosen bytes: E(six || F0 || n) || E(six || 0F || n) for n = 1, 2, 3."""
    keys = (encrypt_ecb(master16, six + bytes((0xF0, n)) + six + bytes((0x0F, n))) for n in KEY_NUMBERS)
    enc, mac, dek = keys
    return enc, mac, dek


def _check(master16: bytes, div_data10: bytes) -> None:
    if len(master16) != KEY_SIZE:
        raise ValueError(f"the master key must have {KEY_SIZE} bytes, got {len(master16)}")
    if len(div_data10) != DIV_DATA_SIZE:
        raise ValueError(f"the key diversification data has {DIV_DATA_SIZE} bytes, got {len(div_data10)}")


def diversify_emv(master16: bytes, div_data10: bytes) -> tuple[bytes, bytes, bytes]:
    """ENC, MAC and DEK of one card by the EMV CPS scheme: the six bytes are div[4:10]."""
    _check(master16, div_data10)
    return _derive(master16, div_data10[4:10])


def diversify_visa2(master16: bytes, div_data10: bytes) -> tuple[bytes, bytes, bytes]:
    """ENC, MAC and DEK of one card by the VISA2 scheme: the six bytes are div[0:2] || div[4:8]."""
    _check(master16, div_data10)
    return _derive(master16, div_data10[0:2] + div_data10[4:8])
