"""The door access card's applet: mutual authentication with a door, then a MACed permission
(:mod:`applets.access` tells the story; :mod:`applets.access.wire` holds what goes on the air)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import TypeVar

from construct import Bytes, Int8ub, Struct

from applets import bcd, tlv
from applets.access.perso import (
    UPDATABLE,
    AccessPersonalisation,
    AccessUpdate,
    from_dgis,
    update_from_dgis,
)
from applets.access.wire import (
    AUTH_COMMAND,
    AUTH_RESPONSE,
    GRANT_RESPONSE,
    INS_CHALLENGE,
    INS_PROOF,
    LOG_ENTRY,
    PERMISSION,
    PROOF_COMMAND,
    VERSION,
    AuthResponse,
    GrantResponse,
    LogEntry,
    Permission,
    tries_left_sw,
)
from applets.apdu import CommandAPDU
from applets.crypto import access as crypto
from applets.errors import CardError
from applets.files import Access, EFKind, EFSpec, FileSystem
from applets.iso7816 import CLA_ISO, CLA_PROPRIETARY
from applets.layout import Layout, LayoutError
from applets.registry import PERSONALIZED
from applets.runtime import Applet, AppletContext
from applets.selection import fci
from applets.sw import SW

T = TypeVar("T")
LOG_ENTRIES = 10

EF_LOG = EFSpec(0x0001, None, EFKind.CYCLIC, record_length=LOG_ENTRY.size, records=LOG_ENTRIES,
                read=Access.NEVER)




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
