"""What every kind of order is to the relay: the context a step works in, the contract its
procedure fulfils (:mod:`issuer.procedures` holds them), and the refusals."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from applets.apdu import CommandAPDU, ResponseAPDU
from issuer.keys import IssuerKeys
from issuer.records import BandRow, CardRow, OrderRow
from issuer.sql import Db
from reader.clock import local

State = dict[str, Any]


class OrderError(Exception):
    """A request the issuer refuses; the message says why (the API answers 409)."""


class UnknownOrder(OrderError):
    """No such order, relay session, band, product or key set, or not the caller's band's (the
    API answers 404)."""


class Forbidden(OrderError):
    """The device token is not the band's (the API answers 403)."""


@dataclass(frozen=True, slots=True)
class Context:
    """What a procedure works on inside one transaction: its rows, which the relay writes back
    when the step ends, and the transaction, for the ledger's postings."""

    db: Db
    order: OrderRow
    subject: CardRow | None  # None: an order for the band itself (its card manager)
    band: BandRow
    keys: IssuerKeys
    terminal_id: bytes
    now: datetime  # the request's instant

    @property
    def card(self) -> CardRow:
        """The order's card (every order but one for the band itself has one)."""
        if self.subject is None:
            raise OrderError(f"order {self.order.id} is for the band, not for a card")
        return self.subject

    @property
    def wall_time(self) -> datetime:
        """The request's time as the issuer's load terminal writes it on a card."""
        return local(self.now)

    @property
    def ordered_at(self) -> datetime:
        """When the order was placed, as the issuer's terminal writes it on a card."""
        return local(self.order.created_at)


class Procedure(ABC):
    """How one kind of order talks to the card, between relay sessions and within one."""

    @abstractmethod
    def start(self, context: Context, last: State | None) -> State:
        """The position of a new relay session: the first (``last`` None) or one after ``last``."""

    @abstractmethod
    def commands(self, context: Context, state: State) -> list[CommandAPDU]:
        """The batch to relay at ``state``: the next APDU, and after it only APDUs that change
        nothing on the card should the ones before them not go as planned."""

    @abstractmethod
    def receive(self, context: Context, state: State, response: ResponseAPDU) -> State:
        """Advance on the card's answer to the first command of :meth:`commands`, applying its
        effects to the order."""

    @abstractmethod
    def close_unproven(self, context: Context) -> None:
        """End an order the card never proved, once the clearing window has passed (an
        operator's decision, booked as such): what the issuer holds goes back where it came
        from, or on where the order sent it."""
