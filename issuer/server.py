"""The issuer as a process: database, key store and API wired together for ``koala issuer serve``.

Everything it keeps lives in ``$KOALA_HOME/issuer``: the SQLite database (or
the PostgreSQL URL given), the sealed master keys and their key-encryption
key. The demo issuers' documented master keys are imported on first start.
Its time is the clock handed to :func:`build` (the machine's, by default);
with ``client_time`` it takes each request's ``Koala-Time`` instead.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from issuer import sql
from issuer.api import create_app
from issuer.db import make_engine, migrate, session_factory
from issuer.keys import StoreKeys
from issuer.keystore import TEST_KEY_SET, EncryptedKeyStore, KeyStore, load_demo_keys
from issuer.orders import Orders
from reader import places
from reader.clock import Clock, system_clock

OTA_TERMINAL = places.OTA_LOAD
Lifespan = Callable[[Any], AbstractAsyncContextManager[Any]]


def from_environment() -> FastAPI:
    """The app of ``koala issuer serve`` in each worker process (uvicorn's factory). With
    ``KOALA_SQL_COUNTS`` naming a directory, the worker writes its statement, transaction and
    round-trip counts there when it exits (``bench.ota`` reads them)."""
    app = build(Path(os.environ["KOALA_HOME"]), os.environ["KOALA_OPERATOR_TOKEN"],
                os.environ.get("KOALA_ISSUER_DB") or None,
                client_time=os.environ.get("KOALA_ISSUER_CLIENT_TIME") == "1")
    counts = os.environ.get("KOALA_SQL_COUNTS")
    if counts:
        app.router.lifespan_context = _dumping(app.router.lifespan_context, Path(counts))
    return app


def _dumping(lifespan: Lifespan, directory: Path) -> Lifespan:
    """``lifespan``, then the worker's SQL counts written to ``directory`` as it shuts down
    (uvicorn's workers end without running ``atexit``)."""
    @asynccontextmanager
    async def counted(app: Any) -> AsyncIterator[Any]:
        async with lifespan(app) as state:
            yield state
        sql.COUNTS.dump(directory)

    return counted


def build(home: Path, operator_token: str, database_url: str | None = None,
          clock: Clock = system_clock, client_time: bool = False) -> FastAPI:
    """The issuer's ASGI app over its database (migrated to head) and key store, on ``clock``
    (or, with ``client_time``, on the time each request states)."""
    directory = home / "issuer"
    directory.mkdir(parents=True, exist_ok=True)
    url = database_url or f"sqlite:///{directory / 'issuer.db'}"
    migrate(url)
    sessions = session_factory(make_engine(url))
    store = EncryptedKeyStore(directory)
    load_demo_keys(store)
    keys = StoreKeys(store)
    return create_app(sessions, Orders(sessions, keys, OTA_TERMINAL, clock), keys, operator_token,
                      isd_key_sets(store), client_time)


def isd_key_sets(store: KeyStore) -> frozenset[str]:
    """'test' and every key set whose GP masters the store holds (``<name>/gp/enc``)."""
    return frozenset({TEST_KEY_SET} | {name.removesuffix("/gp/enc") for name in store.names()
                                 if name.endswith("/gp/enc")})
