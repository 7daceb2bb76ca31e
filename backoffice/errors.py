"""What the back office raises: one base, and the stream being out of reach."""

from __future__ import annotations


class BackOfficeError(Exception):
    """Base of the back office's errors; the message says what to do."""


class StreamUnavailable(BackOfficeError):
    """The NATS server (JetStream) cannot be reached or refused the request."""
