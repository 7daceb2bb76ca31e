"""JR/T 0025 (PBOC 2.0) electronic purse cryptography, shared by card, PSAM and issuer.

There is exactly one implementation of each rule here; the card, the
terminal's PSAM, the load host and the issuer all call it.

==========================  =================================================
session key (load)          3DES(DLK, random ‖ online counter ‖ 8000)
session key (purchase)      3DES(DPK, random ‖ offline counter ‖ seq[2:4])
MAC1 (load, card)           MAC(SESLK, balance ‖ amount ‖ type ‖ terminal)
MAC2 (load, host)           MAC(SESLK, amount ‖ type ‖ terminal ‖ date ‖ time)
MAC1 (purchase, PSAM)       MAC(SESPK, amount ‖ type ‖ terminal ‖ date ‖ time)
MAC2 (purchase, card)       MAC(SESPK, amount)
TAC (load)                  MAC(DTK, new balance ‖ counter ‖ amount ‖ type ‖
                            terminal ‖ date ‖ time)
TAC (purchase)              MAC(DTK, amount ‖ type ‖ terminal ‖ seq ‖ date ‖ time)
MAC (APPLICATION BLOCK)     retail MAC(DAMK, IV = challenge ‖ 00000000,
                            CLA ‖ INS ‖ P1 ‖ P2 ‖ Lc)
==========================  =================================================

MAC is ISO/IEC 9797-1 algorithm 1 with padding 2 and a zero IV, keeping the
leftmost 4 bytes. The TAC key is the XOR of the two halves of the card's
16-byte DTK, used as a single DES key. Card keys are diversified from the
issuer's master keys with the application serial number (PBOC one-level
dispersion): left = 3DES(MK, D), right = 3DES(MK, ¬D).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from applets.crypto.des import encrypt_ecb, mac_algorithm1, mac_algorithm3
from applets.pboc.layouts import TxType

MAC_SIZE = 4
LOAD_SUFFIX = b"\x80\x00"


def diversify(master_key: bytes, div_data: bytes) -> bytes:
    """A card's 16-byte key from the issuer's master key and 8 bytes of card data: 3DES-ECB of
    :func:`dispersion_input` (EMV's option A is the same, then parity-adjusted)."""
    if len(master_key) != 16 or len(div_data) != 8:
        raise ValueError("diversification needs a 16-byte master key and 8 bytes of data")
    return encrypt_ecb(master_key, dispersion_input(div_data))


def dispersion_input(div_data: bytes) -> bytes:
    """D ‖ ¬D: the block pair a master key encrypts into a card key (an HSM does it inside)."""
    return div_data + bytes(b ^ 0xFF for b in div_data)


def div_data(app_serial: bytes) -> bytes:
    """Diversification data: the rightmost 8 bytes of the 10-byte application serial."""
    if len(app_serial) < 8:
        raise ValueError("the application serial number has at least 8 bytes")
    return app_serial[-8:]


def mac4(key: bytes, data: bytes) -> bytes:
    return mac_algorithm1(key, data)[:MAC_SIZE]


def tac_key(dtk: bytes) -> bytes:
    if len(dtk) != 16:
        raise ValueError("the TAC key has 16 bytes")
    return bytes(a ^ b for a, b in zip(dtk[:8], dtk[8:], strict=True))


@dataclass(frozen=True, slots=True)
class Terminal:
    """What identifies a transaction's terminal and moment in every MAC."""

    terminal_id: bytes  # 6 bytes
    date: bytes  # YYYYMMDD, BCD, 4 bytes
    time: bytes  # hhmmss, BCD, 3 bytes


def load_session_key(dlk: bytes, random: bytes, online_counter: int) -> bytes:
    return encrypt_ecb(dlk, random + online_counter.to_bytes(2) + LOAD_SUFFIX)


def load_mac1(session_key: bytes, balance: int, amount: int, tx_type: int,
              terminal_id: bytes) -> bytes:
    data = balance.to_bytes(4) + amount.to_bytes(4) + bytes((tx_type,)) + terminal_id
    return mac4(session_key, data)


def load_mac2(session_key: bytes, amount: int, tx_type: int, terminal: Terminal) -> bytes:
    data = (amount.to_bytes(4) + bytes((tx_type,)) + terminal.terminal_id
            + terminal.date + terminal.time)
    return mac4(session_key, data)


def load_tac(dtk: bytes, new_balance: int, online_counter: int, amount: int, tx_type: int,
             terminal: Terminal) -> bytes:
    data = (new_balance.to_bytes(4) + online_counter.to_bytes(2) + amount.to_bytes(4)
            + bytes((tx_type,)) + terminal.terminal_id + terminal.date + terminal.time)
    return mac4(tac_key(dtk), data)


@dataclass(frozen=True, slots=True)
class LoadAuthorization:
    """The host's answer to a card's INITIALIZE FOR LOAD: MAC2 to send, TAC to expect."""

    mac2: bytes
    expected_tac: bytes


def authorize_load(dlk: bytes, dtk: bytes, balance: int, counter: int, random: bytes,
                   mac1: bytes, amount: int, terminal: Terminal) -> LoadAuthorization | None:
    """Host side of a load (load terminal or OTA issuer): None if the card's MAC1 is wrong.

    ``dlk`` and ``dtk`` are the card's own (diversified) load and TAC keys;
    balance, counter, random and MAC1 come from the card's INITIALIZE answer.
    """
    session_key = load_session_key(dlk, random, counter)
    if not hmac.compare_digest(
            load_mac1(session_key, balance, amount, TxType.EP_LOAD, terminal.terminal_id), mac1):
        return None
    return LoadAuthorization(
        load_mac2(session_key, amount, TxType.EP_LOAD, terminal),
        load_tac(dtk, balance + amount, counter, amount, TxType.EP_LOAD, terminal))


def purchase_session_key(dpk: bytes, random: bytes, offline_counter: int,
                         terminal_seq: int) -> bytes:
    return encrypt_ecb(dpk, random + offline_counter.to_bytes(2)
                       + terminal_seq.to_bytes(4)[2:])


def purchase_mac1(session_key: bytes, amount: int, tx_type: int, terminal: Terminal) -> bytes:
    data = (amount.to_bytes(4) + bytes((tx_type,)) + terminal.terminal_id
            + terminal.date + terminal.time)
    return mac4(session_key, data)


def purchase_mac2(session_key: bytes, amount: int) -> bytes:
    return mac4(session_key, amount.to_bytes(4))


def purchase_tac(dtk: bytes, amount: int, tx_type: int, terminal: Terminal,
                 terminal_seq: int) -> bytes:
    data = (amount.to_bytes(4) + bytes((tx_type,)) + terminal.terminal_id
            + terminal_seq.to_bytes(4) + terminal.date + terminal.time)
    return mac4(tac_key(dtk), data)


def maintenance_mac(damk: bytes, challenge: bytes, header: bytes) -> bytes:
    """The MAC of a secure-messaging maintenance command (APPLICATION BLOCK) whose data is the
    MAC alone: ISO/IEC 9797-1 algorithm 3 under the card's 16-byte DAMK over the header and
    Lc, chained from the card's 4-byte GET CHALLENGE padded with zeros, so it is good once."""
    if len(challenge) != 4:
        raise ValueError("the maintenance MAC chains from a 4-byte challenge")
    return mac_algorithm3(damk, header, iv=challenge + bytes(4))[:MAC_SIZE]
