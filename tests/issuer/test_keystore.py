"""The issuer's key store, over an encrypted file and over a real SoftHSM2 token."""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pkcs11
import pytest
from pkcs11 import Attribute, ObjectClass

from applets.crypto.scp03 import aes_cmac
from applets.gp.keys import TEST_KEY, KeySet
from applets.pboc.crypto import diversify
from issuer import ecash
from issuer.gp import diversified
from issuer.keystore import (
    CARD_MANAGER_DEMO_MASTER,
    DEFAULT_MODULE,
    EncryptedKeyStore,
    KeyExists,
    KeyStore,
    KeyStoreError,
    Pkcs11KeyStore,
    UnknownKey,
    gp_diversifier,
    load_demo_keys,
)
from issuer.products import CANTEEN, PRODUCTS, TRANSIT

TOKEN, PIN, SO_PIN = "koala-test", "1234", "5678"
DIV_DATA = [bytes(8), bytes.fromhex("0000000000000001"), bytes.fromhex("1000000000000001"),
            bytes.fromhex("FFFFFFFFFFFFFFFF"), bytes.fromhex("0123456789ABCDEF")]
DEMO_NAMES = sorted([f"{p}/{r}" for p in PRODUCTS
                     for r in ("purchase", "load", "tac", "maintenance", "gp/enc", "gp/mac", "gp/dek")]
                    + [f"{s}/{r}" for s in ("gp/test", "tsm/gp") for r in ("dek", "enc", "mac")]
                    + ["ecash/ac", "ecash/mac"])
ALL_MASTERS = [TRANSIT.master.purchase, TRANSIT.master.load, TRANSIT.master.tac,
               TRANSIT.master.maintenance, TRANSIT.gp_master,
               CANTEEN.master.purchase, CANTEEN.master.load, CANTEEN.master.tac,
               CANTEEN.master.maintenance, CANTEEN.gp_master,
               TEST_KEY, CARD_MANAGER_DEMO_MASTER, ecash.AC_MASTER, ecash.MAC_MASTER]
SECRET = bytes.fromhex("0F1E2D3C4B5A69788796A5B4C3D2E1F0")  # a key imported only in tests


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A SoftHSM2 token of our own: its own token directory and SOFTHSM2_CONF."""
    if shutil.which("softhsm2-util") is None or not Path(DEFAULT_MODULE).exists():
        pytest.fail("SoftHSM2 is missing: apt-get install softhsm2 (make test does)")
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\n"
                    "log.level = ERROR\n")
    before = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", TOKEN,
                    "--pin", PIN, "--so-pin", SO_PIN], check=True, capture_output=True)
    yield root
    pkcs11.unload(DEFAULT_MODULE)
    if before is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = before


def _empty_token() -> None:
    """Destroy every object on the test token, so each test starts from a blank HSM."""
    with pkcs11.lib(DEFAULT_MODULE).get_token(token_label=TOKEN).open(user_pin=PIN, rw=True) as session:
        for obj in list(session.get_objects()):
            obj.destroy()


@pytest.fixture
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[str], KeyStore]]:
    """Open a store of either backend; the token is emptied and the stores closed afterwards."""
    opened: list[KeyStore] = []
    used_token = False

    def make(backend: str) -> KeyStore:
        nonlocal used_token
        store: KeyStore
        if backend == "file":
            store = EncryptedKeyStore(tmp_path / "issuer")
        else:
            request.getfixturevalue("softhsm")
            if not used_token:
                _empty_token()
                used_token = True
            store = Pkcs11KeyStore(TOKEN, PIN)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()
    if used_token:
        _empty_token()


@pytest.fixture(params=["file", "pkcs11"])
def store(request: pytest.FixtureRequest, make_store: Callable[[str], KeyStore]) -> KeyStore:
    return make_store(request.param)


def _forms(key: bytes) -> list[bytes]:
    """The ways a key could leak into text or bytes."""
    return [key, key.hex().encode(), key.hex().upper().encode(), base64.b64encode(key),
            key[:8].hex().encode(), key[8:].hex().encode()]


def test_pboc_known_answers(store: KeyStore) -> None:
    load_demo_keys(store)
    for product in PRODUCTS.values():
        for role in ("purchase", "load", "tac"):
            master = getattr(product.master, role)
            for d in DIV_DATA:
                assert store.diversify_pboc(f"{product.name}/{role}", d) == diversify(master, d)


def test_backends_agree(make_store: Callable[[str], KeyStore]) -> None:
    file_store, token_store = make_store("file"), make_store("pkcs11")
    for s in (file_store, token_store):
        load_demo_keys(s)
        s.import_key("test/des3", SECRET, "des3")
        s.import_key("test/aes", SECRET, "aes")
    for d in DIV_DATA:
        assert (file_store.diversify_pboc("transit/load", d) == token_store.diversify_pboc("transit/load", d)
                == diversify(TRANSIT.master.load, d))
        assert file_store.diversify_pboc("test/des3", d) == token_store.diversify_pboc("test/des3", d)
    for data in (b"", bytes(range(32)), bytes(17)):
        for name in ("test/aes", "gp/test/mac", "canteen/gp/enc"):
            assert file_store.cmac(name, data) == token_store.cmac(name, data)


def test_cmac_and_band_keys_match_the_card_side(store: KeyStore) -> None:
    load_demo_keys(store)
    data = bytes.fromhex("00112233445566778899AABBCCDDEEFF") * 2
    assert store.cmac("gp/test/enc", data) == aes_cmac(TEST_KEY, data)
    with pytest.raises(KeyStoreError, match="AES master"):
        store.cmac("transit/purchase", data)
    in_clear = diversified(KeySet(0x01, 3, *[TRANSIT.gp_master] * 3), "kdf3")
    in_store = gp_diversifier(store, "transit", 0x01)
    for div in (bytes(10), bytes.fromhex("0102030405060708090A")):
        assert in_store(div) == in_clear(div)


def test_demo_keys_are_named_and_loading_twice_keeps_them(store: KeyStore) -> None:
    load_demo_keys(store)
    load_demo_keys(store)
    assert store.names() == DEMO_NAMES


def test_unknown_names(store: KeyStore) -> None:
    with pytest.raises(UnknownKey):
        store.diversify_pboc("transit/load", bytes(8))
    load_demo_keys(store)
    with pytest.raises(UnknownKey, match="metro/load"):
        store.diversify_pboc("metro/load", bytes(8))
    with pytest.raises(UnknownKey):
        store.cmac("gp/prod/enc", bytes(16))


def test_import_refuses_to_overwrite(store: KeyStore) -> None:
    store.import_key("test/des3", SECRET, "des3")
    with pytest.raises(KeyExists, match="test/des3"):
        store.import_key("test/des3", TRANSIT.master.load, "des3")
    with pytest.raises(KeyStoreError):
        store.import_key("test/des3", SECRET, "aes")
    assert store.diversify_pboc("test/des3", bytes(8)) == diversify(SECRET, bytes(8))
    assert store.names() == ["test/des3"]


def test_import_and_use_are_checked(store: KeyStore) -> None:
    with pytest.raises(KeyStoreError, match="16 bytes"):
        store.import_key("short", SECRET[:8], "des3")
    with pytest.raises(KeyStoreError, match="kind"):
        store.import_key("odd", SECRET, "rsa")  # type: ignore[arg-type]
    with pytest.raises(KeyStoreError, match="name"):
        store.import_key("", SECRET, "aes")
    store.import_key("test/aes", SECRET, "aes")
    with pytest.raises(KeyStoreError, match="3DES"):
        store.diversify_pboc("test/aes", bytes(8))
    load_demo_keys(store)
    with pytest.raises(KeyStoreError, match="8 bytes"):
        store.diversify_pboc("transit/load", bytes(10))
    assert store.names() == sorted([*DEMO_NAMES, "test/aes"])


def test_closed_store_refuses_work(store: KeyStore) -> None:
    load_demo_keys(store)
    store.close()
    with pytest.raises(KeyStoreError, match="closed"):
        store.diversify_pboc("transit/load", bytes(8))
    store.close()  # closing twice is harmless


def test_key_material_is_never_shown_or_logged(store: KeyStore, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    load_demo_keys(store)
    store.import_key("test/des3", SECRET, "des3")
    store.diversify_pboc("test/des3", bytes(8))
    store.diversify_pboc("transit/tac", DIV_DATA[3])
    store.cmac("gp/test/enc", bytes(16))
    with pytest.raises(KeyExists):
        store.import_key("test/des3", SECRET, "des3")
    assert caplog.records, "the store logs its imports"
    text = repr(store) + str(store) + "".join(
        f"{r.getMessage()}{r.args!r}{r.exc_text}" for r in caplog.records)
    for key in [SECRET, *ALL_MASTERS]:
        for form in _forms(key):
            assert form.decode("latin-1") not in text
            assert repr(key) not in text


def test_file_holds_no_key_in_clear(tmp_path: Path) -> None:
    store = EncryptedKeyStore(tmp_path)
    load_demo_keys(store)
    store.import_key("test/des3", SECRET, "des3")
    on_disk = (tmp_path / "keys.json").read_bytes()
    for key in [SECRET, *ALL_MASTERS]:
        for form in _forms(key):
            assert form not in on_disk
    assert sorted(json.loads(on_disk)["keys"]) == sorted([*DEMO_NAMES, "test/des3"])
    assert oct((tmp_path / "kek").stat().st_mode & 0o777) == "0o600"
    assert oct((tmp_path / "keys.json").stat().st_mode & 0o777) == "0o600"
    assert not list(tmp_path.glob(".keys.json.*")), "no temp file is left behind"
    store.close()
    again = EncryptedKeyStore(tmp_path)  # the same KEK file, read back
    assert again.diversify_pboc("test/des3", DIV_DATA[4]) == diversify(SECRET, DIV_DATA[4])


def test_kek_passed_in_and_wrong_kek(tmp_path: Path) -> None:
    kek = os.urandom(32)
    store = EncryptedKeyStore(tmp_path, kek)
    store.import_key("test/aes", SECRET, "aes")
    assert not (tmp_path / "kek").exists()
    assert EncryptedKeyStore(tmp_path, kek).names() == ["test/aes"]
    with pytest.raises(KeyStoreError, match="wrong key-encryption key"):
        EncryptedKeyStore(tmp_path, os.urandom(32))
    with pytest.raises(KeyStoreError, match="wrong key-encryption key"):
        EncryptedKeyStore(tmp_path)  # a fresh KEK file is not the one the keys were sealed with
    with pytest.raises(KeyStoreError, match="32 bytes"):
        EncryptedKeyStore(tmp_path, kek[:16])


def test_kek_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    EncryptedKeyStore(tmp_path).close()
    (tmp_path / "kek").chmod(0o644)
    with pytest.raises(KeyStoreError, match="readable by others"):
        EncryptedKeyStore(tmp_path)


def _tamper(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def _flip(entry: dict[str, Any]) -> None:
    sealed = bytearray.fromhex(entry["sealed"])
    sealed[3] ^= 0x01
    entry["sealed"] = sealed.hex()


@pytest.mark.parametrize("change", [
    pytest.param(lambda d: _flip(d["keys"]["transit/load"]), id="ciphertext"),
    pytest.param(lambda d: d["keys"].__setitem__("transit/load", d["keys"]["canteen/load"]), id="swapped"),
    pytest.param(lambda d: d["keys"]["gp/test/enc"].__setitem__("kind", "des3")
                 or d["keys"].__setitem__("transit/load", d["keys"]["gp/test/enc"]), id="relabelled"),
])
def test_tampered_file_fails_authentication(tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    load_demo_keys(EncryptedKeyStore(tmp_path))
    _tamper(tmp_path / "keys.json", change)
    store = EncryptedKeyStore(tmp_path)
    assert store.diversify_pboc("transit/purchase", bytes(8)) == diversify(TRANSIT.master.purchase, bytes(8))
    with pytest.raises(KeyStoreError, match="failed authentication"):
        store.diversify_pboc("transit/load", bytes(8))


def test_damaged_file_is_a_key_store_error(tmp_path: Path) -> None:
    load_demo_keys(EncryptedKeyStore(tmp_path))
    _tamper(tmp_path / "keys.json", lambda d: _flip(d["kek_check"]))
    with pytest.raises(KeyStoreError, match="wrong key-encryption key"):
        EncryptedKeyStore(tmp_path)
    (tmp_path / "keys.json").write_text("{not json")
    with pytest.raises(KeyStoreError, match="damaged"):
        EncryptedKeyStore(tmp_path)


def test_token_key_is_not_extractable(make_store: Callable[[str], KeyStore]) -> None:
    store = make_store("pkcs11")
    load_demo_keys(store)
    store.import_key("test/des3", SECRET, "des3")
    # The store holds the process's login to the token; this session shares it.
    with pkcs11.lib(DEFAULT_MODULE).get_token(token_label=TOKEN).open() as session:
        for name in ("test/des3", "transit/load", "gp/test/enc"):
            key = session.get_key(object_class=ObjectClass.SECRET_KEY, label=name)
            assert key[Attribute.SENSITIVE] is True
            assert key[Attribute.EXTRACTABLE] is False
            assert key[Attribute.TOKEN] is True
            with pytest.raises(pkcs11.AttributeSensitive):
                key[Attribute.VALUE]
    assert repr(store) == f"Pkcs11KeyStore({TOKEN!r}, module={DEFAULT_MODULE!r})"


def test_token_keys_persist_and_bad_logins_are_refused(make_store: Callable[[str], KeyStore]) -> None:
    first = make_store("pkcs11")
    load_demo_keys(first)
    again = make_store("pkcs11")  # shares the process's login to the token
    with pytest.raises(KeyStoreError, match="PIN"):
        Pkcs11KeyStore(TOKEN, "0000")
    first.close()  # closing one store does not log the other out
    assert again.names() == DEMO_NAMES
    assert again.diversify_pboc("canteen/purchase", DIV_DATA[2]) == diversify(CANTEEN.master.purchase,
                                                                              DIV_DATA[2])
    again.close()
    with pytest.raises(KeyStoreError, match="PIN"):
        Pkcs11KeyStore(TOKEN, "0000")  # refused by the token itself
    reopened = make_store("pkcs11")  # after a full logout the keys are still on the token
    assert reopened.names() == DEMO_NAMES
    with pytest.raises(KeyStoreError, match="no PKCS#11 token"):
        Pkcs11KeyStore("no-such-token", PIN)
    with pytest.raises(KeyStoreError, match="cannot open"):
        Pkcs11KeyStore(TOKEN, PIN, module="/nonexistent/libpkcs11.so")
