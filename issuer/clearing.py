"""Clearing: terminals' purchase records, each proven by the card's TAC, debited from the card in the books.

A gate or validator sends what it took from a card; the issuer believes a
record only if its TAC (computed by the card with its TAC key, which no
terminal holds) verifies, and books it once per card and offline counter,
so a record sent twice or by two uploads is counted once. Without clearing
the issuer's view of a card would stay at what was loaded; with it the
books agree with the card to the fen.

The bank card's offline purchases clear the same way, each proven by its TC
(the application cryptogram over the POS's data, under the card's AC key
from the key store) and booked once per card and ATC.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from applets.emv.records import pan_for_certificate
from applets.pboc import crypto
from issuer import ecash, ledger
from issuer.db import Card
from issuer.keys import EcashKeysOf, IssuerKeys
from issuer.orders import card_account
from reader.pos import CID_TC, Purchase


@dataclass(frozen=True, slots=True)
class PurchaseRecord:
    """One purchase as a terminal reports it (``reader.terminal.Debit``)."""

    app_serial: bytes
    tx_type: int
    amount: int
    card_counter: int
    terminal_id: bytes
    terminal_seq: int
    date: bytes
    time: bytes
    tac: bytes


@dataclass(frozen=True, slots=True)
class Cleared:
    booked: int
    duplicates: int
    free: int  # proven purchases of nothing (metro entries)
    refused: list[str]


def merchant_account(product: str) -> str:
    return f"merchant:{product}"


def clear(session: Session, keys: IssuerKeys, records: list[PurchaseRecord], at: datetime) -> Cleared:
    """Book every record whose TAC verifies, once, at ``at``; the reasons for the others."""
    booked = duplicates = free = 0
    refused = []
    for number, record in enumerate(records):
        serial = record.app_serial.hex().upper()
        card = session.scalar(select(Card).where(Card.app_serial == serial))
        if card is None:
            refused.append(f"record {number}: no card {serial}")
            continue
        terminal = crypto.Terminal(record.terminal_id, record.date, record.time)
        dtk = keys.card_key(card.product, "tac", crypto.div_data(record.app_serial))
        expected = crypto.purchase_tac(dtk, record.amount, record.tx_type, terminal,
                                       record.terminal_seq)
        if not hmac.compare_digest(expected, record.tac):
            refused.append(f"record {number}: the TAC is wrong")
            continue
        if not record.amount:
            free += 1
            continue
        outcome = _book(session, card, record.amount, f"clearing:{serial}:{record.card_counter}", at)
        booked, duplicates = booked + (outcome == BOOKED), duplicates + (outcome == DUPLICATE)
        if outcome not in (BOOKED, DUPLICATE):
            refused.append(f"record {number}: {outcome}")
    return Cleared(booked, duplicates, free, refused)


BOOKED, DUPLICATE = "booked", "duplicate"


def _book(session: Session, card: Card, amount: int, key: str, at: datetime) -> str:
    """Book a proven purchase once: BOOKED, DUPLICATE, or why the ledger refused it."""
    if ledger.posted(session, key):
        return DUPLICATE
    try:
        ledger.post(session, "clearing", [(card_account(card), -amount),
                                          (merchant_account(card.product), amount)], key, at=at)
    except ledger.LedgerError as error:
        return str(error)
    return BOOKED


def clear_ecash(session: Session, keys: IssuerKeys, purchases: list[Purchase], at: datetime) -> Cleared:
    """Book every offline e-cash purchase whose TC verifies, once, at ``at``; the reasons for
    the others."""
    booked = duplicates = 0
    refused = []
    for number, purchase in enumerate(purchases):
        serial = pan_for_certificate(purchase.pan).hex().upper()
        card = session.scalar(select(Card).where(Card.app_serial == serial,
                                                 Card.product == ecash.PRODUCT))
        if card is None:
            refused.append(f"record {number}: no e-cash card {purchase.pan}")
            continue
        if purchase.cid != CID_TC:
            refused.append(f"record {number}: not an offline approval (the bank account's)")
            continue
        try:
            proven = ecash.cryptogram_holds(purchase, EcashKeysOf(keys).ac_key(purchase.pan,
                                                                             purchase.psn))
        except (KeyError, ValueError) as error:
            refused.append(f"record {number}: the data the TC covers is incomplete ({error})")
            continue
        if not proven:
            refused.append(f"record {number}: the TC is wrong")
            continue
        outcome = _book(session, card, purchase.amount, f"clearing:{serial}:{purchase.atc}", at)
        booked, duplicates = booked + (outcome == BOOKED), duplicates + (outcome == DUPLICATE)
        if outcome not in (BOOKED, DUPLICATE):
            refused.append(f"record {number}: {outcome}")
    return Cleared(booked, duplicates, 0, refused)
