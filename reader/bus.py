"""A sale of one amount by simple purchase (INITIALIZE / DEBIT FOR PURCHASE): a bus's flat
fare, a canteen till's price."""

from __future__ import annotations

from applets.pboc.layouts import TxType
from reader import pboc
from reader.clock import Clock, local
from reader.flow import Flow
from reader.psam import Psam
from reader.terminal import PurseTerminal, TapResult


class SimplePurchase(PurseTerminal):
    def __init__(self, psam: Psam, clock: Clock, place: str, amount: int,
                 aid: bytes = pboc.T_UNION_AID) -> None:
        super().__init__(psam, clock)
        if amount <= 0:
            raise ValueError("a fare or price is a positive number of fen")
        self.place = place
        self.amount = amount
        self.aid = aid

    def tap(self) -> Flow[TapResult]:
        now = local(self.clock())
        issuer = yield from pboc.select_purse(self.aid)
        self.check_validity(issuer, now)
        recovered = yield from self.recover(issuer)
        if recovered is not None:
            return TapResult(self.place, recovered.amount, recovered.balance_after, recovered,
                             recovered=True)
        debit = yield from self.purchase(issuer, TxType.EP_PURCHASE, self.amount, now)
        return TapResult(self.place, self.amount, debit.balance_after, debit)


def bus_validator(psam: Psam, clock: Clock, route: str, fare: int) -> SimplePurchase:
    """A bus validator: the route's flat fare from the transit card."""
    return SimplePurchase(psam, clock, f"bus {route}", fare)
