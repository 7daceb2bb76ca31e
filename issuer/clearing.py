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

Cash loads at station load machines clear too, each proven by its load TAC
(over the new balance, the online counter, the amount, the machine and its
time) and booked once per card and online counter, so the books follow a
card whatever mix of cash, over-the-air top-ups and rides it had. A cash
load proves, too, that the counter slot it took was not an over-the-air
top-up's: a top-up held because its MAC2 was for that slot is refunded. A record
the card made before it came under this issuer is already in the card's
opening balance: it is counted as such and never booked again (its date is
the terminal's, vouched for by the TAC).

The records are :mod:`reader.record`'s, as the terminals made them or as the API read them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from applets import bcd
from applets.emv.records import pan_for_certificate
from applets.pboc import crypto
from issuer import ecash, ledger
from issuer.accounts import CASH_LOADS, card_account, funding_account, merchant_account
from issuer.db import Card, Order, OrderKind, OrderState, utc
from issuer.keys import EcashKeysOf, IssuerKeys
from issuer.procedures import release_displaced
from reader.clock import instant
from reader.pos import CID_TC
from reader.record import EcashPurchase, LoadRecord, PurchaseRecord, load_proven, purchase_proven


@dataclass(frozen=True, slots=True)
class Cleared:
    booked: int
    duplicates: int
    free: int  # proven purchases of nothing (metro entries)
    refused: list[str]
    opening: int = 0  # proven records from before the card came under the issuer


def clear(session: Session, keys: IssuerKeys, records: Sequence[PurchaseRecord],
          at: datetime) -> Cleared:
    """Book every record whose TAC verifies, once, at ``at``; the reasons for the others."""
    booked = duplicates = free = opening = 0
    refused = []
    for number, record in enumerate(records):
        serial = record.app_serial.hex().upper()
        card = session.scalar(select(Card).where(Card.app_serial == serial))
        if card is None:
            refused.append(f"record {number}: no card {serial}")
            continue
        dtk = keys.card_key(card.product, "tac", crypto.div_data(record.app_serial))
        if not purchase_proven(record, dtk):
            refused.append(f"record {number}: the TAC is wrong")
            continue
        if not record.amount:
            free += 1
            continue
        if _before(card, record.date, record.time):
            opening += 1
            continue
        outcome = _purchase(session, card, record.amount, f"clearing:{serial}:{record.card_counter}",
                            at)
        booked, duplicates = booked + (outcome == BOOKED), duplicates + (outcome == DUPLICATE)
        if outcome not in (BOOKED, DUPLICATE):
            refused.append(f"record {number}: {outcome}")
    return Cleared(booked, duplicates, free, refused, opening)


def clear_loads(session: Session, keys: IssuerKeys, records: Sequence[LoadRecord], at: datetime,
                own_terminal: bytes) -> Cleared:
    """Book every cash load whose TAC verifies, once, at ``at``; the reasons for the others.
    Loads by ``own_terminal`` (the issuer's over-the-air top-ups) are booked by their orders."""
    booked = duplicates = opening = 0
    refused = []
    for number, record in enumerate(records):
        serial = record.app_serial.hex().upper()
        card = session.scalar(select(Card).where(Card.app_serial == serial))
        if card is None or card.product == ecash.PRODUCT:
            refused.append(f"load {number}: no purse {serial}")
            continue
        if record.terminal_id == own_terminal:
            refused.append(f"load {number}: an over-the-air top-up, booked by its order")
            continue
        dtk = keys.card_key(card.product, "tac", crypto.div_data(record.app_serial))
        if not load_proven(record, dtk):
            refused.append(f"load {number}: the TAC is wrong")
            continue
        if _before(card, record.date, record.time):
            opening += 1
            continue
        outcome = _book(session, "cash-load", [(CASH_LOADS, -record.amount),
                                               (card_account(card), record.amount)],
                        f"cash-load:{serial}:{record.card_counter}", at)
        for order in session.scalars(select(Order).where(
                Order.card_id == card.id, Order.state == OrderState.DEBITED).with_for_update()):
            release_displaced(session, order, record.card_counter, at)
        booked, duplicates = booked + (outcome == BOOKED), duplicates + (outcome == DUPLICATE)
        if outcome not in (BOOKED, DUPLICATE):
            refused.append(f"load {number}: {outcome}")
    return Cleared(booked, duplicates, 0, refused, opening)


def _before(card: Card, date: bytes, time: bytes) -> bool:
    """Whether a record the card's TAC dates at ``date`` ``time`` (the terminal's wall time)
    came before the card was registered, and so is in its opening balance."""
    try:
        when = instant(bcd.to_datetime(date, time))
    except ValueError:
        return False
    return when < utc(card.created_at).replace(microsecond=0)


BOOKED, DUPLICATE = "booked", "duplicate"


def _book(session: Session, kind: str, legs: list[tuple[str, int]], key: str, at: datetime) -> str:
    """Book a proven record once: BOOKED, DUPLICATE, or why the ledger refused it."""
    if ledger.posted(session, key):
        return DUPLICATE
    try:
        ledger.post(session, kind, legs, key, at=at)
    except ledger.LedgerError as error:
        return str(error)
    return BOOKED


def _purchase(session: Session, card: Card, amount: int, key: str, at: datetime) -> str:
    """Book a proven purchase once, from its payer to the product's merchant account."""
    return _book(session, "clearing", [(_payer(session, card), -amount),
                                       (merchant_account(card.product), amount)], key, at)


def _payer(session: Session, card: Card) -> str:
    """Whose account a purchase of ``card`` comes from: the card's, or, once a lost card's
    balance has moved to a new band, that band's funding account, which took the money the
    ride was paid with (a ride before the lock, cleared after the move)."""
    moved_to = session.scalar(select(Order.moved_to).where(
        Order.card_id == card.id, Order.kind == OrderKind.LOST, Order.state == OrderState.SETTLED))
    return card_account(card) if moved_to is None else funding_account(moved_to)


def clear_ecash(session: Session, keys: IssuerKeys, purchases: Sequence[EcashPurchase],
                at: datetime) -> Cleared:
    """Book every offline e-cash purchase whose TC verifies, once, at ``at``; the reasons for
    the others."""
    booked = duplicates = opening = 0
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
        if _before(card, b"\x20" + purchase.data.get(0x9A, b""), purchase.data.get(0x9F21, b"")):
            opening += 1  # 9A and 9F21: the POS's date and time, which the TC covers
            continue
        outcome = _purchase(session, card, purchase.amount, f"clearing:{serial}:{purchase.atc}", at)
        booked, duplicates = booked + (outcome == BOOKED), duplicates + (outcome == DUPLICATE)
        if outcome not in (BOOKED, DUPLICATE):
            refused.append(f"record {number}: {outcome}")
    return Cleared(booked, duplicates, 0, refused, opening)
