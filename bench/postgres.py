"""The bench's own PostgreSQL database on a shared server, and the server's counters for it.

The bench creates a database of its own (and drops it at the end) so that
what ``pg_stat_database`` counts for it is the issuer's work alone. PostgreSQL
15 keeps each backend's counts in the backend until it flushes them, at
transaction end but at most once a second, and an idle backend up to 10 s
later; a backend that exits flushes what it holds. So :func:`counters` is read
once no backend of the database is left (the issuer stopped), and until two
reads agree, each after ``pg_stat_clear_snapshot()``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url

from bench.backends import parent
from issuer.db import make_engine


@dataclass(frozen=True, slots=True)
class Counters:
    transactions: int  # xact_commit + xact_rollback
    sessions: int  # connections established


@contextmanager
def scratch_database(server: str) -> Iterator[tuple[str, Connection]]:
    """A new database on ``server`` (a URL whose database the bench only connects to, to
    create and watch its own): its name and an autocommit connection to ``server`` for
    watching it. Dropped at the end, whoever is still connected."""
    name = f"koala_bench_{secrets.token_hex(5)}"
    admin = make_engine(server, isolation_level="AUTOCOMMIT", pool_size=1)
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
            try:
                yield name, connection
            finally:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def database_url(server: str, name: str) -> str:
    return make_url(server).set(database=name).render_as_string(hide_password=False)


def postmaster(connection: Connection) -> int:
    """The server's postmaster: the parent of our backend (the server must be on this machine)."""
    return parent(int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one()))


def backend_pids(connection: Connection, name: str) -> list[int]:
    """The client backends connected to database ``name`` now."""
    return list(connection.execute(text(
        "SELECT pid FROM pg_stat_activity WHERE datname = :name AND backend_type = 'client backend'"),
        {"name": name}).scalars())


def counters(connection: Connection, name: str, timeout: float = 30.0) -> Counters:
    """``name``'s transactions and sessions so far, once none of its backends is left."""
    deadline = time.monotonic() + timeout
    while backend_pids(connection, name):
        if time.monotonic() > deadline:
            raise RuntimeError(f"backends still connected to {name} after {timeout:.0f} s")
        time.sleep(0.1)
    last = None
    while True:
        connection.execute(text("SELECT pg_stat_clear_snapshot()"))
        now = Counters(*connection.execute(text(
            "SELECT xact_commit + xact_rollback, sessions FROM pg_stat_database "
            "WHERE datname = :name"), {"name": name}).one())
        if now == last or time.monotonic() > deadline:
            return now
        last = now
        time.sleep(0.3)
