"""The terminal's PSAM: purchase keys, MAC1, MAC2 checks and the transaction sequence.

In a real gate the PSAM is a SIM-sized card in the reader; it holds the
issuer's purchase master key, derives each card's key from the card's
application serial number, computes MAC1, checks the card's MAC2 and numbers
every transaction. This one does the same with the shared PBOC crypto. Its
sequence number must never repeat, so its state is saved by the terminal.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from applets.pboc import crypto
from applets.pboc.commands import application_block_header
from applets.pboc.layouts import IssuerFile, TxType
from reader.errors import TransactionRefused

SEQ_MAX = 0xFFFFFFFF
_CACHE_SIZE = 256


@dataclass(frozen=True, slots=True)
class PsamPurchase:
    """What the PSAM tells the terminal for one DEBIT: the sequence number and MAC1."""

    terminal_seq: int
    mac1: bytes


class Psam:
    """Purchase security for one terminal; ``masters`` maps issuer id → purchase master key,
    ``maintenance`` issuer id → maintenance master (DAMK: to block a blacklisted card)."""

    def __init__(self, terminal_id: bytes, masters: Mapping[bytes, bytes], seq: int = 0,
                 maintenance: Mapping[bytes, bytes] | None = None) -> None:
        if len(terminal_id) != 6:
            raise ValueError("a PSAM terminal number has 6 bytes")
        self.terminal_id = terminal_id
        self._masters = dict(masters)
        self._maintenance = dict(maintenance or {})
        self.seq = seq
        self._card_keys: dict[bytes, bytes] = {}
        self._sessions: dict[int, bytes] = {}

    def _card_key(self, issuer: IssuerFile) -> bytes:
        cached = self._card_keys.get(issuer.app_serial)
        if cached is not None:
            return cached
        master = self._masters.get(issuer.issuer_id)
        if master is None:
            raise TransactionRefused(f"this terminal does not accept cards of issuer "
                                     f"{issuer.issuer_id.hex().upper()}")
        if len(self._card_keys) >= _CACHE_SIZE:
            self._card_keys.pop(next(iter(self._card_keys)))
        key = crypto.diversify(master, crypto.div_data(issuer.app_serial))
        self._card_keys[issuer.app_serial] = key
        return key

    def accepts(self, issuer: IssuerFile) -> bool:
        return issuer.issuer_id in self._masters

    def start_purchase(self, issuer: IssuerFile, random: bytes, counter: int, amount: int,
                       tx_type: TxType, terminal: crypto.Terminal) -> PsamPurchase:
        """Derive the session key and MAC1 for a card's INITIALIZE answer."""
        if self.seq >= SEQ_MAX:
            raise TransactionRefused("PSAM transaction sequence exhausted: replace the PSAM")
        seq = self.seq
        self.seq += 1
        session_key = crypto.purchase_session_key(self._card_key(issuer), random, counter, seq)
        if len(self._sessions) >= _CACHE_SIZE:
            self._sessions.pop(next(iter(self._sessions)))
        self._sessions[seq] = session_key
        return PsamPurchase(seq, crypto.purchase_mac1(session_key, amount, tx_type, terminal))

    def block_mac(self, issuer: IssuerFile, challenge: bytes, permanent: bool = False) -> bytes:
        """The MAC of APPLICATION BLOCK for the card's ``challenge``, under its DAMK."""
        master = self._maintenance.get(issuer.issuer_id)
        if master is None:
            raise TransactionRefused(f"this terminal cannot block cards of issuer "
                                     f"{issuer.issuer_id.hex().upper()}: see station staff")
        damk = crypto.diversify(master, crypto.div_data(issuer.app_serial))
        return crypto.maintenance_mac(damk, challenge, application_block_header(permanent))

    def verify_mac2(self, terminal_seq: int, amount: int, mac2: bytes) -> bool:
        """Check the card's MAC2 for the purchase numbered ``terminal_seq``."""
        session_key = self._sessions.pop(terminal_seq, None)
        if session_key is None:
            return False
        return hmac.compare_digest(crypto.purchase_mac2(session_key, amount), mac2)
