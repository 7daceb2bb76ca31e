"""A local load terminal: tops a purse up with the issuer's load key.

It plays the issuer's host for a counter or a machine on the issuer's own
network: it checks the card's MAC1 with the card's load key (diversified
from the issuer's load master key), answers with MAC2, and checks the TAC
the card returns. The over-the-air issuer does the same over a relay.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, replace

from applets import bcd
from applets.pboc import crypto
from applets.pboc.layouts import (
    INIT_LOAD_RESPONSE,
    CreditCommand,
    InitCommand,
    TxType,
)
from applets.pboc.perso import KEY_INDEX
from applets.sw import SW
from reader import pboc
from reader.clock import Clock, local
from reader.errors import CardProtocolError, TransactionRefused
from reader.flow import Flow, exchange, expect, parse
from reader.record import LoadRecord


@dataclass(frozen=True, slots=True)
class LoadKeys:
    """The issuer's master keys a load needs: load key and TAC key."""

    load: bytes
    tac: bytes


@dataclass(frozen=True, slots=True)
class Load(LoadRecord):
    """A cash load: the record the machine sends to clearing, and what only the machine saw
    of it (kept in its file beside the record, never sent)."""

    issuer_id: bytes
    recovered: bool = False


LOAD_REFUSALS = {
    **pboc.REFUSALS,
    SW.WRONG_DATA: "the amount would take the card over its maximum balance",
}


class LoadTerminal:
    def __init__(self, terminal_id: bytes, keys: Mapping[bytes, LoadKeys], clock: Clock) -> None:
        if len(terminal_id) != 6:
            raise ValueError("a terminal id has 6 bytes")
        self.terminal_id = terminal_id
        self._keys = dict(keys)
        self.clock = clock
        self.records: list[Load] = []
        self.pending: dict[bytes, Load] = {}

    def load(self, amount: int, aid: bytes = pboc.T_UNION_AID) -> Flow[Load]:
        """SELECT, INITIALIZE FOR LOAD, verify MAC1, CREDIT FOR LOAD with MAC2, verify TAC.

        If an earlier load of this card here was cut off after CREDIT FOR LOAD
        was sent, it is settled first: when the card proves it was credited,
        that load is the answer and nothing more is loaded (the retry of an
        interrupted top-up must not load twice).
        """
        if amount <= 0:
            raise TransactionRefused("a load amount must be positive")
        issuer = yield from pboc.select_purse(aid)
        recovered = yield from self.recover(issuer.app_serial)
        if recovered is not None:
            return recovered
        keys = self._keys.get(issuer.issuer_id)
        if keys is None:
            raise TransactionRefused(f"this terminal cannot load cards of issuer "
                                     f"{issuer.issuer_id.hex().upper()}")
        div = crypto.div_data(issuer.app_serial)
        data = yield from exchange(
            pboc.initialize(pboc.P1_LOAD, InitCommand(KEY_INDEX, amount, self.terminal_id)),
            "INITIALIZE FOR LOAD", LOAD_REFUSALS)
        init = parse(INIT_LOAD_RESPONSE, data, "INITIALIZE FOR LOAD")
        date, time = bcd.date_time(local(self.clock()))
        terminal = crypto.Terminal(self.terminal_id, date, time)
        authorization = crypto.authorize_load(
            crypto.diversify(keys.load, div), crypto.diversify(keys.tac, div), init.balance,
            init.counter, init.random, init.mac1, amount, terminal)
        if authorization is None:
            raise CardProtocolError("INITIALIZE FOR LOAD", SW.OK, "MAC1 is wrong: not a genuine card")
        mac2, expected, balance = authorization.mac2, authorization.expected_tac, init.balance + amount
        record = Load(issuer.app_serial, amount, balance, init.counter, self.terminal_id, date,
                      time, expected, issuer_id=issuer.issuer_id)
        self.pending[issuer.app_serial] = record
        response = yield pboc.credit_for_load(CreditCommand(date, time, mac2))
        del self.pending[issuer.app_serial]  # the card answered: whatever it says is final
        tac = expect(response, "CREDIT FOR LOAD", LOAD_REFUSALS)
        if not hmac.compare_digest(expected, tac):
            raise CardProtocolError("CREDIT FOR LOAD", SW.OK, "TAC is wrong")
        self.records.append(record)
        return record

    def recover(self, app_serial: bytes) -> Flow[Load | None]:
        """Settle an unanswered CREDIT FOR LOAD of this card with GET TRANSACTION PROVE."""
        pending = self.pending.pop(app_serial, None)
        if pending is None:
            return None
        try:
            proof = yield from pboc.transaction_prove(TxType.EP_LOAD, pending.card_counter)
        except CardProtocolError:
            self.pending[app_serial] = pending  # still unknown: ask again next time
            raise
        if proof is None:
            return None
        if not hmac.compare_digest(proof.tac, pending.tac):
            raise CardProtocolError("GET TRANSACTION PROVE", SW.OK, "TAC is wrong")
        record = replace(pending, recovered=True)
        self.records.append(record)
        return record
