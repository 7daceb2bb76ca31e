"""The record of one tap: every APDU exchanged, in order, with its host time.

Transports append to a trace; the timing model and ``--trace`` output read it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Exchange:
    """One command APDU and the card's answer (data plus SW1 SW2)."""

    command: bytes
    response: bytes
    host_seconds: float

    def __repr__(self) -> str:
        return (
            f"Exchange({self.command.hex().upper()} -> {self.response.hex().upper()}, "
            f"{self.host_seconds * 1e3:.3f} ms)"
        )
