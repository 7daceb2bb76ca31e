"""The issuer's hot path on the bare driver: each statement written once, prepared once per
connection, and sent in as few round trips as the logic allows.

Through the ORM a top-up cost the issuer about 7 ms of CPU for its database work alone; on
psycopg directly about 1.6 ms (see BENCHMARKS.md, issue 17). So the order service
(:mod:`issuer.orders`) and the ledger (:mod:`issuer.ledger`) speak SQL here, on the pooled
DBAPI connections of the same SQLAlchemy engine, in the same schema the ORM maps.

* A :class:`Sql` is one statement in both dialects, built at import: ``:name`` parameters,
  and ``{...}`` for text PostgreSQL alone gets (``FOR UPDATE``: SQLite's writers are
  serialised by ``BEGIN IMMEDIATE`` anyway).
* Statements stay prepared on PostgreSQL because the hot path never ROLLBACKs a transaction
  that wrote nothing (psycopg forgets every prepared statement on ROLLBACK): a refusal
  before the first write commits the empty transaction instead. (psycopg's pipeline mode,
  which would save round trips, costs both sides more CPU than it saves: measured.)
* SQLite gets the values in the ORM's storage formats (timestamps as text, UUIDs as 32 hex
  digits, JSON as text); :func:`timestamp`, :func:`uuid_of` and :func:`json_of` read them
  back from either database.

:data:`COUNTS` counts statements, transactions and round trips in this process, for the
benchmark (``KOALA_SQL_COUNTS``, see :func:`issuer.server.from_environment`).
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any

from psycopg.types.json import Json
from sqlalchemy import Dialect, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from issuer.db import utc

_PARAMETER = re.compile(r"(?<![:\w]):(\w+)")
_POSTGRES_ONLY = re.compile(r"\{([^}]*)\}")
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"
_PG_IN_ERROR = 3  # psycopg.pq.TransactionStatus.INERROR
ACCOUNTS_KNOWN = 100_000  # account ids a process keeps (a few MB)


@dataclass
class Counts:
    statements: int = 0
    transactions: int = 0
    round_trips: int = 0

    def dump(self, directory: Path) -> None:
        """Write this process's counts to ``<directory>/<pid>.json`` (at its exit)."""
        (directory / f"{os.getpid()}.json").write_text(json.dumps(asdict(self)))


COUNTS = Counts()


class Sql:
    """One statement, as each dialect's driver takes it."""

    __slots__ = ("named", "names", "postgresql", "rows", "sqlite")

    def __init__(self, text: str) -> None:
        text = " ".join(text.split())
        postgresql, sqlite = _POSTGRES_ONLY.sub(r"\1", text), _POSTGRES_ONLY.sub("", text)
        self.named = postgresql  # with its :name parameters
        #: The parameters in the order they appear: the drivers take them by position.
        self.names = tuple(_PARAMETER.findall(postgresql))
        if self.names != tuple(_PARAMETER.findall(sqlite)):
            raise ValueError(f"a PostgreSQL-only part holds parameters: {text!r}")
        self.postgresql = _PARAMETER.sub("%s", postgresql)
        self.sqlite = _PARAMETER.sub("?", sqlite)
        self.rows = text.startswith("SELECT") or " RETURNING " in text  # whether it returns rows

    def __repr__(self) -> str:
        return f"Sql({self.sqlite!r})"

    def bound(self, **expressions: str) -> str:
        """PostgreSQL's text with each ``:name`` parameter replaced by ``expressions[name]``
        (left as it is if not given): the statement as a tool such as pgbench takes it."""
        return _PARAMETER.sub(lambda m: expressions.get(m.group(1), m.group(0)), self.named)


class Db:
    """One transaction's statements on one DBAPI connection (one cursor, reused)."""

    def __init__(self, connection: Any, dialect: Dialect, accounts: dict[str, int] | None = None) -> None:
        #: The ledger's account ids known from committed transactions (never changed once
        #: made), and those this transaction found, to be known once it commits.
        self.accounts: dict[str, int] = {} if accounts is None else accounts
        self.found: dict[str, int] = {}
        self._cursor = connection.cursor()
        self._driver_error: type[Exception] = dialect.dbapi.Error  # type: ignore[union-attr]
        self.postgresql = dialect.name == "postgresql"
        self.wrote = False

    @contextmanager
    def errors(self, sql: Sql | str) -> Iterator[None]:
        """The driver's errors as SQLAlchemy raises them (``IntegrityError``,
        ``OperationalError``, ...): one hierarchy for the issuer's callers, ORM or not."""
        try:
            yield
        except self._driver_error as error:
            raise DBAPIError.instance(str(sql), None, error, self._driver_error) from error

    def all(self, sql: Sql, **params: Any) -> list[tuple[Any, ...]]:
        """The rows of ``sql`` (none for a statement that returns none)."""
        COUNTS.statements += 1
        COUNTS.round_trips += 1
        cursor = self._cursor
        with self.errors(sql):
            if self.postgresql:
                cursor.execute(sql.postgresql, [_for_postgresql(params[name]) for name in sql.names],
                               prepare=True)
            else:
                cursor.execute(sql.sqlite, [_for_sqlite(params[name]) for name in sql.names])
            return cursor.fetchall() if sql.rows else []

    def one(self, sql: Sql, **params: Any) -> tuple[Any, ...] | None:
        rows = self.all(sql, **params)
        return rows[0] if rows else None

    def value(self, sql: Sql, **params: Any) -> Any:
        row = self.one(sql, **params)
        return None if row is None else row[0]

    def write(self, sql: Sql, **params: Any) -> Any:
        """A statement that changes rows (a failure afterwards rolls the transaction back);
        the first column of its first row, if it returns any."""
        self.wrote = True
        return self.value(sql, **params)


class Database:
    """Transactions on an engine's database, from the engine's pool or from a pool of their
    own (``own_pool``: the same settings, other connections)."""

    def __init__(self, engine: Engine, own_pool: bool = False) -> None:
        self._pool = engine.pool.recreate() if own_pool else engine.pool
        self._dialect = engine.dialect
        self._accounts: dict[str, int] = {}

    @contextmanager
    def transaction(self) -> Iterator[Db]:
        """A transaction on a pooled connection: committed when the block ends, rolled back if
        it raises after a write (committed, empty, if it raises before one)."""
        pooled = self._pool.connect()
        connection: Any = pooled.driver_connection
        db = Db(connection, self._dialect, self._accounts)
        try:
            COUNTS.round_trips += 1  # BEGIN: psycopg's before the first statement, ours on SQLite
            if not db.postgresql:
                connection.execute("BEGIN IMMEDIATE")
            yield db
            _end(db, connection, commit=True)
            if len(self._accounts) > ACCOUNTS_KNOWN:
                self._accounts.clear()
            self._accounts.update(db.found)
        except BaseException:
            if _abandon(db, connection):
                pooled.invalidate()
            raise
        finally:
            pooled.close()


def _end(db: Db, connection: Any, commit: bool) -> None:
    COUNTS.transactions += 1
    COUNTS.round_trips += 1
    with db.errors("COMMIT" if commit else "ROLLBACK"):
        if db.postgresql:
            connection.commit() if commit else connection.rollback()
        else:
            connection.execute("COMMIT" if commit else "ROLLBACK")


def _abandon(db: Db, connection: Any) -> bool:
    """End a transaction whose block raised: commit it if it wrote nothing (and did not fail
    in the database), else roll it back. Whether the connection is broken."""
    if db.postgresql and (connection.closed or connection.broken):
        return True
    failed = db.postgresql and connection.info.transaction_status == _PG_IN_ERROR
    try:
        _end(db, connection, commit=not (db.wrote or failed))
    except Exception:  # the block's error is the one to report
        return True
    return False


def of(session: Session) -> Db:
    """The ORM session's own transaction, for the ledger's statements beside its own."""
    session.flush()
    connection = session.connection()
    return Db(connection.connection.driver_connection, connection.dialect)


def _for_postgresql(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return Json(value)
    return value


def _for_sqlite(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime(_SQLITE_TIME) if value.tzinfo else \
            value.strftime(_SQLITE_TIME)
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, dict):
        return json.dumps(value)
    return value


def timestamp(value: Any) -> datetime:
    """A timestamp column as an aware UTC instant (SQLite keeps naive UTC text)."""
    return utc(datetime.fromisoformat(value) if isinstance(value, str) else value)


def optional_timestamp(value: Any) -> datetime | None:
    return None if value is None else timestamp(value)


def uuid_of(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(value)


def json_of(value: Any) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(value) if isinstance(value, str) else value
    return loaded


def placeholders(prefix: str, count: int) -> Sequence[str]:
    """``:prefix0, :prefix1, ...``: the parameters of an IN list or VALUES of ``count``."""
    return [f":{prefix}{index}" for index in range(count)]
