"""Top-up orders: :mod:`issuer.topup` persisted, step by step, with its ledger effects.

Each relayed answer is one database transaction: the new top-up state, the
order's state and the ledger posting of that step commit together or not at
all, so a crash of the issuer between two APDUs loses nothing and a repeated
answer (the phone retrying a request) changes nothing. Money moves only by
postings with one idempotency key per order and effect:

=========  =========================================  ======================
effect     legs                                        key
=========  =========================================  ======================
debit      funding -amount, issuer:in-flight +amount  order:<id>:debit
settle     in-flight -amount, card:<serial> +amount   order:<id>:settle
refund     in-flight -amount, funding +amount         order:<id>:refund
=========  =========================================  ======================

A card has at most one unresolved top-up at a time, which is what lets the
authenticated counter settle a lost answer (see :mod:`issuer.topup`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from applets.apdu import ResponseAPDU
from issuer import ledger
from issuer.db import Card, CardStatus, Order, OrderKind, OrderState, RelaySession
from issuer.topup import Debit, Fail, LoadKeys, Settle, Step, Topup, command, receive

IN_FLIGHT = "issuer:in-flight"
SESSION_LIFETIME = timedelta(minutes=10)
UNRESOLVED = (OrderState.PENDING, OrderState.IN_RELAY, OrderState.DEBITED)


class OrderError(Exception):
    """A request the issuer refuses; the message says why (the API answers 4xx)."""


def funding_account(band_id: int) -> str:
    return f"funding:band:{band_id}"


def _dump(state: Topup) -> dict[str, Any]:
    return {k: v.hex() if isinstance(v, bytes) else str(v) if isinstance(v, Step) else v
            for k, v in asdict(state).items()}


def _load(raw: dict[str, Any]) -> Topup:
    values: dict[str, Any] = {}
    for f in fields(Topup):
        value = raw[f.name]
        if f.name == "step":
            value = Step(value)
        elif isinstance(value, str) and f.type in ("bytes", bytes):
            value = bytes.fromhex(value)
        values[f.name] = value
    return Topup(**values)


@dataclass(frozen=True, slots=True)
class Relay:
    """What the phone gets: the session, the step it answers, and the APDU to send."""

    session_id: uuid.UUID
    step: int
    command: bytes | None
    state: OrderState


class Topups:
    def __init__(self, sessions: sessionmaker[Session], keys: Callable[[str], LoadKeys],
                 terminal_id: bytes, clock: Callable[[], datetime] = datetime.now) -> None:
        self._sessions = sessions
        self._keys = keys  # product name -> that issuer's load keys
        self._terminal_id = terminal_id
        self._clock = clock

    def order(self, band_id: int, app_serial: bytes, amount: int, idempotency_key: str) -> int:
        """A top-up order, once per idempotency key (the same request returns the same order)."""
        if amount <= 0:
            raise OrderError("a top-up amount must be a positive number of fen")
        with self._sessions.begin() as session:
            existing = session.scalar(select(Order).where(Order.idempotency_key == idempotency_key))
            if existing is not None:
                if (existing.kind, existing.band_id, existing.amount) != (OrderKind.TOPUP, band_id,
                                                                          amount):
                    raise OrderError("this idempotency key belongs to a different order")
                return existing.id
            card = session.scalar(select(Card).where(Card.app_serial == app_serial.hex().upper()))
            if card is None or card.band_id != band_id:
                raise OrderError("no such card on this band")
            if card.status is not CardStatus.ACTIVE:
                raise OrderError(f"the card is {card.status.value}")
            busy = session.scalar(select(Order).where(Order.card_id == card.id,
                                                      Order.kind == OrderKind.TOPUP,
                                                      Order.state.in_(UNRESOLVED)))
            if busy is not None:
                raise OrderError(f"order {busy.id} for this card is still unresolved: "
                                 f"relay it first")
            order = Order(idempotency_key=idempotency_key, kind=OrderKind.TOPUP, band_id=band_id,
                          card_id=card.id, amount=amount, state=OrderState.PENDING)
            session.add(order)
            session.flush()
            state = Topup(bytes.fromhex(card.aid), app_serial, amount, self._terminal_id)
            session.add(RelaySession(order_id=order.id, step="0", state=_dump(state),
                                     expires_at=self._clock() + SESSION_LIFETIME))
            return order.id

    def open(self, order_id: int) -> Relay:
        """A new relay session for the order (the phone is in contact with the band).

        The order's state moves to the new session and the old one ends, so an
        order has exactly one session and one state at any time.
        """
        with self._sessions.begin() as session:
            order, last = self._latest(session, order_id)
            state = _load(last.state).resume()
            session.delete(last)
            relay = RelaySession(order_id=order.id, step="0", state=_dump(state),
                                 expires_at=self._clock() + SESSION_LIFETIME)
            session.add(relay)
            if order.state is OrderState.PENDING:
                order.state = OrderState.IN_RELAY
            session.flush()
            apdu = command(state)
            return Relay(relay.id, 0, apdu.encode() if apdu else None, order.state)

    def answer(self, session_id: uuid.UUID, step: int, response: bytes,
               band_id: int | None = None) -> Relay:
        """The band's answer to APDU ``step`` of the session; the next APDU (None: done)."""
        try:
            parsed = ResponseAPDU.parse(response)
        except ValueError as error:
            raise OrderError(f"not an R-APDU: {error}") from error
        with self._sessions.begin() as session:
            relay = session.get(RelaySession, session_id, with_for_update=True)
            if relay is None:
                raise OrderError("no such relay session")
            order = session.get(Order, relay.order_id, with_for_update=True)
            if order is None or (band_id is not None and order.band_id != band_id):
                raise OrderError("no such relay session")
            state = _load(relay.state)
            current = int(relay.step)
            if step != current:
                if step == current - 1:  # a retried request: same answer again
                    apdu = command(state)
                    return Relay(relay.id, current, apdu.encode() if apdu else None, order.state)
                raise OrderError(f"the session is at step {current}, not {step}")
            if relay.expires_at.replace(tzinfo=None) < self._clock():
                raise OrderError("the relay session expired: open a new one")
            card = session.get(Card, order.card_id)
            if card is None:
                raise OrderError("the order's card is gone")
            state, effect = receive(state, parsed, self._keys(card.product), self._clock())
            self._apply(session, order, card, effect)
            relay.state = _dump(state)
            relay.step = str(current + 1)
            apdu = command(state)
            return Relay(relay.id, current + 1, apdu.encode() if apdu else None, order.state)

    def _latest(self, session: Session, order_id: int) -> tuple[Order, RelaySession]:
        order = session.get(Order, order_id, with_for_update=True)
        if order is None or order.kind is not OrderKind.TOPUP:
            raise OrderError("no such top-up order")
        sessions = session.scalars(select(RelaySession)
                                   .where(RelaySession.order_id == order_id)).all()
        if len(sessions) != 1:
            raise OrderError(f"the order has {len(sessions)} states instead of one")
        return order, sessions[0]

    def _apply(self, session: Session, order: Order, card: Card,
               effect: Debit | Settle | Fail | None) -> None:
        funding = funding_account(order.band_id)
        if isinstance(effect, Debit):
            ledger.post(session, "topup-debit", [(funding, -effect.amount), (IN_FLIGHT, effect.amount)],
                        f"order:{order.id}:debit", order.id)
            order.state = OrderState.DEBITED
        elif isinstance(effect, Settle):
            ledger.post(session, "topup-settle", [(IN_FLIGHT, -effect.amount),
                                                  (f"card:{card.app_serial}", effect.amount)],
                        f"order:{order.id}:settle", order.id)
            order.state = OrderState.SETTLED
        elif isinstance(effect, Fail):
            if effect.refund:
                ledger.post(session, "topup-refund", [(IN_FLIGHT, -effect.refund),
                                                      (funding, effect.refund)],
                            f"order:{order.id}:refund", order.id)
            order.state = OrderState.REFUNDED if effect.refund else OrderState.FAILED
            order.last_error = effect.reason
