"""Security domain key sets: what PUT KEY writes and INITIALIZE UPDATE chooses from.

A key set is three keys under one key version number (KVN): ENC, MAC and DEK
(key identifiers 1, 2, 3). Development bands answer to GlobalPlatform's
well-known test keys 404142…4F (KVN FF, chosen by KVN 0 in INITIALIZE UPDATE)
until their owner replaces them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from applets.errors import CardError
from applets.store import Store
from applets.sw import SW

TEST_KEY = bytes(range(0x40, 0x50))
INITIAL_KVN = 0xFF  # the factory key set; the owner's first PUT KEY replaces it
KEY_TYPE_AES = 0x88
KEY_TYPE_DES = 0x80
MAX_AUTH_FAILURES = 10


@dataclass(frozen=True, slots=True)
class KeySet:
    version: int
    scp: int  # 2 (DES keys) or 3 (AES keys)
    enc: bytes
    mac: bytes
    dek: bytes

    def __post_init__(self) -> None:
        sizes = (16,) if self.scp == 2 else (16, 24, 32)
        if self.scp not in (2, 3) or any(len(k) not in sizes for k in (self.enc, self.mac, self.dek)):
            raise ValueError(f"SCP0{self.scp} keys of sizes {len(self.enc)}/{len(self.mac)}/"
                             f"{len(self.dek)} are not allowed")

    @property
    def key_type(self) -> int:
        return KEY_TYPE_AES if self.scp == 3 else KEY_TYPE_DES

    def to_json(self) -> str:
        return json.dumps({"v": self.version, "scp": self.scp, "enc": self.enc.hex(),
                           "mac": self.mac.hex(), "dek": self.dek.hex()})

    @classmethod
    def from_json(cls, raw: bytes) -> KeySet:
        d = json.loads(raw)
        return cls(d["v"], d["scp"], bytes.fromhex(d["enc"]), bytes.fromhex(d["mac"]),
                   bytes.fromhex(d["dek"]))

    @classmethod
    def test_keys(cls, scp: int = 3) -> KeySet:
        """GlobalPlatform's well-known development keys 404142…4F as the initial key set."""
        return cls(INITIAL_KVN, scp, TEST_KEY, TEST_KEY, TEST_KEY)


class KeyStore:
    """The key sets of one security domain, in its part of the store."""

    def __init__(self, store: Store, prefix: str) -> None:
        self._store = store
        self._prefix = f"{prefix}/keys/"
        self._failures = f"{prefix}/auth-failures"

    def versions(self) -> list[int]:
        return sorted(int(k.rsplit("/", 1)[1], 16) for k in self._store.keys(self._prefix))

    def get(self, version: int) -> KeySet:
        """The key set with ``version``; 0 asks for the first one (GP: any)."""
        versions = self.versions()
        if not versions:
            raise CardError(SW.REFERENCED_DATA_NOT_FOUND, "the domain has no keys")
        chosen = versions[0] if version == 0 else version
        raw = self._store.get(f"{self._prefix}{chosen:02X}")
        if raw is None:
            raise CardError(SW.REFERENCED_DATA_NOT_FOUND, f"no key set {chosen:02X}")
        return KeySet.from_json(raw)

    def put(self, keys: KeySet) -> None:
        self._store.put(f"{self._prefix}{keys.version:02X}", keys.to_json().encode())

    def delete(self, version: int) -> None:
        self._store.delete(f"{self._prefix}{version:02X}")

    # -- failed authentications ---------------------------------------------------------

    def failures(self) -> int:
        raw = self._store.get(self._failures)
        return raw[0] if raw else 0

    def set_failures(self, count: int) -> None:
        self._store.put(self._failures, bytes((min(count, 255),)))
