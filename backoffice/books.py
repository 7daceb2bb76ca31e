"""The clearing centre's books: every proven record once per card and counter, the anomalies
found, the blacklist, and how far each outbox has been read.

PostgreSQL in production, SQLite under ``$KOALA_HOME/clearing`` by default. A record is
booked by an insert that does nothing on a key already there, so any number of workers,
each with its own connection, book a record once however often it is delivered; what a
conflicting insert tells is sorted out by reading the row that won (:meth:`Books.book`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    create_engine,
    event,
    func,
    or_,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite

from issuer.sql import Database, Db, Sql

metadata = MetaData()

#: Proven records: ``kind`` debit (offline counter) or load (online counter).
taps = Table(
    "taps", metadata,
    Column("serial", String(20), primary_key=True),
    Column("kind", String(5), primary_key=True),
    Column("counter", Integer, primary_key=True),
    Column("issuer", String(16), nullable=False),
    Column("terminal", String(12), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("tx_type", Integer, nullable=False),
    Column("amount", Integer, nullable=False),
    Column("at", String(14), nullable=False),  # the terminal's local time, YYYYMMDDhhmmss
    Column("day", String(10), nullable=False, index=True),  # its date, YYYY-MM-DD
    Column("tac", String(8), nullable=False),
    Column("balance", Integer),  # the terminal's note of the balance after, where it has one
    Column("status", String(12), nullable=False),  # GOOD, or LISTED: paid after its blacklisting
)

anomalies = Table(
    "anomalies", metadata,
    Column("key", String(96), primary_key=True),  # one row per finding however often it is found
    Column("kind", String(24), nullable=False),
    Column("serial", String(20), nullable=False),
    Column("day", String(10), nullable=False, index=True),
    Column("detail", String(300), nullable=False),
)

blacklist = Table(
    "blacklist", metadata,
    Column("serial", String(20), primary_key=True),
    Column("since", String(14), nullable=False),  # local time of the report, YYYYMMDDhhmmss
    Column("reason", String(40), nullable=False),
)

#: How far the clearing has read each terminal's outbox (without a stream).
sources = Table(
    "sources", metadata,
    Column("name", String(255), primary_key=True),  # the outbox file's path
    Column("offset", BigInteger, nullable=False),
)

GOOD, LISTED = "good", "listed"


@dataclass(frozen=True, slots=True)
class Anomaly:
    key: str
    kind: str
    serial: str
    day: str
    detail: str


@dataclass(frozen=True, slots=True)
class Booking:
    """What one batch did: records booked, already there (redelivered or replayed)."""

    booked: int
    duplicates: int
    replays: list[str]  # keys of records already booked that came again as new
    conflicts: list[dict[str, Any]]  # rows whose card and counter were booked with another TAC


def engine_for(url: str) -> Engine:
    """An engine on the books, their tables created if missing."""
    options: dict[str, Any] = {}
    if url.startswith("sqlite"):
        options["connect_args"] = {"timeout": 30}
    else:
        options["pool_pre_ping"] = True
    engine = create_engine(url, **options)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
    metadata.create_all(engine)
    return engine


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    """WAL, so several workers on one file wait for each other instead of failing."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


_COLUMNS = ("serial", "kind", "counter", "issuer", "terminal", "seq", "tx_type", "amount", "at",
            "day", "tac", "balance", "status")
_TYPES = ("varchar", "varchar", "int", "varchar", "varchar", "bigint", "int", "int", "varchar",
          "varchar", "varchar", "int", "varchar")
#: A batch in one statement on PostgreSQL: one array per column, prepared once.
_BOOK_BATCH = Sql(
    f"INSERT INTO taps ({', '.join(_COLUMNS)}) SELECT * FROM unnest("
    + ", ".join(f"CAST(:{name} AS {kind}[])" for name, kind in zip(_COLUMNS, _TYPES, strict=True))
    + ") ON CONFLICT DO NOTHING RETURNING serial, kind, counter")
#: A row at a time on SQLite, in process (no round trips to save).
_BOOK_ROW = Sql(f"INSERT INTO taps ({', '.join(_COLUMNS)}) VALUES ("
                + ", ".join(f":{name}" for name in _COLUMNS)
                + ") ON CONFLICT DO NOTHING RETURNING serial, kind, counter")
_HELD_TAC = Sql("SELECT tac FROM taps WHERE serial = :serial AND kind = :kind AND counter = :counter")
_NOTE = Sql('INSERT INTO anomalies ("key", kind, serial, day, detail) '
            "VALUES (:key, :kind, :serial, :day, :detail) ON CONFLICT DO NOTHING")
_READ_TO = Sql('INSERT INTO sources (name, "offset") VALUES (:name, :offset) '
               'ON CONFLICT (name) DO UPDATE SET "offset" = excluded."offset"')


class Books:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._insert = (postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert)
        self._database = Database(engine)

    def book(self, rows: Sequence[dict[str, Any]], findings: Iterable[Anomaly],
             fresh: set[tuple[str, str, int]], offsets: dict[str, int] | None = None) -> Booking:
        """Book ``rows`` and note ``findings`` in one transaction; ``fresh`` names the rows
        delivered for the first time (one already booked among them is a replay, a
        redelivery is not); ``offsets`` records how far outboxes have been read.

        On the bare driver (:mod:`issuer.sql`): through SQLAlchemy, psycopg spent more time
        splitting the multi-row INSERT than the database booking it (BENCHMARKS.md)."""
        with self._database.transaction() as db:
            booked = _insert(db, rows)
            others = [row for row in rows if (row["serial"], row["kind"], row["counter"]) not in booked]
            replays, conflicts = self._sort_out(db, others, fresh)
            notes = [_dict(finding) for finding in findings]
            notes += [_dict(Anomaly(f"conflict:{row['serial']}:{row['kind']}:{row['counter']}:"
                                    f"{row['tac']}", "conflict", row["serial"], row["day"],
                                    f"counter {row['counter']} already booked with another TAC "
                                    f"(terminal {row['terminal']} seq {row['seq']})"))
                      for row in conflicts]
            notes += [_dict(Anomaly(f"replay:{key}", "replay", key.split(":")[0], row["day"],
                                    f"{row['kind']} {row['counter']} from terminal "
                                    f"{row['terminal']} seq {row['seq']} came again: not booked "
                                    f"again"))
                      for key, row in replays]
            for note in notes:
                db.write(_NOTE, **note)
            for name, offset in (offsets or {}).items():
                db.write(_READ_TO, name=name, offset=offset)
        return Booking(len(booked), len(others) - len(conflicts), [key for key, _ in replays],
                       conflicts)

    @staticmethod
    def _sort_out(db: Db, others: list[dict[str, Any]], fresh: set[tuple[str, str, int]]
                  ) -> tuple[list[tuple[str, dict[str, Any]]], list[dict[str, Any]]]:
        """Of rows whose key was booked already: those that came again as new (replays) and
        those booked with another TAC (conflicts); the rest are redeliveries."""
        replays, conflicts = [], []
        for row in others:
            key = (row["serial"], row["kind"], row["counter"])
            if db.value(_HELD_TAC, serial=key[0], kind=key[1], counter=key[2]) != row["tac"]:
                conflicts.append(row)
            elif key in fresh:
                replays.append((f"{key[0]}:{key[1]}:{key[2]}", row))
        return replays, conflicts

    def offsets(self) -> dict[str, int]:
        with self.engine.connect() as connection:
            return {row.name: row.offset for row in connection.execute(select(sources))}

    def listed(self) -> dict[str, str]:
        """The blacklist as the clearing knows it: serial → local time of the report."""
        with self.engine.connect() as connection:
            return {row.serial: row.since for row in connection.execute(select(blacklist))}

    def list_card(self, serial: str, since: str, reason: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(self._insert(blacklist).values(serial=serial, since=since,
                                                              reason=reason)
                               .on_conflict_do_nothing())

    def unlist_card(self, serial: str) -> None:
        """The card is good money again from now on (found); what it paid while listed stays
        held."""
        with self.engine.begin() as connection:
            connection.execute(blacklist.delete().where(blacklist.c.serial == serial))

    def day_taps(self, day: str) -> list[Any]:
        """The day's taps and each card's record just before its first of the day (an entry
        the evening before pairs with an exit after midnight), by card and counter."""
        with self.engine.connect() as connection:
            return list(connection.execute(
                select(taps).where(or_(taps.c.day == day, and_(
                    taps.c.serial.in_(select(taps.c.serial).where(taps.c.day == day)),
                    taps.c.day < day, taps.c.kind == "debit")))
                .order_by(taps.c.serial, taps.c.kind, taps.c.counter)))

    def anomalies(self, day: str | None = None) -> list[Any]:
        query = select(anomalies).order_by(anomalies.c.kind, anomalies.c.key)
        if day is not None:
            query = query.where(anomalies.c.day == day)
        with self.engine.connect() as connection:
            return list(connection.execute(query))

    def note(self, findings: Iterable[Anomaly]) -> None:
        rows = [_dict(finding) for finding in findings]
        if rows:
            with self.engine.begin() as connection:
                connection.execute(self._insert(anomalies).on_conflict_do_nothing(), rows)

    def totals(self) -> dict[str, tuple[int, int]]:
        """Per card: the fen its good debits took and its good loads gave."""
        result: dict[str, tuple[int, int]] = {}
        with self.engine.connect() as connection:
            for row in connection.execute(
                    select(taps.c.serial, taps.c.kind, func.sum(taps.c.amount).label("fen"))
                    .where(taps.c.status == GOOD).group_by(taps.c.serial, taps.c.kind)):
                spent, loaded = result.get(row.serial, (0, 0))
                result[row.serial] = ((spent + row.fen, loaded) if row.kind == "debit"
                                      else (spent, loaded + row.fen))
        return result


def _dict(anomaly: Anomaly) -> dict[str, Any]:
    return {"key": anomaly.key[:96], "kind": anomaly.kind, "serial": anomaly.serial,
            "day": anomaly.day, "detail": anomaly.detail[:300]}


def _insert(db: Db, rows: Sequence[dict[str, Any]]) -> set[tuple[str, str, int]]:
    """Insert what is not booked yet; the keys of the rows inserted."""
    if not rows:
        return set()
    db.wrote = True
    if db.postgresql:
        inserted = db.all(_BOOK_BATCH, **{name: [row[name] for row in rows] for name in _COLUMNS})
    else:
        inserted = [found for row in rows for found in db.all(_BOOK_ROW, **row)]
    return {(serial, kind, counter) for serial, kind, counter in inserted}
