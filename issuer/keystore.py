"""The issuer's master keys: named, never stored or logged in clear, usable from an HSM.

The issuer never needs a master key itself, only keys derived from it: a
card's PBOC keys (one-level dispersion with the card's serial) and a band's
GlobalPlatform keys (AES-CMAC of the band's diversification data under the
domain's master, GlobalPlatformPro's KDF3). So a key store
offers *named masters and derivations*, and no way to read a master back:
the same code then runs over an encrypted file in development and over a
PKCS#11 token (SoftHSM2, or a real HSM) where the masters cannot leave it.

Names are ``product/role`` (``transit/load``) and ``<set>/gp/enc|mac|dek``
(``transit/gp/enc``: the transit operator's domain; ``tsm/gp/enc``: the card
managers of the bands this issuer registered; ``gp/test/enc``: GP's test keys
of development bands).
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
import stat
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

import pkcs11
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass

from applets.crypto import scp03
from applets.crypto.scp03 import aes_cmac
from applets.gp.keys import TEST_KEY, KeySet
from applets.pboc import crypto as pboc
from applets.pboc.crypto import dispersion_input
from common.files import atomic_write
from issuer import ecash
from issuer.gp import Diversifier
from issuer.products import PRODUCTS

log = logging.getLogger(__name__)

Kind = Literal["des3", "aes"]
KEY_SIZES: dict[str, tuple[int, ...]] = {"des3": (16,), "aes": (16, 24, 32)}
KEK_SIZE = 32
NONCE_SIZE = 12
FORMAT = "koala-keystore/1"
_KEK_CHECK = b"koala-keystore/kek-check"
DEFAULT_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
#: A card manager's key set that is GlobalPlatform's test keys (a development band's).
TEST_KEY_SET = "test"
#: The key set registration puts on a band's card manager in place of the test keys.
CARD_MANAGER = "tsm"
#: Its documented demo master (AES-128, ENC = MAC = DEK): development issuers only.
CARD_MANAGER_DEMO_MASTER = bytes(range(0x50, 0x60))


class KeyStoreError(Exception):
    """The key store cannot do what was asked (wrong KEK, damaged file, token refused, ...)."""


class UnknownKey(KeyStoreError):
    """No master key of that name."""


class KeyExists(KeyStoreError):
    """A master key of that name is already there: keys are never silently replaced."""


class KeyStore(Protocol):
    def names(self) -> list[str]:
        """The names of the master keys held, sorted."""
        ...

    def diversify_pboc(self, name: str, div_data: bytes) -> bytes:
        """A card's 16-byte key: PBOC one-level dispersion of the 3DES master ``name``."""
        ...

    def cmac(self, name: str, data: bytes) -> bytes:
        """AES-CMAC of ``data`` under the AES master ``name`` (a KDF3 derivation step)."""
        ...

    def import_key(self, name: str, key: bytes, kind: Kind) -> None:
        """Add a master (demo keys, a key ceremony); refuses to replace an existing name."""
        ...

    def close(self) -> None: ...


def _check_import(name: str, key: bytes, kind: str) -> None:
    if not name or not name.isprintable() or len(name) > 64:
        raise KeyStoreError(f"a key name is 1 to 64 printable characters, got {name!r}")
    if kind not in KEY_SIZES:
        raise KeyStoreError(f"a key kind is 'des3' or 'aes', got {kind!r}")
    if len(key) not in KEY_SIZES[kind]:
        raise KeyStoreError(f"a {kind} master key has {' or '.join(map(str, KEY_SIZES[kind]))} bytes, "
                            f"got {len(key)}")


def _check_cmac(name: str, kind: str) -> None:
    if kind != "aes":
        raise KeyStoreError(f"{name} is a {kind} key; CMAC derivations need an AES master")


def _pboc_blocks(name: str, kind: str, div_data: bytes) -> bytes:
    """D ‖ ¬D, whose 3DES encryption is the card key (``applets.pboc.crypto.diversify``)."""
    if kind != "des3":
        raise KeyStoreError(f"{name} is an {kind} key; PBOC dispersion needs a 3DES master")
    if len(div_data) != 8:
        raise KeyStoreError(f"PBOC diversification data has 8 bytes, got {len(div_data)}")
    return dispersion_input(div_data)


class EncryptedKeyStore:
    """Masters in one JSON file, each sealed with AES-256-GCM under a key-encryption key (KEK).

    Each entry's associated data is its name and kind, so an entry copied under
    another name, or relabelled, fails authentication. A check entry sealed
    under the KEK tells a wrong KEK from a damaged key at open. The KEK comes
    from the caller or from ``kek_path`` (default ``<directory>/kek``, created
    0600 if absent): keep it on another medium than the JSON in production.

    Memory trade-off: a master is decrypted at each use and dropped at once,
    rather than cached, at the cost of one AES-GCM open per derivation (a few
    microseconds). Python cannot wipe ``bytes``, so a decrypted master lingers
    in freed memory until reused; the KEK stays in memory until ``close()``.
    Where that matters, use ``Pkcs11KeyStore``. Single writer: two processes
    importing at once may lose one import.
    """

    def __init__(self, directory: Path, kek: bytes | None = None, *, kek_path: Path | None = None) -> None:
        self.path = Path(directory) / "keys.json"
        self._kek = kek if kek is not None else self._kek_from_file(kek_path or Path(directory) / "kek")
        if len(self._kek) != KEK_SIZE:
            raise KeyStoreError(f"the key-encryption key has {KEK_SIZE} bytes, got {len(self._kek)}")
        self._entries: dict[str, dict[str, str]] = {}
        if self.path.exists():
            self._load()
        else:
            self._check = self._seal(_KEK_CHECK, b"")
            self._save()

    def __repr__(self) -> str:
        return f"EncryptedKeyStore({str(self.path)!r}, {len(self._entries)} keys)"

    @staticmethod
    def _kek_from_file(path: Path) -> bytes:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            if stat.S_IMODE(path.stat().st_mode) & 0o077:
                raise KeyStoreError(f"{path} is readable by others; chmod 600 it") from None
            return path.read_bytes()
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(KEK_SIZE))
            handle.flush()
            os.fsync(handle.fileno())
        log.info("created a key-encryption key at %s", path)
        return path.read_bytes()

    def _seal(self, aad: bytes, plaintext: bytes) -> dict[str, str]:
        nonce = secrets.token_bytes(NONCE_SIZE)
        return {"nonce": nonce.hex(), "sealed": AESGCM(self._kek).encrypt(nonce, plaintext, aad).hex()}

    def _open(self, aad: bytes, entry: dict[str, str]) -> bytes:
        try:
            return AESGCM(self._kek).decrypt(bytes.fromhex(entry["nonce"]), bytes.fromhex(entry["sealed"]),
                                             aad)
        except (KeyError, ValueError, TypeError) as exc:
            raise KeyStoreError(f"{self.path} is damaged: {exc}") from None

    @staticmethod
    def _aad(name: str, kind: str) -> bytes:
        return f"{FORMAT}\x00{name}\x00{kind}".encode()

    def _load(self) -> None:
        try:
            document = json.loads(self.path.read_bytes())
            if document.get("format") != FORMAT:
                raise KeyStoreError(f"{self.path} is not a {FORMAT} file")
            self._check, self._entries = document["kek_check"], dict(document["keys"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise KeyStoreError(f"{self.path} is damaged: {exc}") from None
        try:
            self._open(_KEK_CHECK, self._check)
        except InvalidTag:
            raise KeyStoreError(f"wrong key-encryption key for {self.path} (or its check entry "
                                "was altered)") from None

    def _save(self) -> None:
        document = {"format": FORMAT, "kek_check": self._check, "keys": self._entries}
        atomic_write(self.path, json.dumps(document, indent=1, sort_keys=True).encode() + b"\n")

    def _master(self, name: str) -> tuple[str, bytes]:
        if not self._kek:
            raise KeyStoreError(f"{self!r} is closed")
        entry = self._entries.get(name)
        if entry is None:
            raise UnknownKey(f"no master key {name!r}")
        kind = entry.get("kind", "")
        try:
            return kind, self._open(self._aad(name, kind), entry)
        except InvalidTag:
            raise KeyStoreError(f"master key {name!r} in {self.path} failed authentication: the file "
                                "was altered") from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def diversify_pboc(self, name: str, div_data: bytes) -> bytes:
        kind, master = self._master(name)
        _pboc_blocks(name, kind, div_data)
        log.debug("diversified a PBOC card key from %s", name)
        return pboc.diversify(master, div_data)

    def cmac(self, name: str, data: bytes) -> bytes:
        kind, master = self._master(name)
        _check_cmac(name, kind)
        log.debug("AES-CMAC under %s", name)
        return aes_cmac(master, data)

    def import_key(self, name: str, key: bytes, kind: Kind) -> None:
        _check_import(name, key, kind)
        if name in self._entries:
            raise KeyExists(f"master key {name!r} already exists; it is never overwritten")
        self._entries[name] = {"kind": kind, **self._seal(self._aad(name, kind), key)}
        self._save()
        log.info("imported %s master key %s", kind, name)

    def close(self) -> None:
        self._kek = b""
        self._entries = {}


class _TokenLogin:
    """One logged-in session per token and process, shared by the stores open on it.

    PKCS#11 login state belongs to the application, not the session: a second
    C_Login fails with CKR_USER_ALREADY_LOGGED_IN and any C_Logout ends every
    session's login. So stores share one session, counted, and the last to
    close logs out. A later store must present the same PIN (kept only as a
    salted HMAC digest), since the token cannot check it a second time.
    """

    _open: ClassVar[dict[tuple[str, str], _TokenLogin]] = {}
    _salt: ClassVar[bytes] = secrets.token_bytes(32)

    def __init__(self, where: tuple[str, str], session: Any, pin_digest: bytes) -> None:
        self.where, self.session, self.pin_digest, self.users = where, session, pin_digest, 1

    @classmethod
    def acquire(cls, module: str, token_label: str, user_pin: str) -> _TokenLogin:
        where, digest = (module, token_label), hmac.digest(cls._salt, user_pin.encode(), "sha256")
        login = cls._open.get(where)
        if login is not None:
            if not hmac.compare_digest(login.pin_digest, digest):
                raise KeyStoreError(f"the user PIN of token {token_label!r} was refused")
            login.users += 1
            return login
        try:
            session = pkcs11.lib(module).get_token(token_label=token_label).open(user_pin=user_pin, rw=True)
        except pkcs11.NoSuchToken:
            raise KeyStoreError(f"no PKCS#11 token {token_label!r} in {module}") from None
        except pkcs11.PinIncorrect:
            raise KeyStoreError(f"the user PIN of token {token_label!r} was refused") from None
        except pkcs11.UserAlreadyLoggedIn:
            raise KeyStoreError(f"token {token_label!r} is logged in by other code in this process") from None
        except (pkcs11.PKCS11Error, OSError) as exc:
            raise KeyStoreError(f"cannot open token {token_label!r} in {module}: {exc!r}") from None
        cls._open[where] = login = cls(where, session, digest)
        return login

    def release(self) -> None:
        self.users -= 1
        if self.users == 0:
            del self._open[self.where]
            try:
                self.session.close()
            except pkcs11.PKCS11Error as exc:
                log.warning("closing the session on token %s failed: %r", self.where[1], exc)


class Pkcs11KeyStore:
    """Masters as non-extractable secret-key objects on a PKCS#11 token (label = name).

    Derivations are C_Encrypt calls on the token; no call here can read a
    master back (CKA_SENSITIVE, not CKA_EXTRACTABLE). 16-byte two-key 3DES
    masters are stored as CKK_DES3 K1 ‖ K2 ‖ K1, the same cipher.
    """

    def __init__(self, token_label: str, user_pin: str, module: str = DEFAULT_MODULE) -> None:
        self.module, self.token_label = module, token_label
        self._login: _TokenLogin | None = _TokenLogin.acquire(module, token_label, user_pin)

    @property
    def _session(self) -> Any:
        if self._login is None:
            raise KeyStoreError(f"{self!r} is closed")
        return self._login.session

    def __repr__(self) -> str:
        return f"Pkcs11KeyStore({self.token_label!r}, module={self.module!r})"

    def _key(self, name: str) -> tuple[str, Any]:
        try:
            key = self._session.get_key(object_class=ObjectClass.SECRET_KEY, label=name)
        except pkcs11.NoSuchKey:
            raise UnknownKey(f"no master key {name!r} on token {self.token_label!r}") from None
        except pkcs11.MultipleObjectsReturned:
            raise KeyStoreError(f"several objects are labelled {name!r} on token "
                                f"{self.token_label!r}") from None
        return ("aes" if key.key_type == KeyType.AES else "des3"), key

    def _encrypt(self, name: str, key: Any, kind: str, data: bytes) -> bytes:
        mechanism = Mechanism.AES_ECB if kind == "aes" else Mechanism.DES3_ECB
        try:
            return bytes(key.encrypt(data, mechanism=mechanism))
        except pkcs11.PKCS11Error as exc:
            raise KeyStoreError(f"token refused to encrypt under {name!r}: {exc!r}") from None

    def names(self) -> list[str]:
        return sorted(str(obj.label) for obj in self._session.get_objects(
            {Attribute.CLASS: ObjectClass.SECRET_KEY}))

    def diversify_pboc(self, name: str, div_data: bytes) -> bytes:
        kind, key = self._key(name)
        blocks = _pboc_blocks(name, kind, div_data)
        log.debug("diversified a PBOC card key from %s on the token", name)
        return self._encrypt(name, key, kind, blocks)

    def cmac(self, name: str, data: bytes) -> bytes:
        kind, key = self._key(name)
        _check_cmac(name, kind)
        log.debug("AES-CMAC under %s on the token", name)
        try:
            return bytes(key.sign(data, mechanism=Mechanism.AES_CMAC))
        except pkcs11.PKCS11Error as exc:
            raise KeyStoreError(f"token refused a CMAC under {name!r}: {exc!r}") from None

    def import_key(self, name: str, key: bytes, kind: Kind) -> None:
        _check_import(name, key, kind)
        if name in self.names():
            raise KeyExists(f"master key {name!r} already exists on token {self.token_label!r}")
        value = key + key[:8] if kind == "des3" else key
        try:
            self._session.create_object({
                Attribute.CLASS: ObjectClass.SECRET_KEY,
                Attribute.KEY_TYPE: KeyType.DES3 if kind == "des3" else KeyType.AES,
                Attribute.LABEL: name, Attribute.VALUE: value,
                Attribute.TOKEN: True, Attribute.PRIVATE: True,
                Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False,
                Attribute.ENCRYPT: True, Attribute.DECRYPT: False,
                Attribute.SIGN: kind == "aes", Attribute.VERIFY: False,
                Attribute.WRAP: False, Attribute.UNWRAP: False,
            })
        except pkcs11.PKCS11Error as exc:
            raise KeyStoreError(f"token refused to create {name!r}: {exc!r}") from None
        log.info("imported %s master key %s onto token %s", kind, name, self.token_label)

    def close(self) -> None:
        if self._login is not None:
            self._login.release()
            self._login = None


def gp_diversifier(store: KeyStore, key_set: str, version: int) -> Diversifier:
    """A band's SCP03 keys for a domain whose AES-128 masters ``<key_set>/gp/*`` the store holds.

    KDF3 as :func:`issuer.gp.diversified` does it, with every CMAC computed in the store.
    """
    def derive(div_data: bytes) -> KeySet:
        enc, mac, dek = (scp03.diversify_kdf3(partial(store.cmac, f"{key_set}/gp/{role}"),
                                              div_data, constant)
                         for role, constant in (("enc", scp03.KDF3_ENC), ("mac", scp03.KDF3_MAC),
                                                ("dek", scp03.KDF3_DEK)))
        return KeySet(version, 3, enc, mac, dek)

    return derive


def load_demo_keys(store: KeyStore) -> None:
    """Import the documented demo masters (``issuer.products``, the bank's in ``issuer.ecash``,
    the card managers') and the GP test key set.

    Names already present are kept as they are, so this is safe to run at every start.
    """
    present = set(store.names())
    wanted: list[tuple[str, bytes, Kind]] = []
    for product in PRODUCTS.values():
        for role in ("purchase", "load", "tac", "maintenance"):
            wanted.append((f"{product.name}/{role}", getattr(product.master, role), "des3"))
        wanted += [(f"{product.name}/gp/{role}", product.gp_master, "aes")
                   for role in ("enc", "mac", "dek")]
    wanted += [(f"gp/test/{role}", TEST_KEY, "aes") for role in ("enc", "mac", "dek")]
    wanted += [(f"{CARD_MANAGER}/gp/{role}", CARD_MANAGER_DEMO_MASTER, "aes")
               for role in ("enc", "mac", "dek")]
    wanted += [(f"{ecash.PRODUCT}/{role}", key, "des3") for role, key in ecash.MASTERS.items()]
    for name, key, kind in wanted:
        if name not in present:
            store.import_key(name, key, kind)
