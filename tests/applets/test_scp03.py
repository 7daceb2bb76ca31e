"""SCP03 (GP 2.3 Amendment D) against published vectors (tests/vectors/scp03.json), plus properties."""

from __future__ import annotations

import pytest

from applets.crypto import scp03
from tests import vectors

H = bytes.fromhex
CMAC = vectors.load("scp03", "cmac")
KCV = vectors.load("scp03", "kcv")
DERIVE_KCV = vectors.load("scp03", "derive_kcv")
KDF3 = vectors.load("scp03", "diversify_kdf3")
SESSIONS = vectors.load("scp03", "session")

KEY = H("404142434445464748494A4B4C4D4E4F")
CHALLENGES = (H("0001020304050607"), H("1011121314151617"))


@pytest.mark.parametrize("v", CMAC, ids=vectors.ids(CMAC))
def test_aes_cmac_sp800_38b(v):
    assert scp03.aes_cmac(H(v["key"]), H(v["message"])) == H(v["tag"])


@pytest.mark.parametrize("v", KCV, ids=vectors.ids(KCV))
def test_key_check_value(v):
    assert scp03.kcv(H(v["key"])) == H(v["kcv"])


@pytest.mark.parametrize("v", DERIVE_KCV, ids=vectors.ids(DERIVE_KCV))
def test_derive_session_key(v):
    key = scp03.derive(H(v["key"]), int(v["constant"], 16), H(v["context"]), v["length_bits"])
    assert scp03.kcv(key) == H(v["kcv"])


@pytest.mark.parametrize("v", vectors.load("scp03", "counter_kdf_kcv"))
def test_counter_kdf(v):
    out = scp03.counter_kdf(H(v["key"]), H(v["prefix"]), H(v["suffix"]), v["length"])
    assert scp03.kcv(out) == H(v["kcv"])


@pytest.mark.parametrize("v", KDF3, ids=vectors.ids(KDF3))
def test_diversify_kdf3(v):
    key = scp03.diversify_kdf3(H(v["master"]), H(v["div_data"]), int(v["constant"], 16))
    assert len(key) == len(H(v["master"]))
    if "key" in v:
        assert key == H(v["key"])
    else:
        assert scp03.kcv(key) == H(v["kcv"])


# -- full sessions ----------------------------------------------------------------------


def _parse(apdu: bytes) -> tuple[bytes, bytes, bool]:
    """A short command APDU: header (4 bytes), data field, whether Le is present."""
    header, body = apdu[:4], apdu[4:]
    if not body:
        return header, b"", False  # case 1
    if len(body) == 1:
        return header, b"", True  # case 2
    lc = body[0]
    if len(body) not in (1 + lc, 2 + lc):
        raise ValueError(f"not a short APDU: {apdu.hex()}")
    return header, body[1:1 + lc], len(body) == 2 + lc  # case 3 / 4


def _wrap(keys: scp03.SessionKeys, level: int, chaining: bytes, counter: int,
          plain: bytes) -> tuple[bytes, bytes]:
    """Host side, the way the traces were made: encrypt, C-MAC, Le '00' if the command had Le."""
    header, data, has_le = _parse(plain)
    if level & 0x02 and data:
        data = scp03.encrypt_command(keys.s_enc, counter, data)
    sm_header = bytes((header[0] & 0xF0 | 0x04, *header[1:4], len(data) + 8))
    mac, chaining = scp03.c_mac(keys.s_mac, chaining, sm_header + data)
    return sm_header + data + mac + (b"\x00" if has_le else b""), chaining


@pytest.mark.parametrize("v", SESSIONS, ids=vectors.ids(SESSIONS))
def test_session_trace(v):
    enc, mac = H(v["enc"]), H(v["mac"])
    init_update = H(v["initialize_update"])
    host_challenge = init_update[5:5 + init_update[4]]
    answer = H(v["initialize_update_response"])
    assert answer[11] == 0x03
    card_challenge, cryptogram, sequence = answer[13:21], answer[21:29], answer[29:32]

    # INITIALIZE UPDATE: pseudo-random challenge (i = 70), session keys, card cryptogram.
    assert answer[12] & 0x10
    assert scp03.pseudo_random_card_challenge(enc, sequence, H(v["aid"])) == card_challenge
    keys = scp03.session_keys(enc, mac, host_challenge, card_challenge)
    assert len(keys.s_enc) == len(keys.s_mac) == len(keys.s_rmac) == len(enc)
    assert scp03.card_cryptogram(keys.s_mac, host_challenge, card_challenge) == cryptogram

    # EXTERNAL AUTHENTICATE: host cryptogram and the first C-MAC on a zero chaining value.
    ext_auth = H(v["external_authenticate"])
    level = ext_auth[2]
    assert ext_auth[5:13] == scp03.host_cryptogram(keys.s_mac, host_challenge, card_challenge)
    ext_mac, chaining = scp03.c_mac(keys.s_mac, scp03.ZERO_CHAINING, ext_auth[:13])
    assert ext_auth[13:] == ext_mac

    for counter, command in enumerate(v["commands"], start=1):
        plain, wrapped = H(command["plain"]), H(command["wrapped"])
        ours, new_chaining = _wrap(keys, level, chaining, counter, plain)
        assert ours == wrapped, f"command {counter}"
        # Card side: the data field decrypts back to the plain one.
        _, sent, _ = _parse(wrapped)
        if level & 0x02:
            assert scp03.decrypt_command(keys.s_enc, counter, sent[:-8]) == _parse(plain)[1]
        if counter == 1:
            _check_first_response(v["first_response"], keys, level, new_chaining)
        chaining = new_chaining


def _check_first_response(response, keys: scp03.SessionKeys, level: int, chaining: bytes) -> None:
    wrapped, plain, sw = H(response["wrapped"]), H(response["plain"]), H(response["sw"])
    if not level & 0x10:
        assert wrapped == plain
        return
    data, mac = wrapped[:-8], wrapped[-8:]
    assert scp03.r_mac(keys.s_rmac, chaining, data + sw) == mac
    if level & 0x20:
        assert scp03.decrypt_response(keys.s_enc, 1, data) == plain
        assert scp03.encrypt_response(keys.s_enc, 1, plain) == data
    else:
        assert data == plain


# -- properties ---------------------------------------------------------------------------


@pytest.mark.parametrize("length", [16, 24, 32])
@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 200])
def test_command_and_response_encryption_round_trip(length, size):
    s_enc, data = bytes(range(length)), bytes(range(size))
    for counter in (1, 2, 0xFFFF):
        sent = scp03.encrypt_command(s_enc, counter, data)
        assert len(sent) == (0 if not data else (size // 16 + 1) * 16)
        assert scp03.decrypt_command(s_enc, counter, sent) == data
        answer = scp03.encrypt_response(s_enc, counter, data)
        assert scp03.decrypt_response(s_enc, counter, answer) == data
        if data:
            assert answer != sent  # the '80' in the ICV block separates the two directions


def test_encryption_depends_on_the_counter():
    s_enc = bytes(16)
    assert scp03.encrypt_command(s_enc, 1, b"x") != scp03.encrypt_command(s_enc, 2, b"x")


def test_wrong_chaining_value_changes_the_macs():
    data = H("84F2200208")
    mac, chaining = scp03.c_mac(KEY, scp03.ZERO_CHAINING, data)
    other, other_chaining = scp03.c_mac(KEY, b"\x01" + bytes(15), data)
    assert mac != other and chaining != other_chaining
    assert len(mac) == 8 and len(chaining) == 16 and chaining[:8] == mac
    assert scp03.r_mac(KEY, chaining, H("9000")) != scp03.r_mac(KEY, other_chaining, H("9000"))


def test_s16_mode():
    host, card = bytes(16), bytes(range(16))
    assert len(scp03.card_cryptogram(KEY, host, card)) == 16
    assert scp03.card_cryptogram(KEY, host, card) != scp03.host_cryptogram(KEY, host, card)
    mac, chaining = scp03.c_mac(KEY, scp03.ZERO_CHAINING, b"", mac_length=16)
    assert mac == chaining
    assert len(scp03.r_mac(KEY, chaining, H("9000"), mac_length=16)) == 16


def test_derive_is_cut_to_l_and_l_is_in_the_input():
    two_blocks = scp03.derive(KEY, scp03.DERIVE_S_ENC, b"ctx", 256)
    assert len(two_blocks) == 32
    assert scp03.derive(KEY, scp03.DERIVE_S_ENC, b"ctx", 128) != two_blocks[:16]


def test_key_encryption_round_trip():
    for key in (bytes(range(16)), bytes(range(24)), bytes(range(32))):
        block = scp03.encrypt_key(KEY, key)
        assert len(block) == -(-len(key) // 16) * 16
        assert scp03.decrypt_key(KEY, block, len(key)) == key


@pytest.mark.parametrize("length", [0, 8, 15, 17, 33])
def test_bad_key_lengths_raise(length):
    key = bytes(length)
    with pytest.raises(ValueError, match="16, 24 or 32"):
        scp03.session_keys(key, KEY, *CHALLENGES)
    with pytest.raises(ValueError, match="16, 24 or 32"):
        scp03.c_mac(key, scp03.ZERO_CHAINING, b"")
    with pytest.raises(ValueError, match="16, 24 or 32"):
        scp03.encrypt_command(key, 1, b"data")
    with pytest.raises(ValueError, match="16, 24 or 32"):
        scp03.kcv(key)
    with pytest.raises(ValueError, match="16, 24 or 32"):
        scp03.diversify_kdf3(key, bytes(10), scp03.KDF3_ENC)


@pytest.mark.parametrize("padded", [
    bytes(16),                          # no '80' at all
    b"abc" + b"\x81" + bytes(12),       # wrong marker
    b"\x80" + bytes(31),                # '80' is not in the last block
    b"abc",                             # not whole blocks
    b"",                                # nothing
])
def test_bad_padding_raises(padded):
    with pytest.raises(ValueError):
        scp03.unpad(padded)


def test_decrypting_garbage_raises():
    s_enc = bytes(16)
    sent = scp03.encrypt_command(s_enc, 1, b"hello")
    with pytest.raises(ValueError, match="padding"):
        scp03.decrypt_command(s_enc, 2, sent)  # wrong counter: the last block garbles
    with pytest.raises(ValueError, match="multiple of 16"):
        scp03.decrypt_response(s_enc, 1, b"short")


@pytest.mark.parametrize(("call", "message"), [
    (lambda: scp03.session_keys(KEY, KEY, bytes(8), bytes(16)), "challenges"),
    (lambda: scp03.card_cryptogram(KEY, bytes(4), bytes(4)), "challenges"),
    (lambda: scp03.c_mac(KEY, bytes(8), b""), "chaining"),
    (lambda: scp03.c_mac(KEY, bytes(16), b"", mac_length=4), "S8"),
    (lambda: scp03.r_mac(KEY, bytes(15), b"\x90\x00"), "chaining"),
    (lambda: scp03.encrypt_command(KEY, 0, b"x"), "counter"),
    (lambda: scp03.encrypt_response(KEY, 1 << 120, b"x"), "counter"),
    (lambda: scp03.pseudo_random_card_challenge(KEY, bytes(2), bytes(8)), "sequence counter"),
    (lambda: scp03.pseudo_random_card_challenge(KEY, bytes(3), bytes(4)), "AID"),
    (lambda: scp03.derive(KEY, 0x04, b"", 12), "L"),
    (lambda: scp03.derive(KEY, 0x100, b"", 128), "constant"),
    (lambda: scp03.diversify_kdf3(KEY, bytes(8), 1), "diversification data"),
    (lambda: scp03.decrypt_key(KEY, bytes(20)), "multiple of 16"),
])
def test_bad_arguments_raise(call, message):
    with pytest.raises(ValueError, match=message):
        call()
