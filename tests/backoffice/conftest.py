"""Back-office fixtures: the books on SQLite and PostgreSQL, a JetStream server of the
tests' own (both defined in tests.support)."""

from tests.support.books import books_url
from tests.support.nats import nats_url

__all__ = ["books_url", "nats_url"]
