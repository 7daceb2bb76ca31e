"""The issuer's double-entry ledger: balanced, idempotent postings; balances are sums.

A posting is a list of legs ``(account code, signed amount in fen)`` that
sums to zero, recorded once under an idempotency key. Replaying the key with
the same legs returns the recorded transaction; with other legs it is refused.
Balances are never stored: they are ``SUM(amount)`` over an account's entries.

Concurrent posters need no lock of ours: the unique constraints on
``accounts.code`` and ``ledger_transactions.idempotency_key`` decide who
wins (``INSERT ... ON CONFLICT DO NOTHING``), and the loser reads the
winner's row. Accounts are created in sorted order so that two posters
never wait on each other in a cycle. A posting is four statements, because
it sits on the issuer's hottest path (every top-up posts twice).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from issuer.db import Account, Entry, Transaction
from reader.clock import instant


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


def _legs_of(session: Session, transaction_id: int) -> list[tuple[str, int]]:
    rows = session.execute(select(Account.code, Entry.amount).join(Entry.account)
                           .where(Entry.transaction_id == transaction_id).order_by(Entry.id))
    return [(code, amount) for code, amount in rows]


def _replay(session: Session, existing: Transaction, kind: str, legs: list[tuple[str, int]],
            order_id: int | None) -> int:
    same = (existing.kind == kind and existing.order_id == order_id
            and Counter(_legs_of(session, existing.id)) == Counter(legs))
    if not same:
        raise LedgerError(f"idempotency key {existing.idempotency_key!r} was posted with other legs")
    return existing.id


def _insert_once(session: Session, table: Any, key: str) -> Any:
    """INSERT ... ON CONFLICT (key) DO NOTHING, in the session's dialect: a loser of a race
    waits for the winner's commit and then inserts nothing, with no savepoint to undo."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    return insert(table).on_conflict_do_nothing(index_elements=[key])


def accounts(session: Session, codes: Iterable[str], at: datetime) -> dict[str, int]:
    """The ids of the accounts ``codes``, each created on first use at ``at`` (race-safe, in
    sorted order so that two posters never wait on each other in a cycle)."""
    wanted = sorted(set(codes))
    found = {code: id_ for code, id_ in session.execute(
        select(Account.code, Account.id).where(Account.code.in_(wanted)))}
    missing = [code for code in wanted if code not in found]
    if missing:
        session.execute(_insert_once(session, Account, "code"),
                        [{"code": code, "created_at": at} for code in missing])
        found.update((code, id_) for code, id_ in session.execute(
            select(Account.code, Account.id).where(Account.code.in_(missing))))
    return found


def post(session: Session, kind: str, legs: Sequence[tuple[str, int]], idempotency_key: str,
         order_id: int | None = None, *, at: datetime) -> int:
    """Record a balanced posting once under ``idempotency_key``, booked at ``at`` (an instant of
    the caller's clock); its transaction id. The caller commits."""
    checked = _check(kind, legs, idempotency_key)
    now = instant(at)
    ids = accounts(session, (code for code, _ in checked), now)
    made = session.execute(_insert_once(session, Transaction, "idempotency_key")
                           .values(kind=kind, order_id=order_id, idempotency_key=idempotency_key,
                                   created_at=now).returning(Transaction.id)).scalar()
    if made is None:
        existing = _find(session, idempotency_key)
        if existing is None:  # pragma: no cover - the conflicting row is committed before we return
            raise LedgerError(f"idempotency key {idempotency_key!r} is taken by a vanished posting")
        return _replay(session, existing, kind, checked, order_id)
    session.execute(insert(Entry), [{"transaction_id": made, "account_id": ids[code], "amount": amount,
                                     "created_at": now} for code, amount in checked])
    return int(made)


def balance(session: Session, account_code: str) -> int:
    """The balance of ``account_code`` in fen: the sum of its entries (0 for an unknown account)."""
    total = session.scalar(select(func.coalesce(func.sum(Entry.amount), 0))
                           .join(Entry.account).where(Account.code == account_code))
    return int(total or 0)


def covers(session: Session, account_code: str, amount: int) -> bool:
    """Whether ``account_code`` holds ``amount``, with the account locked until the caller
    commits, so two debits racing for the last fen cannot both see it."""
    account_id = session.scalar(select(Account.id).where(Account.code == account_code)
                                .with_for_update())
    if account_id is None:  # never posted to: it holds nothing
        return amount <= 0
    held = session.scalar(select(func.coalesce(func.sum(Entry.amount), 0))
                          .where(Entry.account_id == account_id))
    return int(held or 0) >= amount


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
