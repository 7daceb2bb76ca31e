"""Over-the-air top-up of the bank card's e-cash balance (圈存), as a resumable state machine.

The phone only carries APDUs, so nothing it says counts unless the card's
cryptogram vouches for it. The card's ARQC (cryptogram version 11,
:mod:`applets.emv.records`) covers its EC balance and what became of the
issuer's last script, which is all this needs:

1. SELECT the e-cash card and GET PROCESSING OPTIONS asking for a cryptogram
   online (one batch): the ARQC proves the balance ``B``.
2. Effect :class:`Debit` (funding → in flight), then EXTERNAL AUTHENTICATE
   with the ARPC and PUT DATA 9F79 = ``B + amount`` under the script MAC (one
   batch; the card takes the script only after the ARPC).
3. Whatever PUT DATA answers (its 9000 carries no MAC), a fresh SELECT and
   GET PROCESSING OPTIONS follow: that ARQC settles (in flight → card).

Only an ARQC decides, because only the card's AC key vouches for it. When
the last transaction the issuer authenticated is the one our script went
with and the card applied a script in it, our balance was set (settle).
When that transaction is older than ours, or the card took our ARPC but no
script, the balance was not set, and the new transaction killed the script
(its MAC is bound to the old ATC): after a lost answer a fresh ARPC and
script follow; after an answer, the proof refunds. When a later online
transaction has overwritten the evidence, nothing is proven and the money
stays held. The funding account is debited once either way.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Protocol

from applets import tlv
from applets.apdu import CommandAPDU, ResponseAPDU
from applets.emv import crypto, dol
from applets.emv.records import (
    CVN_KOALA,
    ECASH_AID,
    ISSUER_DATA,
    PDOL,
    IssuerData,
    ac_input,
    amount,
    fen,
)
from applets.iso7816 import external_authenticate, put_data
from applets.layout import LayoutError
from applets.selection import select
from applets.sw import SW
from issuer.ecash import APPROVED
from issuer.topup import Debit, Effect, Hold, Settle, TopupError, fail, unproven
from reader.flow import Flow, expect
from reader.pos import get_processing_options

#: TTQ: qPBOC, online capable, and a cryptogram online required: the card must not spend.
ONLINE_TTQ = bytes.fromhex("36800000")
CASH_LOAD = 0x60  # transaction type (9C) of an EC load
CNY = bytes.fromhex("0156")


class Step(StrEnum):
    SELECT = "select"
    ARQC = "arqc"
    AUTHENTICATE = "authenticate"
    PUT = "put"
    AWAIT = "await"  # debited, and nothing proves what became of the script: the next contact
    SETTLED = "settled"
    FAILED = "failed"


class CardKeys(Protocol):
    """The card's AC and script MAC master keys (EMV option A from the bank's masters)."""

    def ac_key(self, pan: str, psn: int) -> bytes: ...

    def mac_key(self, pan: str, psn: int) -> bytes: ...


@dataclass(frozen=True, slots=True)
class EcTopup:
    """Everything an EC top-up remembers between two relayed batches."""

    pan: str
    psn: int
    amount: int
    unpredictable_number: bytes
    date: bytes  # YYMMDD of the order, sent in the GPO data
    step: Step = Step.SELECT
    debited: bool = False
    script_atc: int | None = None  # the online transaction our script went with
    arqc: bytes = b""
    target: int = 0  # the balance our PUT DATA sets
    arpc: bytes = b""
    mac: bytes = b""
    answered: bool = False  # the card (or the relay) answered our script

    def resume(self, unpredictable_number: bytes) -> EcTopup:
        """After a broken relay session: start over with a fresh challenge for the card."""
        if self.step in (Step.SETTLED, Step.FAILED):
            return self
        return replace(self, step=Step.SELECT, unpredictable_number=unpredictable_number)


def _gpo_values(fen_amount: int, date: bytes, unpredictable_number: bytes) -> dict[int, bytes]:
    return {0x9F66: ONLINE_TTQ, 0x9F02: amount(fen_amount), 0x9F03: bytes(6),
            0x9F1A: CNY, 0x95: bytes(5), 0x5F2A: CNY, 0x9A: date,
            0x9C: bytes((CASH_LOAD,)), 0x9F37: unpredictable_number,
            0x9F21: bytes(3), 0x9F4E: b"Koala bank OTA"}


def _gpo(values: dict[int, bytes]) -> CommandAPDU:
    return get_processing_options(dol.build(PDOL, values))


SELECT = select(ECASH_AID)
EC_BALANCE = 0x9F79
SCRIPT_MAC_SIZE = 4


def _put_balance(target: int, mac: bytes) -> CommandAPDU:
    """The issuer script: PUT DATA of the EC balance, its MAC after the value."""
    return put_data(EC_BALANCE, amount(target) + mac)


def _put_data(state: EcTopup) -> CommandAPDU:
    return _put_balance(state.target, state.mac)


def commands(state: EcTopup) -> list[CommandAPDU]:
    """The batch to relay at ``state``; empty when the top-up is over."""
    gpo = _gpo(_gpo_values(state.amount, state.date, state.unpredictable_number))
    if state.step is Step.SELECT:
        return [SELECT, gpo]
    if state.step is Step.ARQC:
        return [gpo]
    if state.step is Step.AUTHENTICATE:
        return [external_authenticate(state.arpc + APPROVED), _put_data(state)]
    if state.step is Step.PUT:
        return [_put_data(state)]
    return []


def receive(state: EcTopup, response: ResponseAPDU, keys: CardKeys) -> tuple[EcTopup, Effect]:
    """Advance on the card's answer to the first command of :func:`commands`."""
    if state.step is Step.SELECT:
        if response.sw != SW.OK:
            return unproven(state, f"the band has no e-cash card ({response.sw:04X})")
        return replace(state, step=Step.ARQC), None
    if state.step is Step.ARQC:
        return _after_arqc(state, response, keys)
    if state.step is Step.AUTHENTICATE and response.sw == SW.OK:
        return replace(state, step=Step.PUT), None
    if state.step in (Step.AUTHENTICATE, Step.PUT):
        # No answer here is the card's word: a new ARQC (fresh challenge) tells what happened.
        return replace(state, step=Step.SELECT, answered=True,
                       unpredictable_number=_next_challenge(state)), None
    raise ValueError(f"the top-up is over ({state.step})")


def _next_challenge(state: EcTopup) -> bytes:
    """A new unpredictable number for the proving ARQC: one the card has not answered before
    in this top-up (the ATC check below refuses a replayed ARQC in any case)."""
    return (int.from_bytes(state.unpredictable_number) + 1 & 0xFFFFFFFF).to_bytes(4)


@dataclass(frozen=True, slots=True)
class Arqc:
    """What a verified ARQC vouches for."""

    counter: int  # the ATC
    atc: bytes
    cryptogram: bytes
    data: IssuerData
    balance: int  # fen
    key: bytes  # the AC session key of this ATC, which the ARPC answers under


def verify_arqc(response: ResponseAPDU, values: dict[int, bytes], pan: str, psn: int,
                keys: CardKeys) -> Arqc:
    """The card's answer to GET PROCESSING OPTIONS with ``values``, checked under its AC key;
    :class:`TopupError` unless it is a genuine ARQC of cryptogram version 11."""
    try:
        fields = {item.tag: item.value for item in tlv.iterate(tlv.decode(response.data)[0].value)}
        cid, atc, arqc, iad = fields[0x9F27], fields[0x9F36], fields[0x9F26], fields[0x9F10]
        proven = ISSUER_DATA.parse(iad)
        balance = fen(proven.ec_balance)
    except (tlv.TLVError, IndexError, KeyError, LayoutError, ValueError) as error:
        raise TopupError(f"the card's GPO answer is malformed: {error!r}") from error
    if cid != b"\x80" or proven.cryptogram_version != CVN_KOALA or len(atc) != 2:
        raise TopupError("the card did not answer with an ARQC of cryptogram version 11")
    counter = int.from_bytes(atc)
    key = crypto.session_key(keys.ac_key(pan, psn), counter)
    expected = crypto.application_cryptogram(key, ac_input(values, counter, iad))
    if not hmac.compare_digest(expected, arqc):
        raise TopupError("the ARQC is wrong: not the ordered card, or the relay altered it")
    return Arqc(counter, atc, arqc, proven, balance, key)


def proven_balance(pan: str, psn: int, date: bytes, keys: CardKeys,
                   rng: Callable[[int], bytes]) -> Flow[int | None]:
    """The e-cash balance as the card's ARQC vouches for it (a load of nothing, never
    completed: nothing changes but the ATC); None if the band has no e-cash card."""
    response = yield SELECT
    if response.sw == SW.FILE_NOT_FOUND:
        return None
    expect(response, "SELECT e-cash")
    values = _gpo_values(0, date, rng(4))
    response = yield _gpo(values)
    expect(response, "GET PROCESSING OPTIONS")
    return verify_arqc(response, values, pan, psn, keys).balance


def _after_arqc(state: EcTopup, response: ResponseAPDU,
                keys: CardKeys) -> tuple[EcTopup, Effect]:
    if response.sw != SW.OK:
        return unproven(state, f"GET PROCESSING OPTIONS refused ({response.sw:04X})")
    values = _gpo_values(state.amount, state.date, state.unpredictable_number)
    proof = verify_arqc(response, values, state.pan, state.psn, keys)
    counter, proven, arqc, atc, key = proof.counter, proof.data, proof.cryptogram, proof.atc, proof.key
    if state.script_atc is not None:
        if counter <= state.script_atc:
            raise TopupError("the ARQC is not newer than our script's: a replayed answer")
        if proven.last_issuer_atc == state.script_atc and proven.scripts >= 1:
            return replace(state, step=Step.SETTLED), Settle(state.amount, state.mac)
        if proven.last_issuer_atc > state.script_atc:
            return replace(state, step=Step.AWAIT), Hold(
                "a later online transaction hides what became of the script; the money is "
                "held for the operator to resolve")
        if state.answered:
            return fail(state, "the card did not take the script (proven by its ARQC): refunded")
    target = proof.balance + state.amount
    arpc = crypto.arpc(key, arqc, APPROVED)
    mac_key = crypto.session_key(keys.mac_key(state.pan, state.psn), counter)
    # The script MAC covers the command's CLA INS P1 P2 and Lc, the MAC's own 4 bytes counted.
    header = _put_balance(target, bytes(SCRIPT_MAC_SIZE)).encode()[:5]
    mac = crypto.script_mac(mac_key, header + atc + arqc + amount(target))
    effect = None if state.debited else Debit(state.amount)
    return replace(state, step=Step.AUTHENTICATE, debited=True, script_atc=counter, arqc=arqc,
                   target=target, arpc=arpc, mac=mac), effect


