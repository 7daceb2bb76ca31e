"""A bus validator: a flat fare by simple purchase (INITIALIZE / DEBIT FOR PURCHASE)."""

from __future__ import annotations

from applets.pboc.layouts import TxType
from reader import pboc
from reader.flow import Flow
from reader.psam import Psam
from reader.terminal import Clock, PurseTerminal, TapResult


class BusValidator(PurseTerminal):
    def __init__(self, psam: Psam, clock: Clock, route: str, fare: int,
                 aid: bytes = pboc.T_UNION_AID) -> None:
        super().__init__(psam, clock)
        if fare <= 0:
            raise ValueError("a bus fare is a positive number of fen")
        self.route = route
        self.fare = fare
        self.aid = aid

    def tap(self) -> Flow[TapResult]:
        now = self.clock()
        place = f"bus {self.route}"
        issuer = yield from pboc.select_purse(self.aid)
        self.check_validity(issuer, now)
        recovered = yield from self.recover(issuer)
        if recovered is not None:
            return TapResult(place, recovered.amount, recovered.balance_after, recovered,
                             recovered=True)
        debit = yield from self.purchase(issuer, TxType.EP_PURCHASE, self.fare, now)
        return TapResult(place, self.fare, debit.balance_after, debit)
