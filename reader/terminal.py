"""A stored-value terminal: purchases with a PSAM, records for clearing, tap recovery.

Gates and bus validators are this plus their own rules. A purchase whose
DEBIT was sent but never answered is *pending*: the card may or may not have
been charged. The next time that card is tapped here, GET TRANSACTION PROVE
asks the card; a proof means the debit happened (record it, charge nothing
more), 9406 means it did not (forget it). The terminal never guesses.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from datetime import datetime

from applets import bcd
from applets.pboc import crypto
from applets.pboc.layouts import (
    DEBIT_RESPONSE,
    INIT_PURCHASE_RESPONSE,
    DebitCommand,
    InitCommand,
    IssuerFile,
    TxType,
)
from applets.pboc.perso import KEY_INDEX
from applets.sw import SW
from reader import pboc
from reader.clock import Clock
from reader.errors import CardProtocolError, TransactionRefused
from reader.flow import Flow, exchange, expect, parse
from reader.psam import Psam
from reader.record import PurchaseRecord


@dataclass(frozen=True, slots=True)
class Debit(PurchaseRecord):
    """A completed purchase: the record the terminal sends to clearing, and what only the
    terminal saw of it (kept in its file beside the record, never sent)."""

    issuer_id: bytes
    balance_after: int
    mac2_verified: bool


@dataclass(frozen=True, slots=True)
class Pending:
    """A DEBIT sent whose answer never came back."""

    issuer: IssuerFile
    tx_type: TxType
    amount: int
    balance_before: int
    card_counter: int
    terminal_seq: int
    date: bytes
    time: bytes


@dataclass(frozen=True, slots=True)
class TapResult:
    """An accepted tap: what the rider paid and has left, and what went to clearing."""

    place: str
    fare: int
    balance: int
    debit: Debit
    recovered: bool = False
    journey: str = ""


class PurseTerminal:
    """``blacklist`` holds the application serials of cards reported lost or blocked (the
    back office keeps it current): such a card is refused and its application blocked."""

    def __init__(self, psam: Psam, clock: Clock, blacklist: Container[bytes] = frozenset()) -> None:
        self.psam = psam
        self.clock = clock
        self.blacklist = blacklist
        self.records: list[Debit] = []
        self.pending: dict[bytes, Pending] = {}

    @property
    def terminal_id(self) -> bytes:
        return self.psam.terminal_id

    def purchase(self, issuer: IssuerFile, tx_type: TxType, amount: int, now: datetime,
                 capp_record: bytes | None = None, minimum_balance: int = 0) -> Flow[Debit]:
        """INITIALIZE, (UPDATE CAPP DATA CACHE), DEBIT, check MAC2, record."""
        p1 = pboc.P1_CAPP_PURCHASE if tx_type == TxType.CAPP_PURCHASE else pboc.P1_PURCHASE
        data = yield from exchange(pboc.initialize(p1, InitCommand(KEY_INDEX, amount, self.terminal_id)),
                                   "INITIALIZE FOR PURCHASE", pboc.REFUSALS)
        init = parse(INIT_PURCHASE_RESPONSE, data, "INITIALIZE FOR PURCHASE")
        if init.balance < minimum_balance:
            raise TransactionRefused(f"balance {init.balance / 100:.2f} is below the "
                                     f"{minimum_balance / 100:.2f} needed here: top up the card")
        date, time = bcd.date_time(now)
        terminal = crypto.Terminal(self.terminal_id, date, time)
        sam = self.psam.start_purchase(issuer, init.random, init.counter, amount, tx_type, terminal)
        if capp_record is not None:
            yield from exchange(pboc.update_capp_data_cache(capp_record), "UPDATE CAPP DATA CACHE")
        pending = Pending(issuer, tx_type, amount, init.balance, init.counter, sam.terminal_seq,
                          date, time)
        self.pending[issuer.app_serial] = pending
        response = yield pboc.debit_for_purchase(DebitCommand(sam.terminal_seq, date, time, sam.mac1))
        del self.pending[issuer.app_serial]  # the card answered: whatever it says is final
        data = expect(response, "DEBIT FOR PURCHASE", pboc.REFUSALS)
        answer = parse(DEBIT_RESPONSE, data, "DEBIT FOR PURCHASE")
        verified = self.psam.verify_mac2(sam.terminal_seq, amount, answer.mac2)
        debit = self._record(pending, answer.tac, verified)
        if not verified:
            raise CardProtocolError("DEBIT FOR PURCHASE", SW.OK,
                                    "MAC2 is wrong: the debit is recorded for the issuer to check")
        return debit

    def refuse_listed(self, issuer: IssuerFile) -> Flow[None]:
        """A blacklisted card: block its application (APPLICATION BLOCK under its MAC, so it
        stops at every terminal from now on, whether or not its phone ever syncs), refuse."""
        if issuer.app_serial not in self.blacklist:
            return
        yield from pboc.block_application(lambda challenge: self.psam.block_mac(issuer, challenge))
        raise TransactionRefused("card reported lost or blocked: its application is now "
                                 "blocked; see station staff")

    def check_validity(self, issuer: IssuerFile, now: datetime) -> None:
        """Refuse a card outside its validity dates (EF 0x15)."""
        today = bcd.encode(now.strftime("%Y%m%d"))
        if today < issuer.start_date:
            raise TransactionRefused(f"card not yet valid: valid from {_date(issuer.start_date)}")
        if today > issuer.expiry_date:
            raise TransactionRefused(f"card expired on {_date(issuer.expiry_date)}: see the issuer")

    def recover(self, issuer: IssuerFile) -> Flow[Debit | None]:
        """Settle an earlier unanswered DEBIT of this card: the debit if it happened."""
        pending = self.pending.pop(issuer.app_serial, None)
        if pending is None:
            return None
        try:
            proof = yield from pboc.transaction_prove(pending.tx_type, pending.card_counter)
        except CardProtocolError:
            self.pending[issuer.app_serial] = pending  # still unknown: ask again next time
            raise
        if proof is None:
            return None
        verified = self.psam.verify_mac2(pending.terminal_seq, pending.amount, proof.mac)
        return self._record(pending, proof.tac, verified)

    def _record(self, pending: Pending, tac: bytes, verified: bool) -> Debit:
        debit = Debit(pending.issuer.app_serial, pending.tx_type, pending.amount,
                      pending.card_counter, self.terminal_id, pending.terminal_seq, pending.date,
                      pending.time, tac, issuer_id=pending.issuer.issuer_id,
                      balance_after=pending.balance_before - pending.amount,
                      mac2_verified=verified)
        self.records.append(debit)
        return debit


def _date(bcd_date: bytes) -> str:
    """A card's BCD date (YYYYMMDD) as ISO 8601, or its hex if it is not a date."""
    digits = bcd_date.hex()
    return f"{digits[:4]}-{digits[4:6]}-{digits[6:]}" if digits.isdigit() else digits.upper()
