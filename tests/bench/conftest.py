"""Bench test fixtures: a migrated database (defined in tests.support)."""

from tests.support.db import engine

__all__ = ["engine"]
