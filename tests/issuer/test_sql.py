"""The order service's SQL layer (issuer.sql) on both databases: one statement for both
dialects, a transaction that commits what refused before writing (so that PostgreSQL keeps
the connection's prepared statements) and rolls back what failed after a write, and the
drivers' errors raised as SQLAlchemy's."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from issuer.sql import Database, Sql

NEW_ACCOUNT = Sql("INSERT INTO accounts (code, created_at) VALUES (:code, CURRENT_TIMESTAMP)")
ACCOUNT = Sql("SELECT id FROM accounts WHERE code = :code")
PREPARED = Sql("SELECT count(*) FROM pg_prepared_statements WHERE statement = :text")


class Refused(Exception):
    pass


def test_one_text_for_both_dialects_with_postgresql_only_parts() -> None:
    sql = Sql("SELECT id FROM orders WHERE id = :id AND band_id = :id {FOR UPDATE OF orders}")
    assert sql.postgresql == "SELECT id FROM orders WHERE id = %s AND band_id = %s FOR UPDATE OF orders"
    assert sql.sqlite == "SELECT id FROM orders WHERE id = ? AND band_id = ? "
    assert sql.names == ("id", "id") and sql.rows
    assert sql.bound(id=":b") == "SELECT id FROM orders WHERE id = :b AND band_id = :b FOR UPDATE OF orders"
    assert not Sql("UPDATE orders SET state = :state WHERE id = :id").rows
    with pytest.raises(ValueError, match="PostgreSQL-only part"):
        Sql("SELECT 1 {WHERE id = :id}")


def test_a_refusal_before_any_write_commits_and_keeps_the_prepared_statements(engine: Engine) -> None:
    database = Database(engine, own_pool=True)
    code = f"sql:{uuid.uuid4().hex}"
    with database.transaction() as db:
        assert db.one(ACCOUNT, code=code) is None  # prepared on this connection
    with pytest.raises(Refused), database.transaction() as db:
        db.one(ACCOUNT, code=code)
        raise Refused
    if engine.dialect.name == "postgresql":  # psycopg forgets them all on a ROLLBACK
        with database.transaction() as db:
            assert db.value(PREPARED, text=ACCOUNT.postgresql.replace("%s", "$1")) == 1


def test_a_failure_after_a_write_rolls_it_back(engine: Engine) -> None:
    database = Database(engine, own_pool=True)
    code = f"sql:{uuid.uuid4().hex}"
    with pytest.raises(Refused), database.transaction() as db:
        db.write(NEW_ACCOUNT, code=code)
        assert db.one(ACCOUNT, code=code) is not None
        raise Refused
    with database.transaction() as db:
        assert db.one(ACCOUNT, code=code) is None


def test_the_drivers_errors_are_sqlalchemys(engine: Engine) -> None:
    database = Database(engine)
    code = f"sql:{uuid.uuid4().hex}"
    with database.transaction() as db:
        db.write(NEW_ACCOUNT, code=code)
    with pytest.raises(IntegrityError), database.transaction() as db:
        db.write(NEW_ACCOUNT, code=code)  # the unique code
    with database.transaction() as db:  # the connection is fine afterwards
        assert db.one(ACCOUNT, code=code) is not None
