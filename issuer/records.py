"""The rows an order works on, as the order service reads and writes them on the bare driver
(:mod:`issuer.sql`): an order, its card, its band and its relay session.

They are the ORM's tables (:mod:`issuer.db`) without the ORM: a relay step loads all four
in one locked query, procedures change the records' fields in memory, and :func:`save`
writes back each row that changed with one fixed statement per table.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter
from typing import Any

from issuer.db import CardStatus, OrderKind, OrderState
from issuer.ledger import balance_of
from issuer.sql import Db, Sql, json_of, optional_timestamp, timestamp, uuid_of

#: The states of an order not yet over, and the statuses of a card that holds its product.
UNRESOLVED = (OrderState.PENDING, OrderState.IN_RELAY, OrderState.DEBITED)
HOLDING = (CardStatus.ISSUING, CardStatus.ACTIVE)


@dataclass(slots=True)
class BandRow:
    id: int
    cplc: str
    uid: str
    device_token_hash: str
    isd_key_set: str
    lost_at: datetime | None


@dataclass(slots=True)
class CardRow:
    id: int
    band_id: int
    product: str
    aid: str
    app_serial: str
    status: CardStatus
    created_at: datetime


@dataclass(slots=True)
class OrderRow:
    id: int
    idempotency_key: str
    kind: OrderKind
    band_id: int
    card_id: int | None
    amount: int
    state: OrderState
    created_at: datetime
    updated_at: datetime
    last_error: str | None
    moved_to: int | None


@dataclass(slots=True)
class RelayRow:
    id: uuid.UUID
    order_id: int
    step: str
    state: dict[str, Any]
    expires_at: datetime


@dataclass(slots=True)
class Loaded:
    """The rows of one order as a transaction read them, to write back what changed."""

    order: OrderRow
    card: CardRow | None
    band: BandRow
    relay: RelayRow | None = None
    read: tuple[Any, ...] = field(default=())

    def __post_init__(self) -> None:
        self.read = self._values()

    def _values(self) -> tuple[Any, ...]:
        return tuple(map(_snapshot, (self.order, self.card, self.band, self.relay)))


def _snapshot(row: Any) -> tuple[Any, ...] | None:
    """A row's field values, to tell later whether it changed (a relay session's state is
    replaced, never changed in place, so the values need no copies)."""
    return None if row is None else _FIELDS[type(row)](row)


_FIELDS = {cls: attrgetter(*cls.__slots__) for cls in (BandRow, CardRow, OrderRow, RelayRow)}
_BAND = "b.id, b.cplc, b.uid, b.device_token_hash, b.isd_key_set, b.lost_at"
_CARD = "c.id, c.band_id, c.product, c.aid, c.app_serial, c.status, c.created_at"
_ORDER = ("o.id, o.idempotency_key, o.kind, o.band_id, o.card_id, o.amount, o.state, "
          "o.created_at, o.updated_at, o.last_error, o.moved_to")
_RELAY = "r.id, r.order_id, r.step, r.state, r.expires_at"
_WIDTHS = tuple(columns.count(",") + 1 for columns in (_ORDER, _CARD, _BAND, _RELAY))


def band(row: tuple[Any, ...]) -> BandRow:
    id_, cplc, uid, token, key_set, lost_at = row
    return BandRow(id_, cplc, uid, token, key_set, optional_timestamp(lost_at))


def card(row: tuple[Any, ...]) -> CardRow | None:
    if row[0] is None:
        return None
    id_, band_id, product, aid, serial, status, created_at = row
    return CardRow(id_, band_id, product, aid, serial, CardStatus(status), timestamp(created_at))


def order(row: tuple[Any, ...]) -> OrderRow:
    id_, key, kind, band_id, card_id, amount, state, created, updated, error, moved_to = row
    return OrderRow(id_, key, OrderKind(kind), band_id, card_id, int(amount), OrderState(state),
                    timestamp(created), timestamp(updated), error, moved_to)


def relay(row: tuple[Any, ...]) -> RelayRow:
    id_, order_id, step, state, expires_at = row
    return RelayRow(uuid_of(id_), order_id, step, json_of(state), timestamp(expires_at))


def _split(row: tuple[Any, ...], widths: tuple[int, ...]) -> list[tuple[Any, ...]]:
    parts, start = [], 0
    for width in widths:
        parts.append(row[start:start + width])
        start += width
    return parts


_ORDER_LOCKED = Sql(f"SELECT {_ORDER}, {_CARD}, {_BAND} FROM orders o "
                    "LEFT JOIN cards c ON c.id = o.card_id JOIN bands b ON b.id = o.band_id "
                    "WHERE o.id = :id {FOR UPDATE OF o}")
SESSION_LOCKED = Sql(f"SELECT {_ORDER}, {_CARD}, {_BAND}, {_RELAY} FROM relay_sessions r "
                     "JOIN orders o ON o.id = r.order_id LEFT JOIN cards c ON c.id = o.card_id "
                     "JOIN bands b ON b.id = o.band_id WHERE r.id = :id {FOR UPDATE OF r, o}")


def locked_order(db: Db, order_id: int) -> Loaded | None:
    """The order, locked until the transaction ends, with its card (if any) and band."""
    row = db.one(_ORDER_LOCKED, id=order_id)
    if row is None:
        return None
    o, c, b = _split(row, _WIDTHS[:3])
    return Loaded(order(o), card(c), band(b))


def locked_session(db: Db, session_id: uuid.UUID) -> Loaded | None:
    """A relay session and its order, both locked, with the order's card and band."""
    row = db.one(SESSION_LOCKED, id=session_id)
    if row is None:
        return None
    o, c, b, r = _split(row, _WIDTHS)
    return Loaded(order(o), card(c), band(b), relay(r))


SAVE_ORDER = Sql("UPDATE orders SET amount = :amount, state = :state, updated_at = :updated_at, "
                 "last_error = :last_error, moved_to = :moved_to WHERE id = :id")
_SAVE_CARD = Sql("UPDATE cards SET status = :status, created_at = :created_at WHERE id = :id")
_SAVE_BAND = Sql("UPDATE bands SET isd_key_set = :isd_key_set, lost_at = :lost_at, "
                 "device_token_hash = :device_token_hash WHERE id = :id")
SAVE_RELAY = Sql("UPDATE relay_sessions SET step = :step, state = :state WHERE id = :id")


def save(db: Db, loaded: Loaded) -> None:
    """Write back each of the rows that changed since they were read."""
    for row, before in zip((loaded.order, loaded.card, loaded.band, loaded.relay), loaded.read,
                           strict=True):
        if row is not None and _snapshot(row) != before:
            save_row(db, row)
    loaded.read = loaded._values()


# -- the statements of placing orders ---------------------------------------------------------

def _stored(values: tuple[OrderState, ...] | tuple[CardStatus, ...]) -> str:
    """An SQL list of enum values, as the tables store them."""
    return f"({', '.join(repr(value.value) for value in values)})"


_UNRESOLVED, _HOLDING = _stored(UNRESOLVED), _stored(HOLDING)
_BY_KEY = Sql("SELECT id, kind, band_id, amount FROM orders WHERE idempotency_key = :key")
_BAND_BY_ID = Sql(f"SELECT {_BAND} FROM bands b WHERE b.id = :id")
_CARD_BY_SERIAL = Sql(f"SELECT {_CARD} FROM cards c WHERE c.app_serial = :serial")
_BUSY = Sql(f"SELECT id FROM orders WHERE card_id = :card AND state IN {_UNRESOLVED} LIMIT 1")
_HELD = Sql("SELECT app_serial FROM cards WHERE band_id = :band AND product = :product "
            f"AND status IN {_HOLDING} LIMIT 1")
_CARDS_OF = Sql(f"SELECT {_CARD} FROM cards c WHERE c.band_id = :band AND c.status = :status "
                "ORDER BY c.id")
_NEW_CARD = Sql("INSERT INTO cards (band_id, product, aid, app_serial, status, created_at) "
                "VALUES (:band_id, :product, :aid, :app_serial, :status, :created_at) "
                "ON CONFLICT (app_serial) DO NOTHING RETURNING id")
NEW_ORDER = Sql(
    "INSERT INTO orders (idempotency_key, kind, band_id, card_id, amount, state, created_at, "
    "updated_at, moved_to) VALUES (:key, :kind, :band_id, :card_id, :amount, :state, :at, :at, "
    ":moved_to) RETURNING id")
_KEYED = Sql("SELECT id FROM orders WHERE idempotency_key LIKE :prefix ESCAPE '!' ORDER BY id")
_LAST_LOST = Sql(f"SELECT {_ORDER} FROM orders o WHERE o.card_id = :card AND o.kind = 'lost' "
                 "ORDER BY o.id DESC LIMIT 1 {FOR UPDATE}")
_RELAYS_OF = Sql(f"SELECT {_RELAY} FROM relay_sessions r WHERE r.order_id = :order")
_END_RELAYS = Sql("DELETE FROM relay_sessions WHERE order_id = :order")
NEW_RELAY = Sql("INSERT INTO relay_sessions (id, order_id, step, state, expires_at) "
                "VALUES (:id, :order_id, :step, :state, :expires_at)")


@dataclass(frozen=True, slots=True)
class Keyed:
    """The order an idempotency key made already."""

    id: int
    kind: OrderKind
    band_id: int
    amount: int


def _keyed(row: tuple[Any, ...] | None) -> Keyed | None:
    return None if row is None else Keyed(row[0], OrderKind(row[1]), row[2], int(row[3]))


def by_key(db: Db, key: str) -> Keyed | None:
    return _keyed(db.one(_BY_KEY, key=key))


PLACING = Sql(
    f"SELECT {_BAND}, {_CARD}, k.id, k.kind, k.band_id, k.amount, "
    f"(SELECT u.id FROM orders u WHERE u.card_id = c.id AND u.state IN {_UNRESOLVED} LIMIT 1), "
    f"{balance_of('funding')} "
    "FROM bands b LEFT JOIN cards c ON c.app_serial = :serial "
    "LEFT JOIN orders k ON k.idempotency_key = :key WHERE b.id = :band")


@dataclass(frozen=True, slots=True)
class Placing:
    """What placing a top-up reads, in one statement: the band, the card of the serial (on
    any band), the order the idempotency key made already, the card's unresolved order and
    the funding account's balance."""

    band: BandRow
    card: CardRow | None
    existing: Keyed | None
    busy: int | None
    funds: int


def placing(db: Db, band_id: int, serial: str, key: str, funding: str) -> Placing | None:
    """What placing a top-up reads; None if there is no such band."""
    row = db.one(PLACING, band=band_id, serial=serial, key=key, funding=funding)
    if row is None:
        return None
    b, c, k, (busy_order, funds) = _split(row, (_WIDTHS[2], _WIDTHS[1], 4, 2))
    return Placing(band(b), card(c), None if k[0] is None else _keyed(k), busy_order, int(funds))


def band_by_id(db: Db, band_id: int) -> BandRow | None:
    row = db.one(_BAND_BY_ID, id=band_id)
    return None if row is None else band(row)


def card_by_serial(db: Db, serial: str) -> CardRow | None:
    row = db.one(_CARD_BY_SERIAL, serial=serial)
    return None if row is None else card(row)


def busy(db: Db, card_id: int) -> int | None:
    """An unresolved order of the card's, if it has one."""
    found: int | None = db.value(_BUSY, card=card_id)
    return found


def held(db: Db, band_id: int, product: str) -> str | None:
    """The serial of the band's card of ``product`` that is issuing or active, if any."""
    found: str | None = db.value(_HELD, band=band_id, product=product)
    return found


def cards_of(db: Db, band_id: int, status: CardStatus) -> list[CardRow]:
    return [c for c in map(card, db.all(_CARDS_OF, band=band_id, status=status)) if c is not None]


def new_card(db: Db, band_id: int, product: str, aid: str, app_serial: str,
             at: datetime) -> CardRow | None:
    """A new card, issuing; None if its serial is taken (a race decides by the unique serial)."""
    made = db.write(_NEW_CARD, band_id=band_id, product=product, aid=aid, app_serial=app_serial,
                    status=CardStatus.ISSUING, created_at=at)
    return None if made is None else CardRow(made, band_id, product, aid, app_serial,
                                             CardStatus.ISSUING, at)


def new_order(db: Db, key: str, kind: OrderKind, band_id: int, card_id: int | None, amount: int,
              at: datetime, moved_to: int | None = None,
              state: OrderState = OrderState.PENDING) -> int:
    made: int = db.write(NEW_ORDER, key=key, kind=kind, band_id=band_id, card_id=card_id,
                         amount=amount, state=state, at=at, moved_to=moved_to)
    return made


def keyed(db: Db, prefix: str) -> list[int]:
    """The orders whose idempotency keys start with ``prefix``."""
    escaped = prefix.replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return [row[0] for row in db.all(_KEYED, prefix=f"{escaped}%")]


def last_lost(db: Db, card_id: int) -> OrderRow | None:
    """The card's latest lock order (a lost band's), locked."""
    row = db.one(_LAST_LOST, card=card_id)
    return None if row is None else order(row)


def relays_of(db: Db, order_id: int) -> list[RelayRow]:
    return [relay(row) for row in db.all(_RELAYS_OF, order=order_id)]


def end_relays(db: Db, order_id: int) -> None:
    """An order closed without its card: no relay session may carry it on."""
    db.write(_END_RELAYS, order=order_id)


def new_relay(db: Db, row: RelayRow) -> None:
    db.write(NEW_RELAY, id=row.id, order_id=row.order_id, step=row.step, state=row.state,
             expires_at=row.expires_at)


def save_row(db: Db, row: OrderRow | CardRow | BandRow | RelayRow) -> None:
    """Write one row back, whole."""
    sql = {OrderRow: SAVE_ORDER, CardRow: _SAVE_CARD, BandRow: _SAVE_BAND,
           RelayRow: SAVE_RELAY}[type(row)]
    db.write(sql, **dict(zip(row.__slots__, _FIELDS[type(row)](row), strict=True)))
