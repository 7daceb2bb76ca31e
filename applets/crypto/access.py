"""Cryptography of the access card and its doors: one KDF for every key, cryptogram and MAC.

Card, door and access issuer import these functions; nothing else computes
an access-card value. Every value is the NIST SP 800-108r1 KDF in counter
mode (section 4.1) with AES-CMAC as PRF and an 8-bit counter before the
fixed input data, which is ``Label || 00 || Context || [L]_2`` (L in bits):

======================  =================  ===========  =========================================  ===
value                   key (KDK)          label        context                                    L
======================  =================  ===========  =========================================  ===
card key K              site master key    ``ACCESS``   card id (8)                                128
session key S           K                  ``SESSION``  RndD (16) || RndC (16)                     128
card cryptogram         S                  ``CARD``     RndD || RndC || card id || door id (4)     64
door cryptogram         S                  ``DOOR``     RndC || RndD || card id || door id         64
                                                        || date (4) || time (3)
permission MAC          S                  ``GRANT``    permission record (12)                     64
======================  =================  ===========  =========================================  ===

Why so: one PRF and one KDF, already known-answer tested (NIST CAVP KBKDF
vectors, ``tests/vectors/kbkdf_cmac.json``), keep the design small; the
labels separate every use of a key, so no value can stand in for another
(a card cryptogram is never a valid door cryptogram: no reflection); the
session key binds both fresh challenges, so nothing computed in one tap
verifies in another. Output at or below 128 bits is one CMAC block:
``CMAC(key, 01 || label || 00 || context || L)``, as DESFire EV2 derives its
session keys (a CMAC over a fixed layout) and GlobalPlatform SCP03 its
cryptograms (its own SP 800-108 layout, :func:`applets.crypto.scp03.derive`).
"""

from __future__ import annotations

from applets.crypto.scp03 import Prf, counter_kdf

KEY_SIZE = 16
CARD_ID_SIZE = 8
CHALLENGE_SIZE = 16
CRYPTOGRAM_SIZE = 8
MAC_SIZE = 8
DOOR_ID_SIZE = 4

LABEL_CARD_KEY = b"ACCESS"
LABEL_SESSION = b"SESSION"
LABEL_CARD = b"CARD"
LABEL_DOOR = b"DOOR"
LABEL_GRANT = b"GRANT"


def kdf(key: bytes | Prf, label: bytes, context: bytes, length: int) -> bytes:
    """SP 800-108r1 counter-mode KDF, PRF AES-CMAC, r = 8: ``length`` bytes.

    PRF input i: ``[i]_1 || label || 00 || context || [8 * length]_2``. ``key`` is
    an AES key, or its CMAC when the key stays in a key store (an HSM).
    """
    if isinstance(key, bytes) and len(key) != KEY_SIZE:
        raise ValueError(f"access keys are AES-128: 16 bytes, got {len(key)}")
    if not label or b"\x00" in label:
        raise ValueError("a label is non-empty and holds no 00 (the separator)")
    if not 1 <= length <= 0xFF * 16:
        raise ValueError(f"an 8-bit counter derives 1 to 4080 bytes, not {length}")
    return counter_kdf(key, b"", label + b"\x00" + context + (8 * length).to_bytes(2), length)


def card_key(site_master: bytes | Prf, card_id: bytes) -> bytes:
    """The card's own AES key, diversified from the site's master key by card id."""
    _check(card_id, CARD_ID_SIZE, "card id")
    return kdf(site_master, LABEL_CARD_KEY, card_id, KEY_SIZE)


def session_key(key: bytes, door_challenge: bytes, card_challenge: bytes) -> bytes:
    """The key of one authentication, fresh because both sides' challenges are."""
    _check(door_challenge, CHALLENGE_SIZE, "door challenge")
    _check(card_challenge, CHALLENGE_SIZE, "card challenge")
    return kdf(key, LABEL_SESSION, door_challenge + card_challenge, KEY_SIZE)


def card_cryptogram(session: bytes, door_challenge: bytes, card_challenge: bytes,
                    card_id: bytes, door_id: int) -> bytes:
    """The card's proof of its key, over the door's challenge and the door it was asked by."""
    context = door_challenge + card_challenge + card_id + _door(door_id)
    return kdf(session, LABEL_CARD, context, CRYPTOGRAM_SIZE)


def door_cryptogram(session: bytes, door_challenge: bytes, card_challenge: bytes,
                    card_id: bytes, door_id: int, date: bytes, time: bytes) -> bytes:
    """The door's proof of the key, over the card's challenge, vouching for its date and time."""
    _check(date, 4, "date")
    _check(time, 3, "time")
    context = card_challenge + door_challenge + card_id + _door(door_id) + date + time
    return kdf(session, LABEL_DOOR, context, CRYPTOGRAM_SIZE)


def permission_mac(session: bytes, record: bytes) -> bytes:
    """The MAC with which the card hands out a permission record in one session."""
    return kdf(session, LABEL_GRANT, record, MAC_SIZE)


def _door(door_id: int) -> bytes:
    if not 0 <= door_id < 1 << (8 * DOOR_ID_SIZE):
        raise ValueError(f"a door id is 4 bytes, got {door_id}")
    return door_id.to_bytes(DOOR_ID_SIZE)


def _check(value: bytes, size: int, name: str) -> None:
    if len(value) != size:
        raise ValueError(f"the {name} has {size} bytes, got {len(value)}")
