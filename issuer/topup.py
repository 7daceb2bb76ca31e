"""Over-the-air top-up as a resumable state machine, run through an untrusted relay.

The phone only carries APDUs, and the issuer process may die between any
two of them, so the whole state of a top-up is this frozen value, saved with
the order after every step, together with the ledger effect of that step.
Nothing the relay says is believed unless the card's MACs vouch for it:

1. SELECT the purse, check that it is the ordered card.
2. INITIALIZE FOR LOAD: MAC1 (keyed by the card's load key) authenticates
   the balance and the online counter ``c``.
3. Effect :class:`Debit` (funding → in flight), then CREDIT FOR LOAD with MAC2.
4. The TAC proves the credit: effect :class:`Settle` (in flight → card).

If the answer to CREDIT FOR LOAD never arrives, the next contact decides from
authenticated evidence only: GET TRANSACTION PROVE returns the TAC of the
load with counter ``c`` if it was the card's last load (purchases do not
replace it); otherwise a fresh INITIALIZE FOR LOAD gives the current counter
under MAC1. A counter still at ``c`` proves our credit did not happen. A
fresh INITIALIZE also ends the card's load session, so the MAC2 out is dead:
after a lost answer CREDIT goes again with a new MAC2; after an answer that
refused the credit, the proof that it did not happen refunds it. A counter
beyond ``c`` without our TAC proves only that some load happened since: ours,
or a cash load at a station (whose INITIALIZE killed our MAC2) that took slot
``c``. The money stays held (:class:`Hold`) for the operator, who sees the
station's cleared load records.

A status word is not evidence: once a MAC2 may be out, an answer that no key
of the card vouches for (a refusal of SELECT, INITIALIZE or CREDIT, another
card's FCI) settles and refunds nothing. The order stays debited, its money
held in flight (:class:`Hold`), until an authenticated answer decides.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Protocol, TypeVar

from applets import bcd, tlv
from applets.apdu import CommandAPDU, ResponseAPDU
from applets.layout import LayoutError
from applets.pboc import crypto
from applets.pboc.commands import P1_LOAD, credit_for_load, get_transaction_prove, initialize
from applets.pboc.layouts import (
    INIT_LOAD_RESPONSE,
    PROVE_RESPONSE,
    CreditCommand,
    InitCommand,
    IssuerFile,
    TxType,
    fci_issuer_file,
)
from applets.pboc.perso import KEY_INDEX
from applets.selection import select
from applets.sw import SW
from common.money import yuan


class Step(StrEnum):
    SELECT = "select"
    PROVE = "prove"
    INITIALIZE = "initialize"
    CREDIT = "credit"
    AWAIT = "await"  # a MAC2 may be out and nothing proves its fate: wait for the next contact
    SETTLED = "settled"
    FAILED = "failed"


class TopupError(Exception):
    """The card (or the relay) answered something a genuine card would not."""


class CardLoadKeys(Protocol):
    """What the top-up needs from the key store: the card's load and TAC keys."""

    def load_key(self, div_data: bytes) -> bytes: ...

    def tac_key(self, div_data: bytes) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Debit:
    amount: int


@dataclass(frozen=True, slots=True)
class Settle:
    amount: int
    tac: bytes


@dataclass(frozen=True, slots=True)
class Fail:
    reason: str
    refund: int  # what goes back to the funding account (0 if nothing was debited)


@dataclass(frozen=True, slots=True)
class Hold:
    """Debited, and nothing authenticated says what became of it: the money stays in flight."""

    reason: str


Effect = Debit | Settle | Fail | Hold | None


@dataclass(frozen=True, slots=True)
class Topup:
    """Everything a top-up has to remember between two relayed APDUs."""

    aid: bytes
    app_serial: bytes
    amount: int
    terminal_id: bytes
    step: Step = Step.SELECT
    debited: bool = False
    counter: int | None = None  # the online counter our MAC2 was issued for
    date: bytes = b""
    time: bytes = b""
    expected_tac: bytes = b""
    mac2: bytes = b""
    refused: bool = False  # the card's answer to our CREDIT was a refusal, not its TAC

    def resume(self) -> Topup:
        """After a broken relay session: start over, proving first if a MAC2 is out."""
        if self.step in (Step.SETTLED, Step.FAILED):
            return self
        return replace(self, step=Step.SELECT)


def command(state: Topup) -> CommandAPDU | None:
    """The next APDU to relay, None when the top-up is over."""
    if state.step is Step.SELECT:
        return select(state.aid)
    if state.step is Step.PROVE:
        if state.counter is None:
            raise ValueError("a proof needs the counter of the outstanding credit")
        return get_transaction_prove(TxType.EP_LOAD, state.counter)
    if state.step is Step.INITIALIZE:
        return initialize(P1_LOAD, InitCommand(KEY_INDEX, state.amount, state.terminal_id))
    if state.step is Step.CREDIT:
        return credit_for_load(CreditCommand(state.date, state.time, state.mac2))
    return None


def commands(state: Topup) -> list[CommandAPDU]:
    """The batch to relay at once. SELECT goes with what follows it for the ordered card
    (INITIALIZE FOR LOAD, or GET TRANSACTION PROVE when a MAC2 of ours is out): both change
    nothing on a card, so one round trip to the issuer is saved at no risk."""
    first = command(state)
    if first is None:
        return []
    if state.step is not Step.SELECT:
        return [first]
    following = command(replace(state, step=Step.PROVE if state.expected_tac else Step.INITIALIZE))
    return [first] if following is None else [first, following]


def receive(state: Topup, response: ResponseAPDU, keys: CardLoadKeys, now: datetime,
            max_balance: int | None = None) -> tuple[Topup, Effect]:
    """Advance on the card's answer to :func:`command`; the ledger effect to apply with it.
    ``max_balance`` (fen), if known, is named when the card refuses to go over it."""
    if state.step is Step.SELECT:
        return _after_select(state, response)
    if state.step is Step.PROVE:
        return _after_prove(state, response)
    if state.step is Step.INITIALIZE:
        return _after_initialize(state, response, keys, crypto.div_data(state.app_serial), now,
                                 max_balance)
    if state.step is Step.CREDIT:
        return _after_credit(state, response)
    raise ValueError(f"the top-up is over ({state.step})")


def _after_select(state: Topup, response: ResponseAPDU) -> tuple[Topup, Effect]:
    if response.sw != SW.OK:
        return unproven(state, f"the purse did not answer SELECT ({response.sw:04X})")
    issuer = issuer_file(response.data)
    if issuer.app_serial != state.app_serial:
        return unproven(state, "this band holds another card than the one ordered")
    if state.expected_tac:  # a MAC2 of ours is out: first find out what became of it
        return replace(state, step=Step.PROVE), None
    return replace(state, step=Step.INITIALIZE), None


def _after_prove(state: Topup, response: ResponseAPDU) -> tuple[Topup, Effect]:
    if response.sw == SW.OK:
        proof = PROVE_RESPONSE.parse(response.data) if len(response.data) == 8 else None
        if proof is not None and hmac.compare_digest(proof.tac, state.expected_tac):
            return replace(state, step=Step.SETTLED), Settle(state.amount, proof.tac)
    # No proof of our credit: the authenticated counter of a fresh INITIALIZE decides.
    return replace(state, step=Step.INITIALIZE), None


def _after_initialize(state: Topup, response: ResponseAPDU, keys: CardLoadKeys, div: bytes,
                      now: datetime, max_balance: int | None) -> tuple[Topup, Effect]:
    if response.sw == SW.WRONG_DATA:
        limit = f" of {yuan(max_balance)}" if max_balance is not None else ""
        return unproven(state, f"the top-up of {yuan(state.amount)} would take the card over "
                                f"its maximum balance{limit}")
    if response.sw != SW.OK or len(response.data) != INIT_LOAD_RESPONSE.size:
        return unproven(state, f"INITIALIZE FOR LOAD refused ({response.sw:04X})")
    init = INIT_LOAD_RESPONSE.parse(response.data)
    date, time = bcd.date_time(now)
    terminal = crypto.Terminal(state.terminal_id, date, time)
    authorization = crypto.authorize_load(keys.load_key(div), keys.tac_key(div), init.balance,
                                          init.counter, init.random, init.mac1, state.amount,
                                          terminal)
    if authorization is None:
        raise TopupError("MAC1 is wrong: not the ordered card, or the relay altered it")
    if state.counter is not None and init.counter > state.counter:
        # Loads happened since our MAC2, and the card's last one is not ours: ours among them,
        # or a cash load at a station took slot c and our MAC2 died with its INITIALIZE.
        return replace(state, step=Step.AWAIT), Hold(
            "a later load on the card hides what became of the top-up; the money is held for "
            "the operator to resolve from the stations' load records")
    if state.counter is not None and state.refused:
        # Proven: the card refused our credit, and this INITIALIZE ended the MAC2 it refused.
        return fail(state, "the card refused the credit (proven by its counter): refunded")
    expected_tac, mac2 = authorization.expected_tac, authorization.mac2
    effect = None if state.debited else Debit(state.amount)
    next_state = replace(state, step=Step.CREDIT, debited=True, counter=init.counter,
                         date=date, time=time, expected_tac=expected_tac, mac2=mac2)
    return next_state, effect


def _after_credit(state: Topup, response: ResponseAPDU) -> tuple[Topup, Effect]:
    if response.sw == SW.OK and hmac.compare_digest(response.data, state.expected_tac):
        return replace(state, step=Step.SETTLED), Settle(state.amount, response.data)
    if response.sw == SW.OK:
        raise TopupError("the TAC is wrong: the credit cannot be proven")
    # A refusal no key vouches for: ask the card what became of the credit, now.
    return replace(state, step=Step.PROVE, refused=True), None


class Resumable(Protocol):
    """A top-up's state, of either card: its step (with "await" and "failed" among them), its
    amount, and whether the funding account was debited for it."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    @property
    def step(self) -> StrEnum: ...

    @property
    def amount(self) -> int: ...

    @property
    def debited(self) -> bool: ...


S = TypeVar("S", bound=Resumable)


def fail(state: S, reason: str) -> tuple[S, Effect]:
    """Over: what was debited goes back."""
    failed = replace(state, step=type(state.step)("failed"))
    return failed, Fail(reason, state.amount if state.debited else 0)


def unproven(state: S, reason: str) -> tuple[S, Effect]:
    """An answer no key vouches for: it may fail a top-up that moved no money, nothing more."""
    if not state.debited:
        return fail(state, reason)
    return replace(state, step=type(state.step)("await")), Hold(
        f"{reason}; the money is held until the card proves what became of the top-up")


def issuer_file(fci: bytes) -> IssuerFile:
    """The issuer file (tag 9F0C) of a purse's FCI; :class:`TopupError` if it has none."""
    try:
        issuer = fci_issuer_file(fci)
    except (tlv.TLVError, LayoutError) as error:
        raise TopupError(f"the purse's FCI is malformed: {error}") from error
    if issuer is None:
        raise TopupError("the purse's FCI is malformed: it carries no issuer file (9F0C)")
    return issuer
