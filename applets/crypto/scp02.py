"""GlobalPlatform Secure Channel Protocol '02' (GP Card Specification v2.3, Appendix E).

Every function serves the card and the host alike: the card recomputes what the
host sent and compares. Keys are two-key Triple DES (16 bytes). The session
keys come from the static keys and the 2-byte sequence counter alone (E.4.1),
so one INITIALIZE UPDATE fixes all of them.

The implementation option "i" (E.1.1, Table E-1) says which variant a card
runs; :class:`Options` decodes it. This module implements i = '15' and '55'
(explicit initiation, C-MAC on the modified APDU, ICV zero then encrypted, three
keys; '55' adds the well-known pseudo-random card challenge) and the building
blocks the other explicit variants share. Nothing here implements a cipher:
see :mod:`applets.crypto.des`.
"""

from __future__ import annotations

from dataclasses import dataclass

from applets.crypto.des import (
    BLOCK,
    ZERO_IV,
    decrypt_ecb,
    encrypt_cbc,
    encrypt_ecb,
    mac_algorithm1,
    mac_algorithm3,
    pad_method2,
)

# Session key derivation constants, GP 2.3 E.4.1.
C_MAC = 0x0101
R_MAC = 0x0102
DEK = 0x0181
S_ENC = 0x0182

KEY_SIZE = 16
COUNTER_SIZE = 2
HOST_CHALLENGE_SIZE = 8
CARD_CHALLENGE_SIZE = 6
MAC_SIZE = 8
SM_BIT = 0x04  # CLA bit announcing secure messaging (GP 2.3 11.1.4)

_CONSTANTS = (C_MAC, R_MAC, DEK, S_ENC)


@dataclass(frozen=True, slots=True)
class Options:
    """The SCP02 implementation option "i" decoded bit by bit (GP 2.3 E.1.1, Table E-1)."""

    three_keys: bool  # b1: ENC, MAC, DEK (else one base key)
    mac_on_unmodified_apdu: bool  # b2: C-MAC over the APDU as sent without secure messaging
    explicit: bool  # b3: INITIALIZE UPDATE / EXTERNAL AUTHENTICATE (else implicit)
    icv_mac_over_aid: bool  # b4: first ICV is a MAC over the AID (else zero)
    icv_encryption: bool  # b5: ICV encrypted for the C-MAC session
    r_mac: bool  # b6: R-MAC supported
    pseudo_random_challenge: bool  # b7: well-known pseudo-random card challenge

    @classmethod
    def from_i(cls, i: int) -> Options:
        if not 0 <= i <= 0x7F:
            raise ValueError(f"the SCP02 option i is one byte with b8 clear, got {i:#x}")
        return cls(*(bool(i >> bit & 1) for bit in range(7)))


def _check(name: str, value: bytes, size: int) -> None:
    if len(value) != size:
        raise ValueError(f"{name} must have {size} bytes, got {len(value)}")


def session_key(static_key16: bytes, constant: int, sequence_counter: bytes) -> bytes:
    """A session key: 3DES-CBC, zero IV, of constant || counter || 12 zero bytes (GP 2.3 E.4.1).

    ``constant`` is one of :data:`C_MAC`, :data:`R_MAC` (both from the static
    MAC key), :data:`S_ENC` (ENC key) or :data:`DEK` (DEK key).
    """
    _check("the static key", static_key16, KEY_SIZE)
    _check("the sequence counter", sequence_counter, COUNTER_SIZE)
    if constant not in _CONSTANTS:
        raise ValueError(f"{constant:#06x} is not an SCP02 derivation constant")
    data = constant.to_bytes(2) + sequence_counter + bytes(12)
    return encrypt_cbc(static_key16, data)


def _full_3des_mac(key16: bytes, data: bytes) -> bytes:
    """GP's "full Triple DES MAC" (B.1.2.1): ISO 9797-1 MAC algorithm 1, 3DES, method 2, zero IV."""
    _check("the session key", key16, KEY_SIZE)
    return mac_algorithm1(key16, data, ZERO_IV, padding=2)


def card_cryptogram(s_enc: bytes, host_challenge8: bytes, sequence_counter2: bytes,
                    card_challenge6: bytes) -> bytes:
    """The card's proof of its keys in INITIALIZE UPDATE (GP 2.3 E.4.2.1).

    Full 3DES MAC under S-ENC of host challenge || sequence counter || card challenge.
    """
    _check("the host challenge", host_challenge8, HOST_CHALLENGE_SIZE)
    _check("the sequence counter", sequence_counter2, COUNTER_SIZE)
    _check("the card challenge", card_challenge6, CARD_CHALLENGE_SIZE)
    return _full_3des_mac(s_enc, host_challenge8 + sequence_counter2 + card_challenge6)


def host_cryptogram(s_enc: bytes, sequence_counter2: bytes, card_challenge6: bytes,
                    host_challenge8: bytes) -> bytes:
    """The host's proof in EXTERNAL AUTHENTICATE (GP 2.3 E.4.2.2).

    Full 3DES MAC under S-ENC of sequence counter || card challenge || host challenge.
    """
    _check("the sequence counter", sequence_counter2, COUNTER_SIZE)
    _check("the card challenge", card_challenge6, CARD_CHALLENGE_SIZE)
    _check("the host challenge", host_challenge8, HOST_CHALLENGE_SIZE)
    return _full_3des_mac(s_enc, sequence_counter2 + card_challenge6 + host_challenge8)


def pseudo_random_card_challenge(s_mac16: bytes, aid: bytes) -> bytes:
    """The well-known pseudo-random card challenge of i = '55' (GP 2.3 E.4.2.1, b7 of "i").

    The first 6 bytes of a C-MAC computed with a zero ICV over the AID of the
    selected application, under the C-MAC session key of the coming sequence
    counter: a host can precompute it for offline scripts. Not checked
    against a published vector (none found).
    """
    if not 5 <= len(aid) <= 16:
        raise ValueError(f"an AID has 5 to 16 bytes, got {len(aid)}")
    return c_mac(s_mac16, ZERO_IV, aid)[:CARD_CHALLENGE_SIZE]


def c_mac(s_mac16: bytes, icv8: bytes, data: bytes) -> bytes:
    """The 8-byte C-MAC of one command (GP 2.3 E.4.4): ISO 9797-1 MAC algorithm 3, method 2.

    ``data`` is exactly what the MAC covers, built by the caller. On the
    modified APDU (i = '15', '55'): CLA with :data:`SM_BIT` set, INS, P1, P2,
    Lc counting the C-MAC (plain data length + 8), then the plain command data
    (before C-DECRYPTION encrypts it; no Le). ``icv8`` is 8 zero bytes for
    EXTERNAL AUTHENTICATE, then :func:`next_icv` of the previous C-MAC.
    """
    _check("the C-MAC session key", s_mac16, KEY_SIZE)
    _check("the ICV", icv8, MAC_SIZE)
    return mac_algorithm3(s_mac16, data, icv8, padding=2)


def next_icv(s_mac16: bytes, previous_mac8: bytes, icv_encryption: bool) -> bytes:
    """The ICV of the next C-MAC, from the last C-MAC the card accepted (GP 2.3 E.4.4).

    With "ICV encryption for C-MAC session" (b5 of "i", set in '15' and '55')
    the previous C-MAC goes through single DES under the first 8 bytes of
    S-MAC; without it, it is the ICV as is. The first command of a session
    (EXTERNAL AUTHENTICATE) uses 8 zero bytes instead of this.
    """
    _check("the C-MAC session key", s_mac16, KEY_SIZE)
    _check("the previous C-MAC", previous_mac8, MAC_SIZE)
    return encrypt_ecb(s_mac16[:BLOCK], previous_mac8) if icv_encryption else previous_mac8


def r_mac(s_rmac16: bytes, icv8: bytes, command_and_response: bytes) -> bytes:
    """The 8-byte R-MAC of one command-response pair (GP 2.3 E.4.5), algorithm as C-MAC.

    ``command_and_response`` is the command as the host meant it: CLA (SM bit
    clear), INS, P1, P2, Lc of the plain data (00 if none) and the plain data,
    without C-MAC or Le; then Lr (one byte: the length of the response data
    without R-MAC), the response data and SW1 SW2. ``icv8`` for the first
    response of an R-MAC session is the C-MAC of the command that opened it
    (EXTERNAL AUTHENTICATE with R-MAC in P1, or BEGIN R-MAC SESSION) as sent;
    after that, the previous R-MAC. No ICV encryption here.
    """
    _check("the R-MAC session key", s_rmac16, KEY_SIZE)
    _check("the ICV", icv8, MAC_SIZE)
    return mac_algorithm3(s_rmac16, command_and_response, icv8, padding=2)


def encrypt_command_data(s_enc16: bytes, data: bytes) -> bytes:
    """C-DECRYPTION on the host side (GP 2.3 E.4.6): pad with method 2, 3DES-CBC under S-ENC, zero IV.

    The C-MAC is computed on the plain data first; an empty data field stays empty.
    """
    _check("the S-ENC session key", s_enc16, KEY_SIZE)
    if not data:
        return b""
    return encrypt_cbc(s_enc16, pad_method2(data))


def decrypt_command_data(s_enc16: bytes, data: bytes) -> bytes:
    """C-DECRYPTION on the card side: undo :func:`encrypt_command_data`, strict on the padding."""
    _check("the S-ENC session key", s_enc16, KEY_SIZE)
    if not data:
        return b""
    if len(data) % BLOCK:
        raise ValueError(f"encrypted command data must be whole 8-byte blocks, got {len(data)}")
    plain = _decrypt_cbc(s_enc16, data)
    stripped = plain.rstrip(b"\x00")
    if not stripped or stripped[-1] != 0x80 or len(plain) - len(stripped) >= BLOCK:
        raise ValueError("the decrypted command data does not end in ISO 9797-1 method 2 padding")
    return stripped[:-1]


def _decrypt_cbc(key: bytes, data: bytes) -> bytes:
    """CBC decryption, zero IV, from ECB blocks: des.py offers ECB decryption only."""
    blocks = decrypt_ecb(key, data)
    chain = ZERO_IV + data[:-BLOCK]
    return bytes(a ^ b for a, b in zip(blocks, chain, strict=True))


def encrypt_key(dek16: bytes, key16: bytes) -> bytes:
    """A key for PUT KEY or a key DGI: 3DES-ECB under the DEK (GP 2.3 E.4.7).

    In SCP02 ``dek16`` is the session DEK, :func:`session_key` of the static DEK
    with constant :data:`DEK` and this session's counter, not the static DEK.
    """
    _check("the DEK", dek16, KEY_SIZE)
    _check("the key", key16, KEY_SIZE)
    return encrypt_ecb(dek16, key16)


def decrypt_key(dek16: bytes, encrypted16: bytes) -> bytes:
    """Undo :func:`encrypt_key`: the card recovers a key sent under the session DEK."""
    _check("the DEK", dek16, KEY_SIZE)
    _check("the encrypted key", encrypted16, KEY_SIZE)
    return decrypt_ecb(dek16, encrypted16)


def kcv(key16: bytes) -> bytes:
    """The key check value PUT KEY carries: the first 3 bytes of 3DES-ECB of 8 zero bytes."""
    _check("the key", key16, KEY_SIZE)
    return encrypt_ecb(key16, bytes(BLOCK))[:3]
