"""A door reader: mutual authentication with the band's access card, then its permission.

The door holds its site's master key (a real door keeps it in a SAM) and
derives each card's key from the card id the card presents
(:func:`applets.crypto.access.card_key`). It talks to the access card only:
it selects :data:`~applets.access.wire.ACCESS_AID` and nothing else, so a payment
card on the same band never sees a door. The commands are those of
``applets/access/``:

1. SELECT the access card; its FCI must name it.
2. AUTHENTICATE (challenge) with the door id and a fresh RndD. The card's
   cryptogram must verify under the key derived from its card id, or the
   card is not one of this site's (or its answer is a replay).
3. AUTHENTICATE (proof) with the door's cryptogram, date and time. The
   permission record that comes back must carry the session MAC, name this
   door and cover today.

Every way the card fails to prove itself ends in :class:`TransactionRefused`
with what the person at the door is told; a card answering outside the
protocol is a :class:`CardProtocolError`.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from applets import bcd, tlv
from applets.access.wire import (
    ACCESS_AID,
    AUTH_COMMAND,
    AUTH_RESPONSE,
    GRANT_RESPONSE,
    INS_CHALLENGE,
    INS_PROOF,
    PERMISSION,
    PROOF_COMMAND,
    AuthCommand,
    Permission,
    ProofCommand,
)
from applets.apdu import CommandAPDU
from applets.crypto import access as crypto
from applets.crypto.scp03 import Prf
from applets.iso7816 import CLA_PROPRIETARY
from applets.runtime import Rng
from applets.selection import DF_NAME
from applets.selection import select as select_by_name
from applets.sw import SW
from reader.clock import Clock, local
from reader.errors import CardProtocolError, TransactionRefused
from reader.flow import Flow, Refusals, exchange, expect, parse
from reader.timing import DEADLINE_TRANSIT_S

DEADLINE_DOOR_S = DEADLINE_TRANSIT_S
"""Someone at a door waits for it as a rider waits for a gate: the transit 300 ms."""

SELECT_REFUSALS: Refusals = {SW.FILE_NOT_FOUND: "no access card on this band"}
_BLOCKED = "access card blocked after wrong door keys: see the access issuer"
CHALLENGE_REFUSALS: Refusals = {
    SW.AUTHENTICATION_METHOD_BLOCKED: _BLOCKED,
    SW.CONDITIONS_NOT_SATISFIED: "access card not personalised: see the access issuer",
}
PROOF_REFUSALS: Refusals = {
    SW.AUTHENTICATION_METHOD_BLOCKED: _BLOCKED,
    SW.REFERENCED_DATA_NOT_FOUND: "no access at this door",
}
NOT_OF_THIS_SITE = "card not recognised at this site"
#: The card found the door's cryptogram wrong although its own verified: the
#: exchange was disturbed or tampered with; it cost the card a try.
DOOR_REJECTED = "the card did not accept this door's proof: tap again"


def select(aid: bytes = ACCESS_AID) -> CommandAPDU:
    return select_by_name(aid)


def challenge(command: AuthCommand) -> CommandAPDU:
    return CommandAPDU(CLA_PROPRIETARY, INS_CHALLENGE, 0x00, 0x00, AUTH_COMMAND.build(command),
                       ne=AUTH_RESPONSE.size)


def proof(command: ProofCommand) -> CommandAPDU:
    return CommandAPDU(CLA_PROPRIETARY, INS_PROOF, 0x00, 0x00, PROOF_COMMAND.build(command),
                       ne=GRANT_RESPONSE.size)


@dataclass(frozen=True, slots=True)
class Admission:
    """A granted tap: who came through which door, when, under which permission."""

    door_id: int
    card_id: bytes
    permission: Permission
    date: bytes
    time: bytes


class DoorReader:
    def __init__(self, door_id: int, site_master_key: bytes | Prf, clock: Clock, rng: Rng,
                 aid: bytes = ACCESS_AID) -> None:
        if not 0 <= door_id <= 0xFFFFFFFF:
            raise ValueError(f"a door id is 4 bytes, got {door_id}")
        if isinstance(site_master_key, bytes) and len(site_master_key) != crypto.KEY_SIZE:
            raise ValueError(f"the site master key is AES-128, 16 bytes, "
                             f"got {len(site_master_key)}")
        self.door_id = door_id
        self.site_master_key = site_master_key
        self.clock = clock
        self.rng = rng
        self.aid = aid
        self.admissions: list[Admission] = []

    def tap(self) -> Flow[Admission]:
        """One band at the door: admitted, or :class:`TransactionRefused` with the reason."""
        date, time = bcd.date_time(local(self.clock()))
        fci = yield from exchange(select(self.aid), "SELECT", SELECT_REFUSALS)
        try:
            named = tlv.find(fci, DF_NAME)
        except tlv.TLVError as exc:
            raise CardProtocolError("SELECT", SW.OK, f"FCI is not BER-TLV: {exc}") from exc
        if named != self.aid:
            raise CardProtocolError("SELECT", SW.OK, "the FCI names another application")

        door_challenge = self.rng(crypto.CHALLENGE_SIZE)
        data = yield from exchange(challenge(AuthCommand(self.door_id, door_challenge)),
                                   "AUTHENTICATE (challenge)", CHALLENGE_REFUSALS)
        card = parse(AUTH_RESPONSE, data, "AUTHENTICATE (challenge)")
        key = crypto.card_key(self.site_master_key, card.card_id)
        session = crypto.session_key(key, door_challenge, card.card_challenge)
        expected = crypto.card_cryptogram(session, door_challenge, card.card_challenge,
                                          card.card_id, self.door_id)
        if not hmac.compare_digest(expected, card.cryptogram):
            raise TransactionRefused(NOT_OF_THIS_SITE)

        ours = crypto.door_cryptogram(session, door_challenge, card.card_challenge, card.card_id,
                                      self.door_id, date, time)
        response = yield proof(ProofCommand(date, time, ours))
        if response.sw & 0xFFF0 == 0x63C0:
            raise TransactionRefused(DOOR_REJECTED)
        grant = parse(GRANT_RESPONSE, expect(response, "AUTHENTICATE (proof)", PROOF_REFUSALS),
                      "AUTHENTICATE (proof)")
        if not hmac.compare_digest(crypto.permission_mac(session, grant.record), grant.mac):
            raise TransactionRefused("the card's permission failed its MAC")
        permission = parse(PERMISSION, grant.record, "permission")
        if permission.door_id != self.door_id:
            raise TransactionRefused("the card's permission is for another door")
        if date < permission.valid_from:
            raise TransactionRefused(f"access here starts on {_day(permission.valid_from)}")
        if date > permission.valid_until:
            raise TransactionRefused(f"access here ended on {_day(permission.valid_until)}")
        admission = Admission(self.door_id, card.card_id, permission, date, time)
        self.admissions.append(admission)
        return admission


def _day(date: bytes) -> str:
    try:
        digits = bcd.decode(date)
    except ValueError:
        return date.hex().upper()
    return f"{digits[:4]}-{digits[4:6]}-{digits[6:]}"
