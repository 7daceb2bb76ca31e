"""What the door access card and a door say to each other: the AID, the instructions, the
three passes' layouts and the try counter's status word (:mod:`applets.access` tells the story)."""

from __future__ import annotations

from dataclasses import dataclass

from construct import Bytes, Int32ub, Struct

from applets.crypto import access as crypto
from applets.iso7816 import Ins
from applets.layout import Layout

ACCESS_AID = bytes.fromhex("F04B4F414C410201")
VERSION = 0x01
#: The two passes take the ISO instructions of the card's and the door's authentication.
INS_CHALLENGE, INS_PROOF = Ins.INTERNAL_AUTHENTICATE, Ins.EXTERNAL_AUTHENTICATE
MAX_PERMISSIONS = 16
MAX_TRIES = 15  # what 63Cx can count
DEFAULT_TRIES = 3



def tries_left_sw(tries: int) -> int:
    """63Cx: verification failed, x further tries allowed (ISO/IEC 7816-4 table 5)."""
    return 0x63C0 | tries




# -- layouts shared with the door ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuthCommand:
    door_id: int
    door_challenge: bytes


AUTH_COMMAND = Layout(Struct(
    "door_id" / Int32ub, "door_challenge" / Bytes(crypto.CHALLENGE_SIZE),
), AuthCommand)


@dataclass(frozen=True, slots=True)
class AuthResponse:
    card_id: bytes
    card_challenge: bytes
    cryptogram: bytes


AUTH_RESPONSE = Layout(Struct(
    "card_id" / Bytes(crypto.CARD_ID_SIZE), "card_challenge" / Bytes(crypto.CHALLENGE_SIZE),
    "cryptogram" / Bytes(crypto.CRYPTOGRAM_SIZE),
), AuthResponse)


@dataclass(frozen=True, slots=True)
class ProofCommand:
    date: bytes
    time: bytes
    cryptogram: bytes


PROOF_COMMAND = Layout(Struct(
    "date" / Bytes(4), "time" / Bytes(3), "cryptogram" / Bytes(crypto.CRYPTOGRAM_SIZE),
), ProofCommand)


@dataclass(frozen=True, slots=True)
class Permission:
    """The holder may open ``door_id`` from ``valid_from`` to ``valid_until`` (BCD, inclusive)."""

    door_id: int
    valid_from: bytes
    valid_until: bytes


PERMISSION = Layout(Struct(
    "door_id" / Int32ub, "valid_from" / Bytes(4), "valid_until" / Bytes(4),
), Permission)


@dataclass(frozen=True, slots=True)
class GrantResponse:
    """A permission record as the card sends it, with its MAC over exactly these bytes."""

    record: bytes
    mac: bytes


GRANT_RESPONSE = Layout(Struct(
    "record" / Bytes(PERMISSION.size), "mac" / Bytes(crypto.MAC_SIZE),
), GrantResponse)


@dataclass(frozen=True, slots=True)
class LogEntry:
    """A door that proved the key and was given its permission, at its date and time."""

    door_id: int
    date: bytes
    time: bytes


LOG_ENTRY = Layout(Struct("door_id" / Int32ub, "date" / Bytes(4), "time" / Bytes(3)), LogEntry)
