"""APPLICATION BLOCK (JR/T 0025): how a terminal stops a blacklisted card for good.

A gate that meets a card on the blacklist asks the card for a challenge (GET CHALLENGE),
then sends ``84 1E 00 P2 04 MAC``, the MAC under the card's maintenance key DAMK
(diversified from the issuer's master, which the gate's PSAM holds) chained from that
challenge (:func:`applets.pboc.crypto.maintenance_mac`), so a recorded block replays to
nothing. P2 00 blocks the application until its issuer unblocks it; P2 01 for ever. The
block is one cell written in the command's store transaction: a power cut leaves the card
blocked or not, never half. A blocked purse refuses SELECT: 6A81 (function not supported)
while temporarily blocked, 9303 when permanently, as PBOC terminals expect.
"""

from __future__ import annotations

from applets.apdu import CommandAPDU
from applets.errors import CardError
from applets.pboc import crypto
from applets.pboc.commands import (
    BLOCK_PERMANENT,
    BLOCK_TEMPORARY,
    TAC_SIZE,
    application_block_header,
)
from applets.sw import SW

TEMPORARY, PERMANENT = b"\x01", b"\x02"


def expected(apdu: CommandAPDU, challenge: bytes | None, damk: bytes | None,
             tries: bytes | None) -> tuple[bytes, bytes]:
    """The block an APPLICATION BLOCK asks for (:data:`TEMPORARY` or :data:`PERMANENT`) and
    the MAC it must carry; 6A86 for another P1 P2, 6700 for data that is not a MAC, 6A88
    for a purse without a maintenance key, 6985 without a challenge just before, 6983
    once the key's tries are spent."""
    if apdu.p1 != 0 or apdu.p2 not in (BLOCK_TEMPORARY, BLOCK_PERMANENT):
        raise CardError(SW.INCORRECT_P1_P2, "APPLICATION BLOCK is P1 00, P2 00 or 01")
    if len(apdu.data) != TAC_SIZE:
        raise CardError(SW.WRONG_LENGTH, "APPLICATION BLOCK carries its 4-byte MAC only")
    if damk is None or tries is None:
        raise CardError(SW.REFERENCED_DATA_NOT_FOUND, "this purse has no maintenance key")
    if challenge is None or len(challenge) != 4:
        raise CardError(SW.CONDITIONS_NOT_SATISFIED, "GET CHALLENGE (4 bytes) comes first")
    if tries[0] == 0:
        raise CardError(SW.AUTHENTICATION_METHOD_BLOCKED, "the maintenance key is blocked")
    permanent = apdu.p2 == BLOCK_PERMANENT
    header = application_block_header(permanent)
    return (PERMANENT if permanent else TEMPORARY), crypto.maintenance_mac(damk, challenge, header)


def check_selectable(state: bytes | None) -> None:
    """Refuse SELECT of a blocked application."""
    if state == PERMANENT:
        raise CardError(SW.APPLICATION_PERMANENTLY_LOCKED, "the application is blocked for good")
    if state == TEMPORARY:
        raise CardError(SW.FUNCTION_NOT_SUPPORTED, "the application is blocked by its issuer")
