"""The issuer's database: engines, sessions, the ORM models and the migration entry point.

SQLite (the default, ``$KOALA_HOME/issuer/issuer.db``) and PostgreSQL through
psycopg 3 (``postgresql+psycopg://user@host/db``) hold the same schema, which
only the Alembic migrations in ``issuer/migrations`` create. SQLite runs in WAL
mode with foreign keys on, and every transaction starts with ``BEGIN
IMMEDIATE`` so writers queue on the busy timeout instead of failing when one
upgrades a read snapshot. PostgreSQL runs at READ COMMITTED; races between
writers are settled by unique constraints (see :mod:`issuer.ledger`).

Money is integer fen everywhere. Timestamps are UTC instants that the caller's
clock gives (:mod:`reader.clock`): no column has a default time, so a row
written without one fails instead of taking the machine's clock.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import JSON, BigInteger, DateTime, Engine, ForeignKey, String, Text, create_engine, event
from sqlalchemy import Enum as SAEnum
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker

from common.home import default_root

MIGRATIONS = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_S = 30.0


def default_url() -> str:
    return f"sqlite:///{default_root() / 'issuer' / 'issuer.db'}"


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    """An engine for ``url`` (default: the SQLite file under ``$KOALA_HOME``)."""
    parsed = make_url(url or default_url())
    if parsed.drivername in {"postgres", "postgresql"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() != "sqlite":
        # No pre-ping: a connection the server dropped fails its request (503, nothing
        # changed) and is discarded (issuer.sql.transaction), instead of every checkout paying
        # a round trip. The pool's default size is enough: a worker's hot path runs on its
        # event loop, one transaction at a time.
        return create_engine(parsed, **kwargs)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S}, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (SAVEPOINTs work)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def migrate(url: str | Engine | None = None, revision: str = "head") -> None:
    """``alembic upgrade head`` on ``url``, without an alembic.ini."""
    engine = url if isinstance(url, Engine) else make_engine(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        if not isinstance(url, Engine):
            engine.dispose()


def utc(moment: datetime) -> datetime:
    """A timestamp as read back: SQLite gives naive UTC, PostgreSQL an aware instant."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _enum(cls: type[StrEnum], name: str) -> SAEnum:
    return SAEnum(cls, name=name, native_enum=False, create_constraint=True, length=16,
                  values_callable=lambda members: [member.value for member in members])


class CardStatus(StrEnum):
    ISSUING = "issuing"
    ACTIVE = "active"
    LOCKED = "locked"
    CANCELLED = "cancelled"
    MOVED = "moved"


class OrderKind(StrEnum):
    ISSUE = "issue"
    TOPUP = "topup"
    CANCEL = "cancel"
    LOST = "lost"
    REKEY = "rekey"  # the card manager's test keys replaced by the issuer's (registration)
    REGISTER = "register"  # a card made elsewhere taken over at the balance it proves
    UNLOCK = "unlock"  # a found band's card, whose balance stayed on it, answers readers again


class OrderState(StrEnum):
    PENDING = "pending"
    IN_RELAY = "in_relay"
    DEBITED = "debited"
    SETTLED = "settled"
    REFUNDED = "refunded"
    FAILED = "failed"


class Base(DeclarativeBase):
    pass


Timestamp = DateTime(timezone=True)


class Band(Base):
    __tablename__ = "bands"
    id: Mapped[int] = mapped_column(primary_key=True)
    cplc: Mapped[str] = mapped_column(String(128), unique=True)  # hex
    uid: Mapped[str] = mapped_column(String(32))  # hex
    device_token_hash: Mapped[str] = mapped_column(String(128))
    #: "test": GP's test keys (development bands); else the key store's ``<name>/gp/*`` masters, KDF3.
    isd_key_set: Mapped[str] = mapped_column(String(64), default="test", server_default="test")
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    #: Reported lost: its device token may only sync (receive its locks), never order.
    lost_at: Mapped[datetime | None] = mapped_column(Timestamp)
    cards: Mapped[list[Card]] = relationship(back_populates="band")


class Card(Base):
    __tablename__ = "cards"
    id: Mapped[int] = mapped_column(primary_key=True)
    band_id: Mapped[int] = mapped_column(ForeignKey("bands.id"), index=True)
    product: Mapped[str] = mapped_column(String(32))
    aid: Mapped[str] = mapped_column(String(32))  # hex
    app_serial: Mapped[str] = mapped_column(String(20), unique=True)  # hex, 10 bytes
    status: Mapped[CardStatus] = mapped_column(_enum(CardStatus, "card_status"),
                                               default=CardStatus.ISSUING)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    band: Mapped[Band] = relationship(back_populates="cards")


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[OrderKind] = mapped_column(_enum(OrderKind, "order_kind"))
    band_id: Mapped[int] = mapped_column(ForeignKey("bands.id"), index=True)
    card_id: Mapped[int | None] = mapped_column(ForeignKey("cards.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger, default=0)  # fen
    state: Mapped[OrderState] = mapped_column(_enum(OrderState, "order_state"),
                                              default=OrderState.PENDING)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)
    last_error: Mapped[str | None] = mapped_column(Text)
    #: A lost card's order: the band whose funding account takes the balance once it is locked.
    moved_to: Mapped[int | None] = mapped_column(ForeignKey("bands.id"))


class RelaySession(Base):
    __tablename__ = "relay_sessions"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    step: Mapped[str] = mapped_column(String(32))
    state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # the script position
    expires_at: Mapped[datetime] = mapped_column(Timestamp)


class Account(Base):
    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(128), unique=True)  # "funding:alice", "card:<serial>"
    created_at: Mapped[datetime] = mapped_column(Timestamp)


class Transaction(Base):
    __tablename__ = "ledger_transactions"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    entries: Mapped[list[Entry]] = relationship(back_populates="transaction", order_by="Entry.id")


class Entry(Base):
    """One journal line: a signed amount in fen on one account. Never updated or deleted."""

    __tablename__ = "entries"
    id: Mapped[int] = mapped_column(primary_key=True)
    transaction_id: Mapped[int] = mapped_column(ForeignKey("ledger_transactions.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    transaction: Mapped[Transaction] = relationship(back_populates="entries")
    account: Mapped[Account] = relationship()
