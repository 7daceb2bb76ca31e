"""The issuer's database for tests: migrated, on SQLite and on PostgreSQL alike (a schema of
its own in ``$KOALA_TEST_PG_URL``). ``engine`` is the fixture the conftest.py files take from
here."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from issuer.db import make_engine, migrate

PG_URL = os.environ.get("KOALA_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _postgres_schema_url(schema: str) -> str:
    url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('ledger') / 'issuer.db'}"
        migrate(url)
        engine = make_engine(url)
        yield engine
        engine.dispose()
        return
    admin = make_engine(PG_URL)
    schema = f"koala_test_{os.getpid()}_{uuid.uuid4().hex[:12]}"
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    except OperationalError as error:
        admin.dispose()
        pytest.fail(f"PostgreSQL at {PG_URL} is not reachable (set KOALA_TEST_PG_URL): {error}")
    try:
        url = _postgres_schema_url(schema)
        migrate(url)
        engine = make_engine(url)
        yield engine
        engine.dispose()
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
