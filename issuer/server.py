"""The issuer as a process: database, key store and API wired together for ``koala issuer serve``.

Everything it keeps lives in ``$KOALA_HOME/issuer``: the SQLite database (or
the PostgreSQL URL given), the sealed master keys and their key-encryption
key. The demo issuers' documented master keys are imported on first start.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI

from issuer.api import create_app
from issuer.db import make_engine, migrate, session_factory
from issuer.keystore import EncryptedKeyStore, KeyStore, load_demo_keys
from issuer.orders import Topups
from reader import places

OTA_TERMINAL = places.load_id(0x0A)


@dataclass(frozen=True, slots=True)
class StoreLoadKeys:
    """A product's load and TAC keys, derived inside the key store (never exported)."""

    store: KeyStore
    product: str

    def load_key(self, div_data: bytes) -> bytes:
        return self.store.diversify_pboc(f"{self.product}/load", div_data)

    def tac_key(self, div_data: bytes) -> bytes:
        return self.store.diversify_pboc(f"{self.product}/tac", div_data)


def from_environment() -> FastAPI:
    """The app of ``koala issuer serve`` in each worker process (uvicorn's factory)."""
    return build(Path(os.environ["KOALA_HOME"]), os.environ["KOALA_OPERATOR_TOKEN"],
                 os.environ.get("KOALA_ISSUER_DB") or None)


def build(home: Path, operator_token: str, database_url: str | None = None) -> FastAPI:
    """The issuer's ASGI app over its database (migrated to head) and key store."""
    directory = home / "issuer"
    directory.mkdir(parents=True, exist_ok=True)
    url = database_url or f"sqlite:///{directory / 'issuer.db'}"
    migrate(url)
    sessions = session_factory(make_engine(url))
    keys = EncryptedKeyStore(directory)
    load_demo_keys(keys)
    topups = Topups(sessions, lambda product: StoreLoadKeys(keys, product), OTA_TERMINAL)
    return create_app(sessions, topups, operator_token)
