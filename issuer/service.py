"""What the issuer does for its API's callers, apart from HTTP: registers bands and cards,
funds bands, shows cards and orders, places orders (:mod:`issuer.orders` runs them), relays
them and clears terminals' records (:mod:`issuer.clearing`).

Every method works at the instant it is given (``now``: the request's, see
:meth:`Issuer.now`), in the database session it is given where it reads or writes outside an
order, and it owns that session's commits. A method that places or relays an order closes
the session first: the order runs in its own transaction (on SQLite, one must not wait for
the other). Refusals are :class:`issuer.procedure.OrderError`: :class:`UnknownOrder` for
something that is not there, :class:`Forbidden` for a caller who may not, the base class for
a request that conflicts with what is; the message says why.

Money moves only by ledger postings under one idempotency key each: an operator's funding
(``funding:<key>``, from the bank's settlement account to the band's funding account) here,
every other posting in the orders and in clearing.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from issuer import ledger
from issuer.accounts import SETTLEMENT, card_account, funding_account
from issuer.clearing import Cleared, clear, clear_ecash, clear_loads
from issuer.db import Band, Card, Order
from issuer.keys import IssuerKeys
from issuer.orders import Caller, Opened, Orders, Relay
from issuer.procedure import Forbidden, OrderError, UnknownOrder
from issuer.products import PRODUCTS, SERIAL_NUMBERS, product
from issuer.records import UNRESOLVED
from reader.record import EcashPurchase, LoadRecord, PurchaseRecord

T = TypeVar("T")


def token_hash(token: str) -> str:
    """What the issuer keeps of a device token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def _new_token() -> str:
    return secrets.token_urlsafe(24)


@dataclass(frozen=True, slots=True)
class Registered:
    """A band registered (``new``) or registered again, with its new device token and the
    order that gives its card manager the issuer's keys (None when it has other keys)."""

    band_id: int
    device_token: str
    order_id: int | None
    new: bool


@dataclass(frozen=True, slots=True)
class CardView:
    product: str
    aid: str
    app_serial: str
    status: str
    balance: int  # the issuer's view, fen


@dataclass(frozen=True, slots=True)
class OrderView:
    """An order as committed, with the relay session opened with it, if one was."""

    order_id: int
    kind: str
    state: str
    amount: int
    app_serial: str | None
    last_error: str | None
    relay: Relay | None = None


class Issuer:
    def __init__(self, sessions: sessionmaker[Session], orders: Orders, keys: IssuerKeys,
                 isd_key_sets: frozenset[str] = frozenset({"test"})) -> None:
        self.sessions = sessions
        self._orders = orders
        self._keys = keys
        self._isd_key_sets = isd_key_sets

    def now(self, stated: datetime | None = None) -> datetime:
        """The instant of a request: the one it states (admitted by the API), else the
        clock's."""
        return self._orders.now(stated)

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        """Run an order's step for an ``async`` route: on the event loop where the orders
        allow it (:attr:`Orders.on_loop`), else in a worker thread."""
        if self._orders.on_loop:
            return work(*args)
        return await run_in_threadpool(work, *args)

    # -- bands -----------------------------------------------------------------------------

    def band(self, session: Session, band_id: int) -> Band:
        band = session.get(Band, band_id)
        if band is None:
            raise UnknownOrder("no such band")
        return band

    def register_band(self, session: Session, cplc: bytes, uid: bytes, isd_key_set: str,
                      now: datetime) -> Registered:
        """Register a band; registering it again (a retry, a new phone) keeps the band and
        gives it a new device token, revoking the old one. A band on the test keys gets an
        order that gives its card manager the issuer's keys."""
        if isd_key_set not in self._isd_key_sets:
            raise UnknownOrder(f"no card manager key set {isd_key_set!r}; known: "
                               f"{', '.join(sorted(self._isd_key_sets))}")
        device_token = _new_token()
        cplc_hex, uid_hex = cplc.hex().upper(), uid.hex().upper()
        band = session.scalar(select(Band).where(Band.cplc == cplc_hex).with_for_update())
        new = band is None
        if band is not None:
            if band.uid != uid_hex:
                raise OrderError("a band with this CPLC is registered already, with another UID")
            band.device_token_hash = token_hash(device_token)
        else:
            band = Band(cplc=cplc_hex, uid=uid_hex, isd_key_set=isd_key_set,
                        device_token_hash=token_hash(device_token), created_at=now)
            session.add(band)
        try:
            session.commit()
        except IntegrityError:
            raise OrderError("the band was registered at this very moment by another request: "
                             "register again") from None
        session.close()
        return Registered(band.id, device_token, self._orders.take_over(band.id, now), new)

    def report_lost(self, session: Session, band_id: int, new_band_id: int, key: str,
                    now: datetime) -> list[OrderView]:
        """Lock the band's cards now and at its next contact; their balances go to the new
        band."""
        self.band(session, band_id)
        session.close()
        made = self._orders.report_lost(band_id, new_band_id, _scoped(band_id, key), now)
        return [self.order_view(session, order_id) for order_id in made]

    def found(self, session: Session, band_id: int, key: str,
              now: datetime) -> tuple[str, list[OrderView]]:
        """The lost band is back with its owner: a new device token (the old one stays
        revoked), and an order to unlock each card whose balance stayed on it."""
        session.close()
        device_token = _new_token()
        made = self._orders.found(band_id, _scoped(band_id, key), token_hash(device_token), now)
        return device_token, [self.order_view(session, order_id) for order_id in made]

    # -- cards and funding -----------------------------------------------------------------

    @staticmethod
    def products() -> list[dict[str, str]]:
        return [{"name": p.name, "label": p.label, "aid": p.aid.hex().upper()}
                for p in PRODUCTS.values()]

    def register_card(self, session: Session, band_id: int, product_name: str, app_serial: bytes,
                      now: datetime) -> tuple[int | None, bool]:
        """A card personalised elsewhere, to come under this issuer at the balance it proves
        when the order is relayed: the order, and whether the card is new here."""
        session.close()
        return self._orders.register(band_id, product_name, app_serial, now)

    def cards(self, session: Session, band: Band, by_operator: bool) -> list[CardView]:
        """The band's cards with the issuer's balances; a lost band's token only syncs."""
        _readable(band, by_operator)
        rows = session.scalars(select(Card).where(Card.band_id == band.id)).all()
        return [CardView(c.product, c.aid, c.app_serial, c.status.value,
                         ledger.balance(session, card_account(c))) for c in rows]

    @staticmethod
    def funding(session: Session, band: Band, by_operator: bool) -> int:
        """The band's funding account (what top-ups draw on), in fen."""
        _readable(band, by_operator)
        return ledger.balance(session, funding_account(band.id))

    def fund(self, session: Session, band_id: int, amount: int, key: str, now: datetime) -> int:
        """Pay ``amount`` from the bank into the band's funding account, once per ``key``;
        the account's balance."""
        self.band(session, band_id)
        try:
            ledger.post(session, "funding", [(SETTLEMENT, -amount), (funding_account(band_id), amount)],
                        f"funding:{key}", at=now)
        except ledger.LedgerError as error:
            raise OrderError(str(error)) from None
        session.commit()
        return ledger.balance(session, funding_account(band_id))

    # -- orders ----------------------------------------------------------------------------

    def issue(self, session: Session, band_id: int, product_name: str, key: str,
              now: datetime) -> OrderView:
        """Order a new card of a product on the band (under a serial number drawn at random),
        with a relay session opened for it."""
        if product_name not in PRODUCTS:
            raise UnknownOrder(f"no product {product_name!r}")
        serial = product(product_name).serial(secrets.randbelow(SERIAL_NUMBERS))
        session.close()
        return self._ordered(self._orders.issue(band_id, product_name, serial,
                                                _scoped(band_id, key), now), band_id, now)

    def topup(self, caller: Caller, app_serial: bytes, amount: int, key: str,
              now: datetime) -> OrderView:
        """Order a top-up of a card on the caller's band, with a relay session opened for it:
        the hot path, one short transaction and no ORM session."""
        return _view(self._orders.topup_opened(caller, app_serial, amount,
                                               _scoped(caller.band_id, key), now))

    def cancel(self, session: Session, band_id: int, app_serial: bytes, key: str,
               now: datetime) -> OrderView:
        """Cancel a card: relayed, it proves its balance, is deleted, and the balance is
        refunded."""
        session.close()  # SQLite: the order's own transaction must not wait for this one
        return self.order_view(session, self._orders.cancel(band_id, app_serial,
                                                            _scoped(band_id, key), now))

    def resolve(self, session: Session, order_id: int, now: datetime) -> OrderView:
        """Close an order its card never proved, once the clearing window has passed."""
        session.close()
        self._orders.resolve(order_id, now)
        return self.order_view(session, order_id)

    def band_orders(self, session: Session, band_id: int, unresolved: bool) -> list[OrderView]:
        """The band's orders, oldest first; ``unresolved``: those to relay at the next contact."""
        query = select(Order.id).where(Order.band_id == band_id).order_by(Order.id)
        if unresolved:
            query = query.where(Order.state.in_(UNRESOLVED))
        return [self.order_view(session, order_id) for order_id in session.scalars(query).all()]

    def band_order(self, session: Session, band_id: int, order_id: int) -> OrderView:
        found = session.get(Order, order_id)
        if found is None or found.band_id != band_id:
            raise UnknownOrder("no such order")
        return self.order_view(session, order_id)

    def order_view(self, session: Session, order_id: int) -> OrderView:
        """The order as committed (methods that order close their session before ordering)."""
        found, serial = session.execute(select(Order, Card.app_serial)
                                        .outerjoin(Card, Order.card_id == Card.id)
                                        .where(Order.id == order_id)).one()
        return OrderView(found.id, found.kind.value, found.state.value, found.amount, serial,
                         found.last_error)

    def _ordered(self, order_id: int, band_id: int, now: datetime) -> OrderView:
        """The companion's new order with a relay session opened for it: one round trip less
        (its caller checked the band's token)."""
        return _view(self._orders.open_order(order_id, Caller(band_id), now))

    # -- relay -----------------------------------------------------------------------------

    def open_relay(self, order_id: int, caller: Caller, now: datetime) -> Relay:
        return self._orders.open(order_id, caller, now)

    def answer(self, session_id: uuid.UUID, step: int, responses: Sequence[bytes], caller: Caller,
               now: datetime) -> Relay:
        return self._orders.answer(session_id, step, responses, caller, now)

    # -- clearing --------------------------------------------------------------------------

    def clear(self, session: Session, records: Sequence[PurchaseRecord], now: datetime) -> Cleared:
        """Book terminals' purchase records whose TAC verifies, each once."""
        result = clear(session, self._keys, records, now)
        session.commit()
        return result

    def clear_loads(self, session: Session, records: Sequence[LoadRecord], now: datetime) -> Cleared:
        """Book station load machines' cash loads whose TAC verifies, each once (the issuer's
        own over-the-air top-ups are booked by their orders)."""
        result = clear_loads(session, self._keys, records, now, self._orders.terminal_id)
        session.commit()
        return result

    def clear_ecash(self, session: Session, purchases: Sequence[EcashPurchase],
                    now: datetime) -> Cleared:
        """Book the bank card's offline purchases whose TC verifies, each once."""
        result = clear_ecash(session, self._keys, purchases, now)
        session.commit()
        return result


def _view(opened: Opened) -> OrderView:
    order = opened.order
    return OrderView(order.id, order.kind.value, order.state.value, order.amount,
                     opened.app_serial, order.last_error, opened.relay)


def _scoped(band_id: int, key: str) -> str:
    """A client's idempotency key as the orders keep it: one band's keys never meet
    another's."""
    return f"{band_id}:{key}"


def _readable(band: Band, by_operator: bool) -> None:
    """What the issuer holds of a band is the operator's to read, and its own device's unless
    the band is reported lost: a lost band's token only syncs."""
    if band.lost_at is not None and not by_operator:
        raise Forbidden("the band is reported lost: its token can only sync")
