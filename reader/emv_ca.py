"""The CA public keys a POS terminal trusts for offline data authentication.

A terminal is loaded with the payment systems' published CA public keys,
each named by RID and index and shipped with its SHA-1 check sum over
RID || index || modulus || exponent (EMV Book 2, 11.2), which the terminal
verifies on loading. This terminal trusts one key only: the band's **demo**
CA under UnionPay's RID, whose private half is published in
``issuer/demo_keys/emv_ca_80.pem`` (:mod:`issuer.emv_pki`). No real card
verifies against it, and no real CA key is here.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes

from applets.emv.oda import PublicKey

UNIONPAY_RID = bytes.fromhex("A000000333")
DEMO_INDEX = 0x80

#: (RID, index, modulus, exponent, check sum), as a CA key list publishes them.
_PUBLISHED: tuple[tuple[bytes, int, str, str, str], ...] = (
    (UNIONPAY_RID, DEMO_INDEX,
     "9ABBAC1406FA596023E70E1A126DBD5D8BD1A8BCCC545C50D8C495D6203E9ABC"
     "6116F93FDDDBD0C25CD29C9F5BDDCB9212C1C53BA1C56D46618F87AE15B836B6"
     "847D3CC8AB199462B44BB292F52F4ABCEE2266F3E45186C6505E5780BF3CA159"
     "57DD8508379B1C01EC61CF0EA4ACB214A8E73C9F44AE8F3089739EA14A971792"
     "23D1868B006BC614A47C38A7DA58AB0DFD3047088CC29CBF2050A229E6ACBF32"
     "81D67EF57D1A7E5B4E5154B5478FD11B",
     "03", "D549C9D1E2D1672DF1949CC5E17136FEF441D028"),
)


def checksum(rid: bytes, index: int, key: PublicKey) -> bytes:
    """The CA public key check sum: SHA-1 of RID || index || modulus || exponent."""
    digest = hashes.Hash(hashes.SHA1())  # noqa: S303 - the check sum EMV defines
    digest.update(rid + bytes((index,)) + key.modulus + key.exponent)
    return digest.finalize()


def _load() -> dict[tuple[bytes, int], PublicKey]:
    keys = {}
    for rid, index, modulus, exponent, expected in _PUBLISHED:
        key = PublicKey(bytes.fromhex(modulus), bytes.fromhex(exponent))
        if checksum(rid, index, key) != bytes.fromhex(expected):
            raise ValueError(f"CA key {rid.hex().upper()} {index:02X} fails its check sum")
        keys[(rid, index)] = key
    return keys


#: (RID, CA public key index) -> key: the keys this terminal trusts.
CA_KEYS: dict[tuple[bytes, int], PublicKey] = _load()
