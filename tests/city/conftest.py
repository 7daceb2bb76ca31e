"""City fixtures: a JetStream server of the tests' own (tests.support)."""

from tests.support.nats import nats_url

__all__ = ["nats_url"]
