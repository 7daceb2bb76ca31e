"""Errors on the terminal side.

Three different things can go wrong at a reader, and a gate treats them
differently: the card was taken away (:class:`TransportError`, the tap is
incomplete and may need recovery), the card answered something a correct
card would not (:class:`CardProtocolError`), or the transaction is refused
for a reason the rider should be told (:class:`TransactionRefused`).
"""

from __future__ import annotations

from applets.sw import describe


class ReaderError(Exception):
    """Base of everything a reader raises."""


class TransportError(ReaderError):
    """The link to the card failed; what the card did with the last command is unknown."""


class CardRemoved(TransportError):
    """The card left the field (or lost power) during the exchange."""


class CardProtocolError(ReaderError):
    """The card answered outside the protocol (bad length, unexpected status word)."""

    def __init__(self, step: str, sw: int, detail: str = "") -> None:
        self.step = step
        self.sw = sw
        super().__init__(f"{step}: card answered {describe(sw)}"
                         + (f" ({detail})" if detail else ""))


class TransactionRefused(ReaderError):
    """The terminal refuses the transaction; ``reason`` is what the rider is shown."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)
