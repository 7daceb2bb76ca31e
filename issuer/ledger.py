"""The issuer's double-entry ledger: balanced, idempotent postings; balances are sums.

A posting is a list of legs ``(account code, signed amount in fen)`` that
sums to zero, recorded once under an idempotency key. Replaying the key with
the same legs returns the recorded transaction; with other legs it is refused.
Balances are never stored: they are ``SUM(amount)`` over an account's entries.

Concurrent posters need no lock of ours: the unique constraints on
``accounts.code`` and ``ledger_transactions.idempotency_key`` decide who
wins, each attempt runs in a SAVEPOINT, and the loser reads the winner's row.
Accounts are created in sorted order so that two posters never wait on each
other in a cycle.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from issuer.db import Account, Entry, Transaction


class LedgerError(Exception):
    """A posting the ledger refuses: unbalanced, empty, or a replay with other legs."""


@dataclass(frozen=True, slots=True)
class StatementLine:
    transaction_id: int
    kind: str
    idempotency_key: str
    created_at: datetime
    amount: int
    balance: int


def _check(kind: str, legs: Sequence[tuple[str, int]], idempotency_key: str) -> list[tuple[str, int]]:
    if not idempotency_key:
        raise LedgerError("a posting needs an idempotency key")
    if not kind:
        raise LedgerError("a posting needs a kind")
    checked = list(legs)
    if not checked:
        raise LedgerError("a posting needs legs")
    for code, amount in checked:
        if not code or not isinstance(code, str):
            raise LedgerError(f"bad account code {code!r}")
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise LedgerError(f"amounts are integer fen, not {amount!r}")
        if amount == 0:
            raise LedgerError(f"zero leg on {code}")
    total = sum(amount for _, amount in checked)
    if total != 0:
        raise LedgerError(f"unbalanced posting {idempotency_key!r}: legs sum to {total} fen")
    return checked


def _find(session: Session, idempotency_key: str) -> Transaction | None:
    return session.scalars(select(Transaction).where(Transaction.idempotency_key == idempotency_key)).first()


def posted(session: Session, idempotency_key: str) -> bool:
    """Whether a posting under ``idempotency_key`` exists."""
    return _find(session, idempotency_key) is not None


def _legs_of(session: Session, transaction: Transaction) -> list[tuple[str, int]]:
    rows = session.execute(select(Account.code, Entry.amount).join(Entry.account)
                           .where(Entry.transaction_id == transaction.id).order_by(Entry.id))
    return [(code, amount) for code, amount in rows]


def _replay(session: Session, existing: Transaction, kind: str, legs: list[tuple[str, int]],
            order_id: int | None) -> Transaction:
    same = (existing.kind == kind and existing.order_id == order_id
            and Counter(_legs_of(session, existing)) == Counter(legs))
    if not same:
        raise LedgerError(f"idempotency key {existing.idempotency_key!r} was posted with other legs")
    return existing


def account(session: Session, code: str) -> Account:
    """The account ``code``, created on first use (race-safe)."""
    found = session.scalars(select(Account).where(Account.code == code)).first()
    if found is not None:
        return found
    try:
        with session.begin_nested():
            created = Account(code=code)
            session.add(created)
        return created
    except IntegrityError:
        # Another session created it between our SELECT and INSERT; it has committed by now.
        return session.scalars(select(Account).where(Account.code == code)).one()


def post(session: Session, kind: str, legs: Sequence[tuple[str, int]], idempotency_key: str,
         order_id: int | None = None) -> Transaction:
    """Record a balanced posting once under ``idempotency_key``; the caller commits."""
    checked = _check(kind, legs, idempotency_key)
    existing = _find(session, idempotency_key)
    if existing is not None:
        return _replay(session, existing, kind, checked, order_id)
    accounts = {code: account(session, code) for code in sorted({code for code, _ in checked})}
    try:
        with session.begin_nested():
            transaction = Transaction(kind=kind, order_id=order_id, idempotency_key=idempotency_key)
            session.add(transaction)
            session.flush()
            session.add_all(Entry(transaction_id=transaction.id, account_id=accounts[code].id, amount=amount)
                            for code, amount in checked)
        return transaction
    except IntegrityError:
        existing = _find(session, idempotency_key)
        if existing is None:
            raise
        return _replay(session, existing, kind, checked, order_id)


def balance(session: Session, account_code: str) -> int:
    """The balance of ``account_code`` in fen: the sum of its entries (0 for an unknown account)."""
    total = session.scalar(select(func.coalesce(func.sum(Entry.amount), 0))
                           .join(Entry.account).where(Account.code == account_code))
    return int(total or 0)


def covers(session: Session, account_code: str, amount: int) -> bool:
    """Whether ``account_code`` holds ``amount``, with the account locked until the caller
    commits, so two debits racing for the last fen cannot both see it."""
    locked = account(session, account_code)
    session.execute(select(Account.id).where(Account.id == locked.id).with_for_update())
    return balance(session, account_code) >= amount


def balances(session: Session) -> dict[str, int]:
    """Every account's balance; they add up to zero."""
    rows = session.execute(select(Account.code, func.coalesce(func.sum(Entry.amount), 0))
                           .outerjoin(Entry, Entry.account_id == Account.id).group_by(Account.code))
    return {code: int(total) for code, total in rows}


def statement(session: Session, account_code: str) -> list[StatementLine]:
    """The entries of ``account_code`` in posting order, each with the running balance."""
    rows = session.execute(
        select(Transaction.id, Transaction.kind, Transaction.idempotency_key, Entry.created_at, Entry.amount)
        .join(Entry.transaction).join(Entry.account)
        .where(Account.code == account_code).order_by(Entry.id))
    lines, running = [], 0
    for transaction_id, kind, key, created_at, amount in rows:
        running += amount
        lines.append(StatementLine(transaction_id, kind, key, created_at, amount, running))
    return lines
