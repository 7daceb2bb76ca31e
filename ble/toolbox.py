"""The LE Secure Connections cryptographic toolbox (Bluetooth Core, Vol 3 Part H, 2.2.5-2.2.9).

The app-layer pairing (:mod:`ble.secure`) repeats LE Secure
Connections' numeric comparison above GATT, with the specification's own
functions, so its commitments, six-digit code and keys are checked against
the specification's sample data. Every function is AES-CMAC (``cryptography``
through :func:`applets.crypto.scp03.aes_cmac`); values are big-endian, most
significant octet first, as the specification writes them.

====  ==========================================================  =============
f4    AES-CMAC_X(U ‖ V ‖ Z): a commitment to a public key         2.2.6
f5    T = AES-CMAC_SALT(W); MacKey, LTK = AES-CMAC_T(i ‖ "btle" ‖   2.2.7
      N1 ‖ N2 ‖ A1 ‖ A2 ‖ 0100), i = 0, 1
f6    AES-CMAC_W(N1 ‖ N2 ‖ R ‖ IOcap ‖ A1 ‖ A2): the DHKey check   2.2.8
g2    AES-CMAC_X(U ‖ V ‖ Y) mod 2^32: the numeric comparison       2.2.9
      value, shown as its last six decimal digits
====  ==========================================================  =============
"""

from __future__ import annotations

from applets.crypto.scp03 import aes_cmac

SALT = bytes.fromhex("6C888391AAF5A53860370BDB5A6083BE")
KEY_ID = b"btle"
CODE_DIGITS = 6


def f4(u: bytes, v: bytes, x: bytes, z: bytes) -> bytes:
    _sizes((u, 32), (v, 32), (x, 16), (z, 1))
    return aes_cmac(x, u + v + z)


def f5(w: bytes, n1: bytes, n2: bytes, a1: bytes, a2: bytes) -> tuple[bytes, bytes]:
    """(MacKey, LTK) from the DHKey ``w``, both nonces and both 7-byte addresses."""
    _sizes((w, 32), (n1, 16), (n2, 16), (a1, 7), (a2, 7))
    t = aes_cmac(SALT, w)
    keys = tuple(aes_cmac(t, bytes((counter,)) + KEY_ID + n1 + n2 + a1 + a2 + b"\x01\x00")
                 for counter in (0, 1))
    return keys[0], keys[1]


def f6(w: bytes, n1: bytes, n2: bytes, r: bytes, io_cap: bytes, a1: bytes, a2: bytes) -> bytes:
    _sizes((w, 16), (n1, 16), (n2, 16), (r, 16), (io_cap, 3), (a1, 7), (a2, 7))
    return aes_cmac(w, n1 + n2 + r + io_cap + a1 + a2)


def g2(u: bytes, v: bytes, x: bytes, y: bytes) -> int:
    _sizes((u, 32), (v, 32), (x, 16), (y, 16))
    return int.from_bytes(aes_cmac(x, u + v + y)[-4:])


def code(value: int) -> str:
    """The six digits both sides show for a g2 value."""
    return f"{value % 10**CODE_DIGITS:0{CODE_DIGITS}d}"


def _sizes(*pairs: tuple[bytes, int]) -> None:
    for value, size in pairs:
        if len(value) != size:
            raise ValueError(f"a toolbox input has {size} bytes, got {len(value)}")
