"""Orders (issue, top up, cancel, lock a lost band's card, register), each run through the phone's relay.

An order is made once per idempotency key and then relayed in sessions: the
phone opens a session while in contact with the band, posts the band's
answers and gets the next command APDUs. Each relayed answer is one database
transaction: the order's state, its position in the script and the ledger
posting of that step commit together or not at all, so a crash of the issuer
between two APDUs loses nothing, and a repeated answer (the phone retrying a
request) changes nothing. Every new session starts the order's procedure
over from what the card says, so no order depends on a session that broke.

Money moves only by postings with one idempotency key per order and effect:

=============  =========================================  =======================
effect         legs                                        key
=============  =========================================  =======================
top-up debit   funding -amount, issuer:in-flight +amount  order:<id>:debit
top-up settle  in-flight -amount, card:<serial> +amount   order:<id>:settle
top-up refund  in-flight -amount, funding +amount         order:<id>:refund
cancel refund  card:<serial> -balance, funding +balance   order:<id>:refund
lost: move     card:<serial> -balance, new funding +...   lost:<card id>:move
opening        bank:settlement -balance, card +balance     opening:<serial>
=============  =========================================  =======================

A card has at most one unresolved order at a time, so no MAC2 of ours but
the order's own can move the card's online counter (see :mod:`issuer.topup`).

The relay and the ordering run on the bare driver (:mod:`issuer.sql`, rows in
:mod:`issuer.records`): a top-up is three short transactions whose statements
stay prepared.

Time is an input: every call takes the moment it happens (``now``, an instant
the API resolved for the request) or reads the clock the service was given,
never the database's or the machine's; the dates an order writes on a card
are the wall time of that moment in the network's zone (:mod:`reader.clock`).
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from applets.apdu import ResponseAPDU
from applets.emv.records import ECASH_AID
from common.money import yuan
from issuer import ledger, records
from issuer.accounts import card_account, funding_account
from issuer.db import CardStatus, OrderKind, OrderState
from issuer.ecash import PRODUCT as ECASH
from issuer.keys import IssuerKeys
from issuer.keystore import TEST_KEY_SET
from issuer.procedure import Context, Forbidden, OrderError, Procedure, UnknownOrder
from issuer.procedures import procedure_for
from issuer.products import PRODUCTS
from issuer.products import product as find
from issuer.records import UNRESOLVED, BandRow, CardRow, Loaded, OrderRow, RelayRow
from issuer.sql import Database, Db
from reader.clock import Clock, instant, local, system_clock

SESSION_LIFETIME = timedelta(minutes=10)
#: How long an unresolved order waits for its card's proof before an operator may close it.
CLEARING_WINDOW = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who relays an order: a band's device (the hash of its token), or the operator (None)."""

    band_id: int
    token_hash: str | None = None

    def admit(self, order: OrderRow, band: BandRow, what: str) -> None:
        if order.band_id != self.band_id:
            raise UnknownOrder(f"no such {what}")
        self.admit_band(band)

    def admit_band(self, band: BandRow) -> None:
        if self.token_hash is not None and not hmac.compare_digest(band.device_token_hash,
                                                                   self.token_hash):
            raise Forbidden("this token is not this band's")


@dataclass(frozen=True, slots=True)
class Relay:
    """What the phone gets: the session, the step it answers, and the APDUs to send.

    ``commands`` is a batch: the band runs them in order and stops after the
    first answer other than 9000, and the phone posts the answers it got (see
    :func:`common.relay.run_batch`). An empty batch: the order is over.
    """

    session_id: uuid.UUID
    step: int
    commands: tuple[bytes, ...]
    state: OrderState


@dataclass(frozen=True, slots=True)
class Opened:
    """A relay session just opened, and its order (with its card's serial, if it has a card)."""

    relay: Relay
    order: OrderRow
    app_serial: str | None


class Orders:
    def __init__(self, sessions: sessionmaker[Session], keys: IssuerKeys, terminal_id: bytes,
                 clock: Clock = system_clock) -> None:
        engine = sessions.kw["bind"]
        if not isinstance(engine, Engine):
            raise TypeError("the order service needs sessions bound to an engine")
        #: Whether the API runs orders on its event loop: on PostgreSQL, where they have a pool
        #: of their own, so that they never wait for a connection that an ORM session holds
        #: until the loop tears it down. (SQLite locks the whole database: there, orders run in
        #: threads, as the routes that use ORM sessions do.)
        self.on_loop = engine.dialect.name == "postgresql"
        self._database = Database(engine, own_pool=self.on_loop)
        self._keys = keys
        self._terminal_id = terminal_id
        self._clock = clock

    @property
    def terminal_id(self) -> bytes:
        """The issuer's own load terminal: the one its over-the-air top-ups name."""
        return self._terminal_id

    def now(self, stated: datetime | None = None) -> datetime:
        """The instant of a request: the one it states (a simulated world's, admitted by the
        API), else the service's clock."""
        return instant(stated if stated is not None else self._clock())

    # -- ordering ------------------------------------------------------------------------

    def topup(self, band_id: int, app_serial: bytes, amount: int, idempotency_key: str,
              now: datetime | None = None) -> int:
        """A top-up order, once per idempotency key (the same request returns the same order)."""
        with self._database.transaction() as db:
            placed = self._place_topup(db, band_id, app_serial, amount, idempotency_key, self.now(now))
            return placed if isinstance(placed, int) else placed.order.id

    def topup_opened(self, caller: Caller, app_serial: bytes, amount: int, idempotency_key: str,
                     now: datetime | None = None) -> Opened:
        """The companion's top-up, with its first relay session, in one transaction (the hot
        path: the placing reads everything in one statement, and a new order is opened on what
        it read); ``caller`` must hold the band's token."""
        at = self.now(now)
        with self._database.transaction() as db:
            placed = self._place_topup(db, caller.band_id, app_serial, amount, idempotency_key,
                                       at, caller, OrderState.IN_RELAY)  # opened at once
            if isinstance(placed, int):  # made by an earlier request: opened again
                return self._open(db, _locked(db, placed), records.relays_of(db, placed), at)
            return self._open(db, placed, [], at)

    def _place_topup(self, db: Db, band_id: int, app_serial: bytes, amount: int, key: str,
                     at: datetime, caller: Caller | None = None,
                     state: OrderState = OrderState.PENDING) -> Loaded | int:
        """Place a top-up: the new order (in ``state``) with its card and band, or the id of
        the order the key made already."""
        if amount <= 0:
            raise OrderError("a top-up amount must be a positive number of fen")
        read = records.placing(db, band_id, app_serial.hex().upper(), key, funding_account(band_id))
        if read is None:
            raise UnknownOrder("no such band")
        if caller is not None:
            caller.admit_band(read.band)
        existing = _existing(read.existing, OrderKind.TOPUP, band_id, amount)
        if existing is not None:
            return existing
        card = read.card
        if card is None or card.band_id != band_id:
            raise OrderError("no such card on this band")
        _not_lost(read.band)
        if card.status is not CardStatus.ACTIVE:
            raise OrderError(f"the card is {card.status.value}")
        if read.funds < amount:
            raise OrderError(f"the band's funding account holds {yuan(read.funds)}, not enough "
                             f"for a top-up of {yuan(amount)}: fund it first")
        procedure_for(OrderKind.TOPUP, card.product)  # as _add, with the busy order read already
        _idle(read.busy)
        made = records.new_order(db, key, OrderKind.TOPUP, band_id, card.id, amount, at,
                                 state=state)
        return Loaded(OrderRow(made, key, OrderKind.TOPUP, band_id, card.id, amount, state, at, at,
                               None, None), card, read.band)

    def issue(self, band_id: int, product: str, app_serial: bytes, idempotency_key: str,
              now: datetime | None = None) -> int:
        """An issuance order: a new card of ``product`` on the band, under ``app_serial``
        (the product's prefix and 16 BCD digits, which the card insists on)."""
        at = self.now(now)
        with self._database.transaction() as db:
            existing = _existing(records.by_key(db, idempotency_key), OrderKind.ISSUE,
                                 band_id, 0)
            if existing is not None:
                return existing
            try:
                find(product).check_serial(app_serial)
            except ValueError as error:
                raise OrderError(str(error)) from None
            band = records.band_by_id(db, band_id)
            if band is None:
                raise OrderError("no such band")
            _not_lost(band)
            taken = records.held(db, band_id, product)
            if taken is not None:
                raise OrderError(f"the band already holds a {product} card ({taken})")
            card = records.new_card(db, band_id, product, find(product).aid.hex().upper(),
                                    app_serial.hex().upper(), at)
            if card is None:
                raise OrderError("this application serial number is taken")
            return self._add(db, idempotency_key, OrderKind.ISSUE, card, 0, at)

    def cancel(self, band_id: int, app_serial: bytes, idempotency_key: str,
               now: datetime | None = None) -> int:
        """A cancellation: the card's balance (as the card proves it) is refunded, the card deleted."""
        with self._database.transaction() as db:
            existing = _existing(records.by_key(db, idempotency_key), OrderKind.CANCEL,
                                 band_id, None)
            if existing is not None:
                return existing
            card = _card(db, band_id, app_serial)
            if card.status not in (CardStatus.ACTIVE, CardStatus.LOCKED):
                raise OrderError(f"the card is {card.status.value}")
            return self._add(db, idempotency_key, OrderKind.CANCEL, card, 0, self.now(now))

    def report_lost(self, band_id: int, new_band_id: int, idempotency_key: str,
                    now: datetime | None = None) -> list[int]:
        """The band is lost: its device token may only sync from now on, its cards are locked
        in the books now and on the band at its next contact, and once a card proves it locked
        (or gone) its balance in the books moves to the new band's funding account."""
        if band_id == new_band_id:
            raise OrderError("the balances must move to another band")
        at = self.now(now)
        with self._database.transaction() as db:
            lost, new = records.band_by_id(db, band_id), records.band_by_id(db, new_band_id)
            if new is None:
                raise OrderError("no such new band")
            if new.lost_at is not None:
                raise OrderError("the new band is reported lost itself")
            done = records.keyed(db, f"{idempotency_key}:lost:")
            if done:
                return done
            if lost is not None and lost.lost_at is None:
                lost.lost_at = at
                records.save_row(db, lost)
            orders = []
            # E-cash is like cash (PBOC e-cash cannot be reported lost): the bank's card stays.
            for card in records.cards_of(db, band_id, CardStatus.ACTIVE):
                if card.product == ECASH:
                    continue
                card.status = CardStatus.LOCKED
                records.save_row(db, card)
                orders.append(self._add(db, f"{idempotency_key}:lost:{card.id}", OrderKind.LOST,
                                        card, ledger.balance(db, card_account(card)), at,
                                        moved_to=new_band_id))
            return orders

    def take_over(self, band_id: int, now: datetime | None = None) -> int | None:
        """The order (once per band) that gives a newly registered band's card manager the
        issuer's keys in place of the test keys; None when it has other keys already."""
        at = self.now(now)
        with self._database.transaction() as db:
            band = records.band_by_id(db, band_id)
            if band is None:
                raise UnknownOrder("no such band")
            key = f"band:{band_id}:rekey"
            existing = _existing(records.by_key(db, key), OrderKind.REKEY, band_id, 0)
            if existing is not None or band.isd_key_set != TEST_KEY_SET:
                return existing
            return records.new_order(db, key, OrderKind.REKEY, band_id, None, 0, at)

    def register(self, band_id: int, product: str, app_serial: bytes,
                 now: datetime | None = None) -> tuple[int | None, bool]:
        """A card made elsewhere (at the factory, or the bank's) comes under the issuer at the
        balance it proves when the order is relayed; the order, and whether the card is new
        (registered again, it keeps its first order; issued here, it has none)."""
        aids = {name: p.aid for name, p in PRODUCTS.items()} | {ECASH: ECASH_AID}
        if product not in aids:
            raise UnknownOrder(f"no product {product!r}")
        at, serial = self.now(now), app_serial.hex().upper()
        with self._database.transaction() as db:
            band = records.band_by_id(db, band_id)
            if band is None:
                raise UnknownOrder("no such band")
            _not_lost(band)
            card = records.card_by_serial(db, serial)
            key = f"card:{serial}:register"
            if card is not None:
                if (card.band_id, card.product) != (band_id, product):
                    raise OrderError("this application serial is registered already, to another "
                                     "band or product")
                known = records.by_key(db, key)
                return (None if known is None else known.id), False
            card = records.new_card(db, band_id, product, aids[product].hex().upper(), serial, at)
            if card is None:
                raise OrderError("this application serial was registered at this very moment by "
                                 "another request")
            return self._add(db, key, OrderKind.REGISTER, card, 0, at), True

    def found(self, band_id: int, idempotency_key: str, device_token_hash: str,
              now: datetime | None = None) -> list[int]:
        """The lost band is back with its owner: each card whose balance stayed on it (its lock
        never proven, or nothing to move) gets an order to unlock it, and the band may order
        again, under the new device token (``device_token_hash``) only, set in the same
        transaction: the token a thief may hold never comes back to life. A card whose balance
        moved to the new band stays locked: that money is the new band's now."""
        at = self.now(now)
        with self._database.transaction() as db:
            band = records.band_by_id(db, band_id)
            if band is None:
                raise UnknownOrder("no such band")
            done = records.keyed(db, f"{idempotency_key}:found:")
            if done:
                band.device_token_hash = device_token_hash
                records.save_row(db, band)
                return done
            if band.lost_at is None:
                raise OrderError("the band is not reported lost")
            orders = []
            for card in records.cards_of(db, band_id, CardStatus.LOCKED):
                lost = records.last_lost(db, card.id)
                if lost is not None and lost.state is OrderState.SETTLED and lost.amount:
                    continue
                if lost is not None and lost.state in UNRESOLVED:
                    lost.state, lost.updated_at = OrderState.FAILED, at
                    lost.last_error = "the band was found before the card proved its lock"
                    records.save_row(db, lost)
                    records.end_relays(db, lost.id)
                orders.append(self._add(db, f"{idempotency_key}:found:{card.id}",
                                        OrderKind.UNLOCK, card, 0, at))
            band.lost_at, band.device_token_hash = None, device_token_hash
            records.save_row(db, band)
            return orders

    def _add(self, db: Db, key: str, kind: OrderKind, card: CardRow, amount: int,
             at: datetime, moved_to: int | None = None) -> int:
        procedure_for(kind, card.product)  # refuses what the card cannot take, up front
        _idle(records.busy(db, card.id))
        return records.new_order(db, key, kind, card.band_id, card.id, amount, at, moved_to)

    # -- relaying ------------------------------------------------------------------------

    def open(self, order_id: int, caller: Caller | None = None, now: datetime | None = None) -> Relay:
        """A new relay session for the order (the phone is in contact with the band): the
        order's state moves to it and the old one ends, so an order has at most one session
        (none before its first) and one state."""
        return self.open_order(order_id, caller, now).relay

    def open_order(self, order_id: int, caller: Caller | None = None,
                   now: datetime | None = None) -> Opened:
        """:meth:`open`, with the order as the new session leaves it."""
        with self._database.transaction() as db:
            loaded = _locked(db, order_id)
            if caller is not None:
                caller.admit(loaded.order, loaded.band, "order")
            return self._open(db, loaded, records.relays_of(db, order_id), self.now(now))

    def _open(self, db: Db, loaded: Loaded, last: list[RelayRow], at: datetime) -> Opened:
        """A new session for the locked order, in place of its ``last`` ones."""
        order = loaded.order
        if len(last) > 1:
            raise OrderError(f"the order has {len(last)} states instead of one")
        context = self._context(db, loaded, at)
        procedure = self._procedure(order, loaded.card)
        previous = last[0].state if last else None
        finished = order.state not in UNRESOLVED
        state = previous if finished and previous is not None else procedure.start(context, previous)
        if last:
            records.end_relays(db, order.id)
        relay = RelayRow(uuid.uuid4(), order.id, "0", state, context.now + SESSION_LIFETIME)
        records.new_relay(db, relay)
        if order.state is OrderState.PENDING:
            order.state = OrderState.IN_RELAY
        order.updated_at = context.now
        records.save(db, loaded)
        return Opened(self._relay(context, relay, 0), order,
                      None if loaded.card is None else loaded.card.app_serial)

    def answer(self, session_id: uuid.UUID, step: int, responses: Sequence[bytes],
               caller: Caller | None = None, now: datetime | None = None) -> Relay:
        """The band's answers to the batch of ``step`` (a prefix of it); the next batch."""
        try:
            parsed = [ResponseAPDU.parse(response) for response in responses]
        except ValueError as error:
            raise OrderError(f"not an R-APDU: {error}") from error
        if not parsed:
            raise OrderError("a relay answer holds at least one R-APDU")
        with self._database.transaction() as db:
            loaded = records.locked_session(db, session_id)
            if loaded is None or loaded.relay is None:
                raise UnknownOrder("no such relay session")
            order, relay = loaded.order, loaded.relay
            if caller is not None:
                caller.admit(order, loaded.band, "relay session")
            context = self._context(db, loaded, now)
            current = int(relay.step)
            if step != current:
                if step == current - 1:  # a retried request: the same batch again
                    return self._relay(context, relay, current)
                raise OrderError(f"the session is at step {current}, not {step}")
            if order.state not in UNRESOLVED:
                raise OrderError(f"the order is over ({order.state.value})")
            if relay.expires_at < context.now:
                raise OrderError("the relay session expired: open a new one")
            procedure = self._procedure(order, loaded.card)
            sent = procedure.commands(context, relay.state)
            if len(parsed) > len(sent):
                raise OrderError(f"{len(parsed)} answers to a batch of {len(sent)} commands")
            state = relay.state
            for index, response in enumerate(parsed):
                state = procedure.receive(context, state, response)
                if order.state not in UNRESOLVED or index + 1 == len(parsed):
                    break
                following = procedure.commands(context, state)
                if not following or following[0].encode() != sent[index + 1].encode():
                    break  # the rest answered commands the order no longer wants: harmless, ignored
            relay.state, relay.step = state, str(current + 1)
            order.updated_at = context.now
            records.save(db, loaded)
            return self._relay(context, relay, current + 1)

    def resolve(self, order_id: int, now: datetime | None = None) -> OrderState:
        """The operator closes an order its card never proved, after :data:`CLEARING_WINDOW`
        without contact; its state afterwards. A band that comes back later finds it over."""
        with self._database.transaction() as db:
            loaded = _locked(db, order_id)
            order = loaded.order
            context = self._context(db, loaded, now)
            if order.state not in UNRESOLVED:
                raise OrderError(f"the order is over ({order.state.value})")
            waits_until = order.updated_at + CLEARING_WINDOW
            if context.now < waits_until:
                raise OrderError(f"the order waits for its card's proof until "
                                 f"{local(waits_until):%Y-%m-%d %H:%M} (Beijing time): the next "
                                 f"contact may still prove it")
            self._procedure(order, loaded.card).close_unproven(context)
            order.last_error = (f"closed by the operator after {CLEARING_WINDOW.days} days "
                                f"without the card's proof ({order.last_error or 'no contact'})")
            order.updated_at = context.now
            records.save(db, loaded)
            records.end_relays(db, order.id)
            return order.state

    def _relay(self, context: Context, relay: RelayRow, step: int) -> Relay:
        order = context.order
        batch = self._procedure(order, context.subject).commands(context, relay.state) \
            if order.state in UNRESOLVED else []
        return Relay(relay.id, step, tuple(apdu.encode() for apdu in batch), order.state)

    def _procedure(self, order: OrderRow, card: CardRow | None) -> Procedure:
        return procedure_for(order.kind, None if card is None else card.product)

    def _context(self, db: Db, loaded: Loaded, now: datetime | None) -> Context:
        """The context of a step (``now`` None: the service's clock)."""
        return Context(db, loaded.order, loaded.card, loaded.band, self._keys, self._terminal_id,
                       self.now(now))


def _existing(found: records.Keyed | None, kind: OrderKind, band_id: int,
              amount: int | None) -> int | None:
    """The order an idempotency key made already, if it is the same order; a different one is
    refused."""
    if found is None:
        return None
    if (found.kind, found.band_id) != (kind, band_id) or (
            amount is not None and found.amount != amount):
        raise OrderError("this idempotency key belongs to a different order")
    return found.id


def _locked(db: Db, order_id: int) -> Loaded:
    loaded = records.locked_order(db, order_id)
    if loaded is None:
        raise UnknownOrder("no such order")
    return loaded


def _idle(busy: int | None) -> None:
    if busy is not None:
        raise OrderError(f"order {busy} for this card is still unresolved: relay it first")


def _not_lost(band: BandRow | None) -> None:
    if band is not None and band.lost_at is not None:
        raise Forbidden("the band is reported lost: it can only receive its locks")


def _card(db: Db, band_id: int, app_serial: bytes) -> CardRow:
    card = records.card_by_serial(db, app_serial.hex().upper())
    if card is None or card.band_id != band_id:
        raise OrderError("no such card on this band")
    return card
