"""Issuer test fixtures: a migrated database, SQLite and PostgreSQL alike, and the issuer
over HTTP on it (both defined in tests.support)."""

from tests.support.db import engine
from tests.support.http import issuer_url

__all__ = ["engine", "issuer_url"]
