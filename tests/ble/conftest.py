"""The issuer service for the companion's tests: its database (SQLite and PostgreSQL) and its
HTTP API in this process, as the issuer's own tests make them."""

from tests.support.db import engine
from tests.support.http import issuer_url

__all__ = ["engine", "issuer_url"]
