"""DES and Triple DES block operations and the ISO/IEC 9797-1 MACs built on them.

All of them wrap ``cryptography``'s TripleDES (its ``decrepit`` module): an
8-byte key is single DES (K1 = K2 = K3), 16 bytes two-key and 24 bytes
three-key Triple DES. Nothing here implements a cipher.
"""

from __future__ import annotations

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

BLOCK = 8
ZERO_IV = bytes(BLOCK)


def _algorithm(key: bytes) -> TripleDES:
    """Single and two-key DES spelled out as the 24-byte keys the library wants."""
    if len(key) == 8:
        key = key * 3
    elif len(key) == 16:
        key = key + key[:8]
    elif len(key) != 24:
        raise ValueError(f"a DES key has 8, 16 or 24 bytes, got {len(key)}")
    return TripleDES(key)


def encrypt_ecb(key: bytes, data: bytes) -> bytes:
    """(Triple) DES ECB encryption of whole blocks."""
    if len(data) % BLOCK:
        raise ValueError(f"ECB data must be a multiple of 8 bytes, got {len(data)}")
    encryptor = Cipher(_algorithm(key), modes.ECB()).encryptor()  # noqa: S305 - block primitive
    return encryptor.update(data) + encryptor.finalize()


def decrypt_ecb(key: bytes, data: bytes) -> bytes:
    if len(data) % BLOCK:
        raise ValueError(f"ECB data must be a multiple of 8 bytes, got {len(data)}")
    decryptor = Cipher(_algorithm(key), modes.ECB()).decryptor()  # noqa: S305 - block primitive
    return decryptor.update(data) + decryptor.finalize()


def encrypt_cbc(key: bytes, data: bytes, iv: bytes = ZERO_IV) -> bytes:
    if len(data) % BLOCK:
        raise ValueError(f"CBC data must be a multiple of 8 bytes, got {len(data)}")
    encryptor = Cipher(_algorithm(key), modes.CBC(iv)).encryptor()
    return encryptor.update(data) + encryptor.finalize()


def pad_method1(data: bytes) -> bytes:
    """ISO/IEC 9797-1 padding method 1: 00 up to a whole block (none if already whole)."""
    return data + bytes(-len(data) % BLOCK) if data else bytes(BLOCK)


def pad_method2(data: bytes) -> bytes:
    """ISO/IEC 9797-1 padding method 2: 80 then 00 up to a whole block (always adds)."""
    padded = data + b"\x80"
    return padded + bytes(-len(padded) % BLOCK)


def _pad(data: bytes, method: int) -> bytes:
    if method == 1:
        return pad_method1(data)
    if method == 2:
        return pad_method2(data)
    raise ValueError(f"ISO/IEC 9797-1 padding method {method} is not supported")


def mac_algorithm1(key: bytes, data: bytes, iv: bytes = ZERO_IV, padding: int = 2) -> bytes:
    """ISO/IEC 9797-1 MAC algorithm 1 (CBC-MAC), padding method 2; the full 8 bytes.

    With an 8-byte session key this is the MAC of JR/T 0025 (PBOC 2.0) e-purse
    transactions; callers keep the leftmost 4 bytes.
    """
    return encrypt_cbc(key, _pad(data, padding), iv)[-BLOCK:]


def mac_algorithm3(key: bytes, data: bytes, iv: bytes = ZERO_IV, padding: int = 2) -> bytes:
    """ISO/IEC 9797-1 MAC algorithm 3 (ANSI X9.19 retail MAC), padding method 2.

    Single DES CBC under K1 over every block, then the last result through
    DES⁻¹ K2 and DES K1: equal to two-key Triple DES of the last chained block.
    """
    if len(key) != 16:
        raise ValueError(f"the retail MAC needs a 16-byte key, got {len(key)}")
    padded = _pad(data, padding)
    chained = encrypt_cbc(key[:8], padded[:-BLOCK], iv)[-BLOCK:] if len(padded) > BLOCK else iv
    last = bytes(a ^ b for a, b in zip(chained, padded[-BLOCK:], strict=True))
    return encrypt_ecb(key, last)
