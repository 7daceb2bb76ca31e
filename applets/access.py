"""The door access card: mutual authentication with a door, then a MACed permission.

AID F0 4B 4F 41 4C 41 02 01: F0 is the ISO/IEC 7816-5 category of unregistered
proprietary AIDs, 4B 4F 41 4C 41 is "KOALA" as in every band-made AID, 02 the
access load file, 01 its module (one instance, named as its module).

=====  ====  =============================  =====  ==========================================
CLA    INS   command                        P1 P2  data -> response data
=====  ====  =============================  =====  ==========================================
00     A4    SELECT (by AID, the runtime)   04 00  AID -> FCI 6F (84 AID, A5 (9F08 version))
80     88    AUTHENTICATE: door challenge   00 00  door id 4, RndD 16
                                                   -> card id 8, RndC 16, card cryptogram 8
80     82    AUTHENTICATE: door proof       00 00  date 4, time 3 (BCD), door cryptogram 8
                                                   -> permission record 12, MAC 8
=====  ====  =============================  =====  ==========================================

Three passes as ISO/IEC 9798-4 mechanism 4 (three-pass mutual authentication
with a cryptographic check function: the first token covers RndD, RndC and
the verifier's identity, the second RndC, RndD), with DESFire EV2's habits:
challenges from both sides, a session key derived from both, CMACs cut to
8 bytes (the values: ``applets/crypto/access.py``). The door's fresh
challenge RndD and the door it stands for go in; the card answers with its
card id (for the door to derive the card's key), its own fresh challenge
RndC and a cryptogram over both; the door answers with its cryptogram over
both and the date and time it vouches for; only then does the card hand out
its permission record for that door, MACed under the session key. The card
says nothing of its permissions before the door has proved the key: an
unauthenticated reader learns the card id only.

Replay fails both ways: replayed door commands meet a new RndC, so their
cryptogram is wrong; replayed card answers meet a new RndD, so the door
finds the card cryptogram wrong. The session lives in RAM for one command:
anything but the door proof, a reselection or a tear ends it.

A wrong door cryptogram costs one try, committed before the refusal (63Cx,
x tries left); at zero the card answers 6983 and proves itself to no door
until the access issuer re-arms it (STORE DATA DGI 0102). A right one
restores the tries, even when the card then holds no permission for that
door. With 64-bit cryptograms and fresh challenges the counter is defence in
depth, as the purse's MAC tries are: it caps online guessing of a door proof
at a few tries between two genuine doors, and a blocked card stops handing
out cryptograms altogether. Its price is a denial of service: any reader in
range can spend the tries with made-up proofs. We accept that for an access
card, which fails closed (the holder is let in by someone) and is re-armed
over the air; a site that would rather not can personalise 15 tries.

The date and time that the door sends are authenticated by its cryptogram
and written, with the door id, into a cyclic entry log (10 entries) in the
same commit as the grant. The card has no clock: the door, not the card,
decides whether the date falls in the permission's window, so an entry is a
permission shown to a door (one outside its window stays shut). The log is for
the band's holder (:meth:`AccessCard.entry_log`): no command reads it, since a
list of the doors its holder went through is nothing a reader should get.

Status words: 6700 wrong length, 6A86 P1-P2, 6985 not personalised or no
challenge before the proof, 6A80 date or time not BCD, 6983 blocked, 63Cx
wrong door cryptogram, 6A88 no permission for this door (after the proof).

Personalisation (STORE DATA from the associated security domain, or
:meth:`AccessCard.personalise` in the factory):

====  =======================================================  =========
DGI   content                                                  encrypted
====  =======================================================  =========
0101  card id (8 bytes)                                        no
0102  authentication tries (1 byte, 1-15)                      no
0103  permissions: 0-16 records of door id 4, valid from 4,    no
      valid until 4 (BCD YYYYMMDD, inclusive)
8101  card key (AES-128), diversified from the site master     under DEK
====  =======================================================  =========

Once personalised, STORE DATA takes 0102 (new limit, tries re-armed) and
0103 (the permission list replaced whole); card id and key stay fixed.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from construct import Bytes, Int8ub, Int32ub, Struct

from applets import bcd, tlv
from applets.apdu import CommandAPDU
from applets.crypto import access as crypto
from applets.crypto.scp03 import Prf
from applets.errors import CardError
from applets.files import Access, EFKind, EFSpec, FileSystem
from applets.iso7816 import CLA_ISO, CLA_PROPRIETARY, Ins, fci
from applets.layout import Layout, LayoutError
from applets.runtime import PERSONALIZED, Applet, AppletContext
from applets.sw import SW

T = TypeVar("T")
ACCESS_AID = bytes.fromhex("F04B4F414C410201")
VERSION = 0x01
#: The two passes take the ISO instructions of the card's and the door's authentication.
INS_CHALLENGE, INS_PROOF = Ins.INTERNAL_AUTHENTICATE, Ins.EXTERNAL_AUTHENTICATE
MAX_PERMISSIONS = 16
MAX_TRIES = 15  # what 63Cx can count
DEFAULT_TRIES = 3
LOG_ENTRIES = 10

CARD_ID, TRIES, PERMISSIONS, KEY = 0x0101, 0x0102, 0x0103, 0x8101
REQUIRED = (CARD_ID, TRIES, PERMISSIONS, KEY)
UPDATABLE = (TRIES, PERMISSIONS)


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

EF_LOG = EFSpec(0x0001, None, EFKind.CYCLIC, record_length=LOG_ENTRY.size, records=LOG_ENTRIES,
                read=Access.NEVER)


# -- personalisation ------------------------------------------------------------------


def _check_date(date: bytes, what: str) -> None:
    try:
        bcd.to_datetime(date, bytes(3))
    except ValueError:
        raise ValueError(f"{what} {date.hex().upper()} is not a BCD date YYYYMMDD") from None


def _check_permissions(permissions: tuple[Permission, ...]) -> None:
    if len(permissions) > MAX_PERMISSIONS:
        raise ValueError(f"a card holds at most {MAX_PERMISSIONS} permissions, "
                         f"got {len(permissions)}")
    doors = [p.door_id for p in permissions]
    if len(set(doors)) != len(doors):
        raise ValueError("a door appears twice in the permissions")
    for permission in permissions:
        PERMISSION.build(permission)  # door id and field sizes
        _check_date(permission.valid_from, "valid-from date")
        _check_date(permission.valid_until, "valid-until date")
        if permission.valid_from > permission.valid_until:
            raise ValueError(f"door {permission.door_id:08X}: the window ends before it starts")


def _check_tries(tries: int) -> None:
    if not 1 <= tries <= MAX_TRIES:
        raise ValueError(f"authentication tries are 1 to {MAX_TRIES}, got {tries}")


@dataclass(frozen=True, slots=True)
class AccessPersonalisation:
    """What the access issuer writes into a fresh card; ValueError if it cannot be."""

    card_id: bytes
    key: bytes
    permissions: tuple[Permission, ...]
    tries: int = DEFAULT_TRIES

    def __post_init__(self) -> None:
        if len(self.card_id) != crypto.CARD_ID_SIZE:
            raise ValueError(f"a card id has {crypto.CARD_ID_SIZE} bytes, got {len(self.card_id)}")
        if len(self.key) != crypto.KEY_SIZE:
            raise ValueError(f"the card key is AES-128, 16 bytes, got {len(self.key)}")
        _check_tries(self.tries)
        _check_permissions(self.permissions)

    @classmethod
    def for_site(cls, site_master: bytes | Prf, card_id: bytes,
                 permissions: tuple[Permission, ...], tries: int = DEFAULT_TRIES,
                 ) -> AccessPersonalisation:
        """A card of the site whose doors hold ``site_master``: its key diversified by card id."""
        return cls(card_id, crypto.card_key(site_master, card_id), permissions, tries)


@dataclass(frozen=True, slots=True)
class AccessUpdate:
    """What the issuer may change on a personalised card; None leaves a part as it is."""

    permissions: tuple[Permission, ...] | None = None
    tries: int | None = None


def _permission_records(data: bytes) -> tuple[Permission, ...]:
    size = PERMISSION.size
    if len(data) % size:
        raise ValueError(f"DGI {PERMISSIONS:04X} holds whole {size}-byte permission records")
    return tuple(PERMISSION.parse(data[i:i + size]) for i in range(0, len(data), size))


def to_dgis(data: AccessPersonalisation,
            encrypt: Callable[[bytes], bytes]) -> list[tuple[int, bytes]]:
    """The DGIs that personalise a card; ``encrypt`` protects the key (the DEK)."""
    return [
        (CARD_ID, data.card_id),
        (TRIES, bytes((data.tries,))),
        (PERMISSIONS, b"".join(PERMISSION.build(p) for p in data.permissions)),
        (KEY, encrypt(data.key)),
    ]


def update_dgis(update: AccessUpdate) -> list[tuple[int, bytes]]:
    """The DGIs that change a personalised card (nothing secret: no DEK needed)."""
    dgis = []
    if update.tries is not None:
        dgis.append((TRIES, bytes((update.tries,))))
    if update.permissions is not None:
        dgis.append((PERMISSIONS, b"".join(PERMISSION.build(p) for p in update.permissions)))
    return dgis


def _unknown(dgis: Mapping[int, bytes], allowed: tuple[int, ...]) -> None:
    unknown = [f"{d:04X}" for d in dgis if d not in allowed]
    if unknown:
        raise ValueError(f"DGI {', '.join(unknown)} is not for this card now")


def _tries(value: bytes) -> int:
    if len(value) != 1:
        raise ValueError(f"DGI {TRIES:04X} is one byte")
    _check_tries(value[0])
    return value[0]


def from_dgis(dgis: Mapping[int, bytes]) -> AccessPersonalisation:
    """The card's contents from plain DGIs; ValueError names what is missing or wrong."""
    missing = [f"{d:04X}" for d in REQUIRED if d not in dgis]
    if missing:
        raise ValueError(f"personalisation lacks DGI {', '.join(missing)}")
    _unknown(dgis, REQUIRED)
    return AccessPersonalisation(dgis[CARD_ID], dgis[KEY], _permission_records(dgis[PERMISSIONS]),
                                 _tries(dgis[TRIES]))


def update_from_dgis(dgis: Mapping[int, bytes]) -> AccessUpdate:
    _unknown(dgis, UPDATABLE)
    permissions = _permission_records(dgis[PERMISSIONS]) if PERMISSIONS in dgis else None
    if permissions is not None:
        _check_permissions(permissions)
    return AccessUpdate(permissions, _tries(dgis[TRIES]) if TRIES in dgis else None)


# -- the applet ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Card:
    card_id: bytes
    tries_limit: int


_CARD = Layout(Struct("card_id" / Bytes(crypto.CARD_ID_SIZE), "tries_limit" / Int8ub), _Card)


@dataclass(frozen=True, slots=True)
class _Session:
    """Between the door's challenge and its proof, in RAM only."""

    door_id: int
    door_challenge: bytes
    card_challenge: bytes
    card_id: bytes
    key: bytes


class AccessCard(Applet):
    """A door access credential: card id, diversified AES key, permissions, entry log."""

    def __init__(self, context: AppletContext) -> None:
        super().__init__(context)
        self.files = FileSystem(context.store, context.prefix, (EF_LOG,))
        self._session: _Session | None = None

    # -- cells ------------------------------------------------------------------

    def _card(self) -> _Card:
        raw = self._get("card")
        if raw is None:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED, "the access card is not personalised")
        return _CARD.parse(raw)

    @property
    def personalised(self) -> bool:
        return self._get("card") is not None

    def _set_permissions(self, permissions: tuple[Permission, ...]) -> None:
        for key in self.context.store.keys(self._cell("perm/")):
            self.context.store.delete(key)
        for permission in permissions:
            self._put(f"perm/{permission.door_id:08X}", PERMISSION.build(permission))

    # -- what the band shows its holder ----------------------------------------------

    def card_id(self) -> bytes:
        return self._card().card_id

    def permissions(self) -> list[Permission]:
        return [PERMISSION.parse(self.context.store.require(key))
                for key in self.context.store.keys(self._cell("perm/"))]

    def tries_left(self) -> int:
        return self.context.store.require(self._cell("tries"))[0]

    def entry_log(self) -> list[LogEntry]:
        """Doors granted, newest first (the band's own display; no reader reads it)."""
        return [LOG_ENTRY.parse(self.files.record(EF_LOG, number))
                for number in range(1, self.files.record_count(EF_LOG) + 1)]

    # -- personalisation -----------------------------------------------------------------

    def personalise(self, data: AccessPersonalisation) -> None:
        """Write card id, key, tries and permissions (pending until the caller commits)."""
        if self.personalised:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED, "the access card is already personalised")
        self._put("card", _CARD.build(_Card(data.card_id, data.tries)))
        self._put("key", data.key)
        self._put("tries", bytes((data.tries,)))
        self._set_permissions(data.permissions)

    def update(self, data: AccessUpdate) -> None:
        """The issuer's later changes: a new permission list, re-armed tries."""
        card = self._card()
        if data.tries is not None:
            self._put("card", _CARD.build(_Card(card.card_id, data.tries)))
            self._put("tries", bytes((data.tries,)))
        if data.permissions is not None:
            self._set_permissions(data.permissions)

    def store_data(self, dgi: int, data: bytes, last: bool) -> None:
        """STORE DATA from the card's security domain: DGIs kept until the last block."""
        if self.personalised and dgi not in UPDATABLE:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED,
                            f"DGI {dgi:04X}: card id and key are fixed at personalisation")
        self._put(f"perso/{dgi:04X}", data)
        if not last:
            return
        received = {int(key.rsplit("/", 1)[1], 16): self.context.store.require(key)
                    for key in self.context.store.keys(self._cell("perso/"))}
        for key in self.context.store.keys(self._cell("perso/")):
            self.context.store.delete(key)
        try:
            if self.personalised:
                self.update(update_from_dgis(received))
                return
            personalisation = from_dgis(received)
        except (ValueError, LayoutError) as error:
            raise CardError(SW.WRONG_DATA, str(error)) from error
        self.personalise(personalisation)
        self.context.card.set_lifecycle(self.aid, PERSONALIZED)

    # -- applet interface ------------------------------------------------------------------

    def select(self, apdu: CommandAPDU) -> bytes:
        self.deselect()
        return fci(self.aid, tlv.encode(0x9F08, bytes((VERSION,))))

    def deselect(self) -> None:
        self._session = None

    def process(self, apdu: CommandAPDU) -> bytes:
        # A session ends with the next command unless that command is the proof.
        session, self._session = self._session, None
        if apdu.cla == CLA_ISO:
            raise CardError(SW.INS_NOT_SUPPORTED, "the access card has no readable files")
        if apdu.cla != CLA_PROPRIETARY:
            raise CardError(SW.CLA_NOT_SUPPORTED)
        if apdu.ins == INS_CHALLENGE:
            return self._challenge(apdu)
        if apdu.ins == INS_PROOF:
            return self._proof(apdu, session)
        raise CardError(SW.INS_NOT_SUPPORTED)

    def _tries(self) -> int:
        tries = self.context.store.require(self._cell("tries"))[0]
        if tries == 0:
            raise CardError(SW.AUTHENTICATION_METHOD_BLOCKED,
                            "blocked after wrong door cryptograms: the issuer re-arms it")
        return tries

    # -- pass 1: the door's challenge -----------------------------------------------------

    def _challenge(self, apdu: CommandAPDU) -> bytes:
        command = _command(apdu, AUTH_COMMAND, "AUTHENTICATE (challenge)")
        card = self._card()
        self._tries()
        card_challenge = self.context.rng(crypto.CHALLENGE_SIZE)
        key = crypto.session_key(self.context.store.require(self._cell("key")),
                                 command.door_challenge, card_challenge)
        cryptogram = crypto.card_cryptogram(key, command.door_challenge, card_challenge,
                                            card.card_id, command.door_id)
        self._session = _Session(command.door_id, command.door_challenge, card_challenge,
                                 card.card_id, key)
        return AUTH_RESPONSE.build(AuthResponse(card.card_id, card_challenge, cryptogram))

    # -- pass 3: the door's proof, and the grant ---------------------------------------------

    def _proof(self, apdu: CommandAPDU, session: _Session | None) -> bytes:
        command = _command(apdu, PROOF_COMMAND, "AUTHENTICATE (proof)")
        if session is None:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED, "no AUTHENTICATE challenge before")
        try:
            bcd.to_datetime(command.date, command.time)
        except ValueError:
            raise CardError(SW.WRONG_DATA, "date and time are BCD YYYYMMDD hhmmss") from None
        expected = crypto.door_cryptogram(session.key, session.door_challenge,
                                          session.card_challenge, session.card_id,
                                          session.door_id, command.date, command.time)
        self._verify(expected, command.cryptogram)
        raw = self._get(f"perm/{session.door_id:08X}")
        if raw is None:
            self.context.store.commit()  # the door proved the key: its restored tries stand
            raise CardError(SW.REFERENCED_DATA_NOT_FOUND, f"no permission for door "
                                                          f"{session.door_id:08X}")
        self.files.append_record(EF_LOG, LOG_ENTRY.build(
            LogEntry(session.door_id, command.date, command.time)))
        return GRANT_RESPONSE.build(GrantResponse(raw, crypto.permission_mac(session.key, raw)))

    def _verify(self, expected: bytes, received: bytes) -> None:
        tries = self._tries()
        if hmac.compare_digest(expected, received):
            limit = self._card().tries_limit
            if tries != limit:
                self._put("tries", bytes((limit,)))
            return
        self._put("tries", bytes((tries - 1,)))
        self.context.store.commit()  # the failure counts even though the command fails
        raise CardError(tries_left_sw(tries - 1), f"wrong door cryptogram; {tries - 1} tries left")


def _command(apdu: CommandAPDU, layout: Layout[T], name: str) -> T:
    if (apdu.p1, apdu.p2) != (0x00, 0x00):
        raise CardError(SW.INCORRECT_P1_P2, f"{name} takes P1 P2 00 00")
    if len(apdu.data) != layout.size:
        raise CardError(SW.WRONG_LENGTH, f"{name} data has {layout.size} bytes")
    return layout.parse(apdu.data)
