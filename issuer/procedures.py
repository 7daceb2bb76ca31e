"""What each kind of order sends to the card: the top-up state machine and the card-management scripts.

Registration is two kinds of order, proven like the others: ``rekey`` takes
the band's card manager over (:func:`issuer.issuance.take_card_manager`),
and ``register`` takes a card made elsewhere over at the balance the card
proves under its own keys (MAC1 of a purse, the ARQC of the bank's card), never
at one the phone reports.

A top-up is a small state machine (:mod:`issuer.topup`) saved after every
step; issuance, cancellation, locking and registration are GlobalPlatform
scripts replayed from each session's log (:mod:`issuer.script`).
"""

from __future__ import annotations

import secrets
from dataclasses import fields, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from applets import bcd
from applets.apdu import CommandAPDU, ResponseAPDU
from applets.pboc import crypto
from applets.validity import Validity
from issuer import ectopup, gp, ledger
from issuer.accounts import IN_FLIGHT, SETTLEMENT, card_account, funding_account
from issuer.db import CardStatus, Order, OrderKind, OrderState, RelaySession
from issuer.ecash import PRODUCT as ECASH
from issuer.ectopup import EcTopup
from issuer.issuance import (
    Unproven,
    delete_purse,
    issue_purse,
    lock_purse,
    take_card_manager,
    verified_balance,
)
from issuer.keys import EcashKeysOf, LoadKeysOf
from issuer.keystore import CARD_MANAGER, TEST_KEY_SET
from issuer.procedure import Context, OrderError, Procedure, State
from issuer.products import product
from issuer.records import OrderRow
from issuer.script import Script, card_manager, operator
from issuer.topup import Debit, Effect, Fail, Hold, Settle, Step, Topup, TopupError, commands, receive
from reader.flow import Flow

VALIDITY_YEARS = 10
BANK_PSN = 0  # the demo bank issues every card with PAN sequence number 00
T = TypeVar("T")


class TopupProcedure(Procedure):
    def start(self, context: Context, last: State | None) -> State:
        if last is not None:
            return _dump(_load_topup(last).resume())
        card = context.card
        return _dump(Topup(bytes.fromhex(card.aid), bytes.fromhex(card.app_serial),
                           context.order.amount, context.terminal_id))

    def commands(self, context: Context, state: State) -> list[CommandAPDU]:
        return commands(_load_topup(state))

    def receive(self, context: Context, state: State, response: ResponseAPDU) -> State:
        try:
            new, effect = receive(_load_topup(state), response,
                                  LoadKeysOf(context.keys, context.card.product), context.wall_time,
                                  product(context.card.product).max_balance)
        except TopupError as error:
            raise OrderError(str(error)) from error
        if isinstance(effect, Debit) and not ledger.covers(
                context.db, funding_account(context.order.band_id), effect.amount):
            new = replace(new, step=Step.FAILED, debited=False)
            effect = Fail("the band's funding account holds less than the top-up", 0)
        _apply(context, effect)
        return _dump(new)

    def close_unproven(self, context: Context) -> None:
        close_topup(context)


def close_topup(context: Context) -> None:
    """A top-up never proven: what was debited goes back to the funding account."""
    order = context.order
    if order.state is OrderState.DEBITED:
        _apply(context, Fail("unproven", order.amount), refund_kind="topup-refund-unproven")
    else:
        order.state = OrderState.FAILED


def _load_topup(raw: State) -> Topup:
    return _load(raw, Topup, Step)


def _apply(context: Context, effect: Effect, refund_kind: str = "topup-refund") -> None:
    db, order = context.db, context.order
    funding = funding_account(order.band_id)
    if isinstance(effect, Debit):
        ledger.post(db, "topup-debit", [(funding, -effect.amount), (IN_FLIGHT, effect.amount)],
                    f"order:{order.id}:debit", order.id, at=context.now)
        order.state = OrderState.DEBITED
    elif isinstance(effect, Settle):
        ledger.post(db, "topup-settle", [(IN_FLIGHT, -effect.amount),
                                              (card_account(context.card), effect.amount)],
                    f"order:{order.id}:settle", order.id, at=context.now)
        order.state = OrderState.SETTLED
    elif isinstance(effect, Fail):
        _fail(db, order, effect, refund_kind, context.now)
    elif isinstance(effect, Hold):
        order.last_error = effect.reason  # still debited: the next contact proves it


def _fail(book: ledger.Book, order: Order | OrderRow, effect: Fail, refund_kind: str,
          at: datetime) -> None:
    if effect.refund:
        ledger.post(book, refund_kind, [(IN_FLIGHT, -effect.refund),
                                           (funding_account(order.band_id), effect.refund)],
                    f"order:{order.id}:refund", order.id, at=at)
    order.state = OrderState.REFUNDED if effect.refund else OrderState.FAILED
    order.last_error = effect.reason


def release_displaced(session: Session, order: Order, counter: int, at: datetime) -> bool:
    """Refund a held purse top-up whose credit was for the online counter slot ``counter``, now
    proven taken by a cash load (its TAC covers the counter): only one credit takes a slot, so
    ours never happened. Whether the order was such a top-up."""
    slot = session.scalar(select(RelaySession.state).where(RelaySession.order_id == order.id))
    if (order.kind is not OrderKind.TOPUP or order.state is not OrderState.DEBITED or slot is None
            or slot.get("counter") != counter):
        return False
    _fail(session, order, Fail(f"a cash load took the card's counter slot {counter} of our "
                               f"credit (its TAC proves it): refunded", order.amount),
          "topup-refund", at)
    return True


def _dump(state: Topup | EcTopup) -> State:
    """The state as JSON keeps it (bytes in hex, the step by name). Its fields are flat, so
    they are read directly: ``asdict`` copies deeply, at a tenth of a millisecond a step."""
    values = ((f.name, getattr(state, f.name)) for f in fields(state))
    return {k: v.hex() if isinstance(v, bytes) else str(v) if isinstance(v, StrEnum) else v
            for k, v in values}


def _load(raw: State, cls: type[T], steps: type[StrEnum]) -> T:
    values: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        value = raw[f.name]
        if f.name == "step":
            value = steps(value)
        elif isinstance(value, str) and f.type in ("bytes", bytes):
            value = bytes.fromhex(value)
        values[f.name] = value
    return cls(**values)


class IssueScript(Script):
    def flow(self, context: Context, phase: int, rng: gp.Rng) -> Flow[str]:
        item = product(context.card.product)
        start, expiry = Validity.for_years(context.ordered_at.date(), VALIDITY_YEARS).bcd()
        personalisation = item.personalisation(
            bytes.fromhex(context.card.app_serial), start, expiry,
            card_key=lambda role, div: context.keys.card_key(item.name, role, div))
        return issue_purse(card_manager(context), operator(context), item.aid, personalisation, rng)

    def finish(self, context: Context, phase: int, outcome: Any) -> int | None:
        context.card.status = CardStatus.ACTIVE
        context.order.state = OrderState.SETTLED
        return None

    def close_unproven(self, context: Context) -> None:
        context.card.status = CardStatus.CANCELLED  # the product may be ordered again
        context.order.state = OrderState.FAILED


class CancelScript(Script):
    """Phase 0 proves the balance (recorded) and phase 1 deletes the card in the same session,
    so the refund is the balance the card had when it went. Where SELECT finds no purse (an
    answer nothing vouches for) after a balance was proven, phase 2 only proves the card gone:
    a card still there is proven again before it is deleted, never refunded on an old proof."""

    def flow(self, context: Context, phase: int, rng: gp.Rng) -> Flow[Any]:
        card = context.card
        if phase == 0:
            return _purse_balance(context)
        return delete_purse(card_manager(context), operator(context), bytes.fromhex(card.aid), rng,
                            delete=phase == 1)

    def finish(self, context: Context, phase: int, outcome: Any) -> int | None:
        order = context.order
        if phase == 0 and outcome is not None:
            order.amount, order.state = outcome, OrderState.DEBITED
            return 1
        if phase == 0 and order.state is not OrderState.DEBITED:
            self.fail(context, "the card is not on the band, and its balance was never proven")
            return None
        if phase == 0:
            return 2
        self._refund(context, "cancel-refund")
        return None

    def fail(self, context: Context, reason: str) -> None:
        if context.order.state is OrderState.DEBITED:  # the balance is proven, the card maybe gone
            super().fail(context, reason)
        else:  # nothing proven, nothing moved: the cancellation ends here
            context.order.state, context.order.last_error = OrderState.FAILED, reason

    def close_unproven(self, context: Context) -> None:
        """A proven balance is refunded, the card's removal unproven; else nothing moved."""
        if context.order.state is OrderState.DEBITED:
            self._refund(context, "cancel-refund-unproven")
        else:
            context.order.state = OrderState.FAILED

    @staticmethod
    def _refund(context: Context, kind: str) -> None:
        order = context.order
        if order.amount:
            ledger.post(context.db, kind, [(card_account(context.card), -order.amount),
                                                (funding_account(order.band_id), order.amount)],
                        f"order:{order.id}:refund", order.id, at=context.now)
        context.card.status = CardStatus.CANCELLED
        order.state = OrderState.SETTLED


class LockScript(Script):
    """A lost band's card is locked; once the card proves it (or that it is gone), the card's
    balance in the books moves to the new band's funding account."""

    def flow(self, context: Context, phase: int, rng: gp.Rng) -> Flow[str]:
        return lock_purse(card_manager(context), operator(context), bytes.fromhex(context.card.aid),
                          rng)

    def finish(self, context: Context, phase: int, outcome: Any) -> int | None:
        self._move(context, "lost-move")
        return None

    def close_unproven(self, context: Context) -> None:
        self._move(context, "lost-move-unproven")

    @staticmethod
    def _move(context: Context, kind: str) -> None:
        order, card, moved_to = context.order, context.card, context.order.moved_to
        if moved_to is None:
            raise OrderError("a lost card's order names no band to move its balance to")
        balance = ledger.balance(context.db, card_account(card))
        if balance:
            ledger.post(context.db, kind, [(card_account(card), -balance),
                                                (funding_account(moved_to), balance)],
                        f"lost:{card.id}:move", order.id, at=context.now)
        order.amount, order.state = balance, OrderState.SETTLED


class RekeyScript(Script):
    """A newly registered band's card manager gets the issuer's keys in place of the test keys;
    the band is managed with them once the card proves it (:func:`take_card_manager`)."""

    def flow(self, context: Context, phase: int, rng: gp.Rng) -> Flow[str]:
        return take_card_manager(bytes.fromhex(context.band.cplc), card_manager(context, TEST_KEY_SET),
                                 card_manager(context, CARD_MANAGER), rng)

    def finish(self, context: Context, phase: int, outcome: Any) -> int | None:
        context.band.isd_key_set = CARD_MANAGER
        context.order.state = OrderState.SETTLED
        return None

    def close_unproven(self, context: Context) -> None:
        context.order.state = OrderState.FAILED  # the band keeps its key set in the books


class RegisterScript(Script):
    """A card made elsewhere comes under the issuer at the balance it proves; records dated
    before that moment are in the opening balance (:mod:`issuer.clearing`)."""

    def flow(self, context: Context, phase: int, rng: gp.Rng) -> Flow[int]:
        card = context.card
        if card.product == ECASH:
            proof = ectopup.proven_balance(_pan(card.app_serial), BANK_PSN, _order_date(context),
                                           EcashKeysOf(context.keys), rng)
        else:
            proof = _purse_balance(context)
        balance = yield from proof
        if balance is None:  # the SELECT's 6A82 carries no MAC: the next contact tries again
            raise Unproven("the band did not show the card")
        return balance

    def finish(self, context: Context, phase: int, outcome: Any) -> int | None:
        order, card = context.order, context.card
        if outcome:
            ledger.post(context.db, "opening", [(SETTLEMENT, -outcome),
                                                     (card_account(card), outcome)],
                        f"opening:{card.app_serial}", order.id, at=context.now)
        card.status, card.created_at = CardStatus.ACTIVE, context.now
        order.amount, order.state = outcome, OrderState.SETTLED
        return None

    def close_unproven(self, context: Context) -> None:
        context.card.status = CardStatus.CANCELLED  # never under the issuer
        context.order.state = OrderState.FAILED


class UnlockScript(Script):
    """A found band's card is unlocked; it is active in the books once the card proves it."""

    def flow(self, context: Context, phase: int, rng: gp.Rng) -> Flow[str]:
        return lock_purse(card_manager(context), operator(context), bytes.fromhex(context.card.aid),
                          rng, lock=False)

    def finish(self, context: Context, phase: int, outcome: Any) -> int | None:
        if outcome == "absent":  # proven under R-MAC: there is nothing to unlock
            context.order.state, context.order.last_error = OrderState.FAILED, "the card is gone"
            return None
        context.card.status, context.order.state = CardStatus.ACTIVE, OrderState.SETTLED
        return None

    def close_unproven(self, context: Context) -> None:
        context.order.state = OrderState.FAILED  # the card stays locked in the books


class EcTopupProcedure(Procedure):
    """A top-up of the bank card's e-cash balance (:mod:`issuer.ectopup`)."""

    def start(self, context: Context, last: State | None) -> State:
        challenge = secrets.token_bytes(4)
        if last is not None:
            return _dump(_load_ec(last).resume(challenge))
        return _dump(EcTopup(_pan(context.card.app_serial), BANK_PSN, context.order.amount, challenge,
                             _order_date(context)))

    def commands(self, context: Context, state: State) -> list[CommandAPDU]:
        return ectopup.commands(_load_ec(state))

    def receive(self, context: Context, state: State, response: ResponseAPDU) -> State:
        try:
            new, effect = ectopup.receive(_load_ec(state), response, EcashKeysOf(context.keys))
        except TopupError as error:
            raise OrderError(str(error)) from error
        if isinstance(effect, Debit) and not ledger.covers(
                context.db, funding_account(context.order.band_id), effect.amount):
            new = replace(new, step=ectopup.Step.FAILED, debited=False)
            effect = Fail("the band's funding account holds less than the top-up", 0)
        _apply(context, effect)
        return _dump(new)

    def close_unproven(self, context: Context) -> None:
        close_topup(context)


def _purse_balance(context: Context) -> Flow[int | None]:
    """The order's purse's balance as its MAC1 proves it, at the issuer's terminal and the
    order's time (:func:`issuer.issuance.verified_balance`)."""
    card = context.card
    date, time = bcd.date_time(context.ordered_at)
    return verified_balance(bytes.fromhex(card.aid), bytes.fromhex(card.app_serial),
                            LoadKeysOf(context.keys, card.product),
                            crypto.Terminal(context.terminal_id, date, time))


def _order_date(context: Context) -> bytes:
    """The order's date as the bank card's transaction date (9A, YYMMDD in BCD)."""
    return bcd.encode(f"{context.ordered_at:%y%m%d}")


def _pan(app_serial: str) -> str:
    """The PAN of an e-cash card registered under it (padded with F to 10 bytes)."""
    return app_serial.upper().rstrip("F")


def _load_ec(raw: State) -> EcTopup:
    return _load(raw, EcTopup, ectopup.Step)


PROCEDURES: dict[OrderKind, Procedure] = {
    OrderKind.TOPUP: TopupProcedure(), OrderKind.ISSUE: IssueScript(),
    OrderKind.CANCEL: CancelScript(), OrderKind.LOST: LockScript(),
    OrderKind.REKEY: RekeyScript(), OrderKind.REGISTER: RegisterScript(),
    OrderKind.UNLOCK: UnlockScript(),
}
EC_PROCEDURES: dict[OrderKind, Procedure] = {
    OrderKind.TOPUP: EcTopupProcedure(), OrderKind.REGISTER: PROCEDURES[OrderKind.REGISTER],
}


def procedure_for(kind: OrderKind, product_name: str | None) -> Procedure:
    """How an order of ``kind`` talks to a card of ``product_name`` (None: to the band)."""
    if (product_name is None) != (kind is OrderKind.REKEY):
        raise OrderError(f"a {kind.value} order is for {'a card' if product_name is None else 'the band'}")
    if product_name == ECASH:
        if kind not in EC_PROCEDURES:
            raise OrderError(f"the bank's card takes no {kind.value} orders from us, only top-ups")
        return EC_PROCEDURES[kind]
    return PROCEDURES[kind]
