"""SCP02 and GlobalPlatform key diversification: published vectors, then properties."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from applets.crypto import gpkeys, scp02
from applets.crypto.des import encrypt_cbc
from tests import vectors

H = bytes.fromhex
TEST_KEY = bytes(range(0x40, 0x50))


def _load(function: str, name: str = "scp02") -> list[dict[str, Any]]:
    return vectors.load(name, function)


SESSION_KEYS = _load("session_key")
SESSION_KCVS = _load("session_key_kcv")
SESSIONS = _load("session")
CHAINS = _load("c_mac_chain")
KEY_SESSION = _load("encrypt_key_session")
EMV_KEYS = _load("diversify_emv_keys", "gp_diversification")


@pytest.mark.parametrize("v", SESSION_KEYS, ids=vectors.ids(SESSION_KEYS))
def test_session_key(v):
    key = scp02.session_key(H(v["static_key"]), int(v["constant"], 16), H(v["sequence_counter"]))
    assert key == H(v["expected"])


@pytest.mark.parametrize("v", SESSION_KCVS, ids=vectors.ids(SESSION_KCVS))
def test_session_key_check_value(v):
    key = scp02.session_key(H(v["static_key"]), int(v["constant"], 16), H(v["sequence_counter"]))
    assert scp02.kcv(key) == H(v["kcv"])


@pytest.mark.parametrize("v", _load("card_cryptogram"), ids=vectors.ids(_load("card_cryptogram")))
def test_card_cryptogram(v):
    cryptogram = scp02.card_cryptogram(H(v["s_enc"]), H(v["host_challenge"]), H(v["sequence_counter"]),
                                       H(v["card_challenge"]))
    assert cryptogram == H(v["expected"])


@pytest.mark.parametrize("v", SESSIONS, ids=vectors.ids(SESSIONS))
def test_explicit_initiation(v):
    """INITIALIZE UPDATE answer checked as the host does; EXTERNAL AUTHENTICATE rebuilt."""
    answer = H(v["init_update_response"])
    counter, card_challenge, cryptogram = answer[12:14], answer[14:20], answer[20:28]
    assert answer[11] == 0x02
    s_enc = scp02.session_key(H(v["enc"]), scp02.S_ENC, counter)
    host_challenge = H(v["host_challenge"])
    assert scp02.card_cryptogram(s_enc, host_challenge, counter, card_challenge) == cryptogram
    if "ext_auth_apdu" not in v:
        return
    apdu = H(v["ext_auth_apdu"])
    header, body, mac = apdu[:5], apdu[5:13], apdu[13:21]
    assert header[:2] == b"\x84\x82" and header[4] == 16
    assert scp02.host_cryptogram(s_enc, counter, card_challenge, host_challenge) == body
    s_mac = scp02.session_key(H(v["mac"]), scp02.C_MAC, counter)
    assert scp02.c_mac(s_mac, bytes(8), header + body) == mac


def _split(plain: bytes) -> tuple[bytes, bytes, bytes]:
    """Header, data and Le of a short command APDU (cases 1 to 4)."""
    header, rest = plain[:4], plain[4:]
    if len(rest) <= 1:
        return header, b"", rest
    return header, rest[1:1 + rest[0]], rest[1 + rest[0]:]


@pytest.mark.parametrize("v", CHAINS, ids=vectors.ids(CHAINS))
def test_c_mac_chain_with_icv_encryption(v):
    s_mac = scp02.session_key(H(v["mac"]), scp02.C_MAC, H(v["sequence_counter"]))
    last = H(v["first_mac"])
    for command in v["commands"]:
        header, data, le = _split(H(command["plain"]))
        mac_header = bytes((header[0] | scp02.SM_BIT, *header[1:], len(data) + 8))
        icv = scp02.next_icv(s_mac, last, icv_encryption=v["icv_encryption"])
        last = scp02.c_mac(s_mac, icv, mac_header + data)
        assert mac_header + data + last + le == H(command["wrapped"])


@pytest.mark.parametrize("v", _load("encrypt_key"), ids=vectors.ids(_load("encrypt_key")))
def test_key_encryption_under_a_session_dek(v):
    assert scp02.encrypt_key(H(v["dek"]), H(v["key"])) == H(v["expected"])
    assert scp02.decrypt_key(H(v["dek"]), H(v["expected"])) == H(v["key"])


@pytest.mark.parametrize("v", KEY_SESSION, ids=vectors.ids(KEY_SESSION))
def test_key_encryption_derives_the_session_dek(v):
    dek = scp02.session_key(H(v["static_dek"]), scp02.DEK, H(v["sequence_counter"]))
    assert scp02.encrypt_key(dek, H(v["key"])) == H(v["expected"])
    assert scp02.decrypt_key(dek, H(v["expected"])) == H(v["key"])


@pytest.mark.parametrize("v", _load("r_mac"), ids=vectors.ids(_load("r_mac")))
def test_r_mac(v):
    s_rmac = scp02.session_key(H(v["mac"]), scp02.R_MAC, H(v["sequence_counter"]))
    response = H(v["response_data"])
    data = H(v["command"]) + bytes((len(response),)) + response + H(v["sw"])
    assert scp02.r_mac(s_rmac, H(v["icv"]), data) == H(v["expected"])


@pytest.mark.parametrize("v", _load("kcv"), ids=vectors.ids(_load("kcv")))
def test_kcv(v):
    assert scp02.kcv(H(v["key"])) == H(v["expected"])


# -- master key diversification -------------------------------------------------------------


@pytest.mark.parametrize("v", EMV_KEYS, ids=vectors.ids(EMV_KEYS))
def test_emv_diversification(v):
    keys = gpkeys.diversify_emv(H(v["master"]), H(v["div_data"]))
    assert keys == (H(v["enc"]), H(v["mac"]), H(v["dek"]))


@pytest.mark.parametrize(("function", "scheme"), [("diversify_emv_kcv", gpkeys.diversify_emv),
                                                  ("diversify_visa2_kcv", gpkeys.diversify_visa2)])
def test_diversified_key_check_values(function, scheme):
    cases = vectors.load("gp_diversification", function)
    assert cases
    for v in cases:
        keys = scheme(H(v["master"]), H(v["div_data"]))
        assert tuple(scp02.kcv(k) for k in keys) == (H(v["enc"]), H(v["mac"]), H(v["dek"]))


def test_emv_and_visa2_read_different_bytes():
    # EMV ignores div[0:4]; VISA2 ignores div[2:4] and div[8:10].
    div = bytes(range(10))
    changed_head = bytes((0xFF,)) + div[1:]
    changed_tail = div[:8] + b"\xff\xff"
    assert gpkeys.diversify_emv(TEST_KEY, changed_head) == gpkeys.diversify_emv(TEST_KEY, div)
    assert gpkeys.diversify_visa2(TEST_KEY, changed_tail) == gpkeys.diversify_visa2(TEST_KEY, div)
    assert gpkeys.diversify_visa2(TEST_KEY, changed_head) != gpkeys.diversify_visa2(TEST_KEY, div)
    assert gpkeys.diversify_emv(TEST_KEY, changed_tail) != gpkeys.diversify_emv(TEST_KEY, div)


@pytest.mark.parametrize("scheme", [gpkeys.diversify_emv, gpkeys.diversify_visa2])
@pytest.mark.parametrize(("master", "div"), [(bytes(8), bytes(10)), (TEST_KEY, bytes(9)),
                                             (TEST_KEY, bytes(11)), (TEST_KEY + bytes(8), bytes(10))])
def test_diversification_rejects_bad_lengths(scheme, master, div):
    with pytest.raises(ValueError, match="bytes"):
        scheme(master, div)


# -- properties -------------------------------------------------------------------------------

keys16 = st.binary(min_size=16, max_size=16)
blocks8 = st.binary(min_size=8, max_size=8)


@given(keys16, st.binary(max_size=64))
def test_command_data_round_trip(key, data):
    encrypted = scp02.encrypt_command_data(key, data)
    assert len(encrypted) % 8 == 0 and (len(encrypted) > len(data) or not data)
    assert scp02.decrypt_command_data(key, encrypted) == data


@given(keys16, keys16)
def test_key_round_trip(dek, key):
    assert scp02.decrypt_key(dek, scp02.encrypt_key(dek, key)) == key


@pytest.mark.parametrize("plain", [bytes(8), b"\x01" * 8, b"\x01" * 7 + b"\x80" + bytes(8)],
                         ids=["all-zero", "no-80", "padding-over-a-block"])
def test_decryption_refuses_bad_padding(plain):
    key = scp02.session_key(TEST_KEY, scp02.S_ENC, b"\x00\x01")
    with pytest.raises(ValueError, match="padding"):
        scp02.decrypt_command_data(key, encrypt_cbc(key, plain))


def test_decryption_refuses_partial_blocks():
    with pytest.raises(ValueError, match="8-byte blocks"):
        scp02.decrypt_command_data(TEST_KEY, bytes(12))


@given(keys16, blocks8, blocks8, st.binary(max_size=40))
def test_icv_chaining_changes_the_mac(key, mac_a, mac_b, data):
    header = b"\x84\xf2\x40\x00" + bytes((len(data) + 8,))
    first = scp02.c_mac(key, bytes(8), header + data)
    icv_a = scp02.next_icv(key, mac_a, icv_encryption=True)
    if mac_a != mac_b:
        assert scp02.c_mac(key, icv_a, header + data) != scp02.c_mac(
            key, scp02.next_icv(key, mac_b, icv_encryption=True), header + data)
    assert scp02.next_icv(key, mac_a, icv_encryption=False) == mac_a
    if icv_a != bytes(8):
        assert scp02.c_mac(key, icv_a, header + data) != first


def test_icv_encryption_is_single_des_under_the_left_half():
    s_mac = scp02.session_key(TEST_KEY, scp02.C_MAC, b"\x00\x00")
    mac = bytes(range(8))
    swapped = s_mac[:8] + bytes(8)  # the right half must not matter
    assert scp02.next_icv(s_mac, mac, icv_encryption=True) == scp02.next_icv(swapped, mac, True)
    assert scp02.next_icv(s_mac, mac, icv_encryption=True) != mac


def test_cryptograms_bind_both_challenges():
    s_enc = scp02.session_key(TEST_KEY, scp02.S_ENC, b"\x00\x2a")
    host, card, counter = bytes(range(8)), bytes(range(10, 16)), b"\x00\x2a"
    card_side = scp02.card_cryptogram(s_enc, host, counter, card)
    host_side = scp02.host_cryptogram(s_enc, counter, card, host)
    assert card_side != host_side
    assert scp02.card_cryptogram(s_enc, bytes(8), counter, card) != card_side


def test_r_mac_chains_like_c_mac_without_encryption():
    s_rmac = scp02.session_key(TEST_KEY, scp02.R_MAC, b"\x00\x01")
    data = bytes.fromhex("80CA006600") + b"\x00\x90\x00"
    assert scp02.r_mac(s_rmac, bytes(8), data) != scp02.r_mac(s_rmac, b"\x01" * 8, data)
    assert scp02.r_mac(s_rmac, bytes(8), data) == scp02.c_mac(s_rmac, bytes(8), data)


def test_pseudo_random_card_challenge_is_deterministic():
    s_mac = scp02.session_key(TEST_KEY, scp02.C_MAC, b"\x00\x05")
    aid = bytes.fromhex("A000000151000000")
    challenge = scp02.pseudo_random_card_challenge(s_mac, aid)
    assert len(challenge) == 6
    assert challenge == scp02.pseudo_random_card_challenge(s_mac, aid)
    assert challenge != scp02.pseudo_random_card_challenge(s_mac, aid[:-1] + b"\x01")
    with pytest.raises(ValueError, match="AID"):
        scp02.pseudo_random_card_challenge(s_mac, bytes(4))


@pytest.mark.parametrize(("i", "expected"), [
    (0x15, scp02.Options(True, False, True, False, True, False, False)),
    (0x55, scp02.Options(True, False, True, False, True, False, True)),
    (0x0A, scp02.Options(False, True, False, True, False, False, False)),
])
def test_options_from_i(i, expected):
    assert scp02.Options.from_i(i) == expected


def test_options_reject_more_than_seven_bits():
    with pytest.raises(ValueError, match="one byte"):
        scp02.Options.from_i(0x80)


@pytest.mark.parametrize("call", [
    lambda: scp02.session_key(bytes(8), scp02.S_ENC, b"\x00\x00"),
    lambda: scp02.session_key(TEST_KEY, scp02.S_ENC, b"\x00"),
    lambda: scp02.session_key(TEST_KEY, 0x0183, b"\x00\x00"),
    lambda: scp02.card_cryptogram(TEST_KEY, bytes(7), b"\x00\x00", bytes(6)),
    lambda: scp02.card_cryptogram(TEST_KEY, bytes(8), b"\x00\x00", bytes(8)),
    lambda: scp02.host_cryptogram(TEST_KEY, b"\x00\x00", bytes(6), bytes(9)),
    lambda: scp02.host_cryptogram(bytes(24), b"\x00\x00", bytes(6), bytes(8)),
    lambda: scp02.c_mac(TEST_KEY, bytes(7), b""),
    lambda: scp02.c_mac(bytes(8), bytes(8), b""),
    lambda: scp02.next_icv(TEST_KEY, bytes(9), icv_encryption=True),
    lambda: scp02.r_mac(TEST_KEY, bytes(16), b""),
    lambda: scp02.encrypt_command_data(bytes(8), b"x"),
    lambda: scp02.encrypt_key(TEST_KEY, bytes(8)),
    lambda: scp02.decrypt_key(TEST_KEY, bytes(24)),
    lambda: scp02.kcv(bytes(8)),
])
def test_bad_lengths_raise(call):
    with pytest.raises(ValueError, match=r"bytes|constant"):
        call()
