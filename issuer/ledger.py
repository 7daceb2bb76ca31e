"""The issuer's double-entry ledger: balanced, idempotent postings; balances are sums.

A posting is a list of legs ``(account code, signed amount in fen)`` that
sums to zero, recorded once under an idempotency key. Replaying the key with
the same legs returns the recorded transaction; with other legs it is refused.
Balances are never stored: they are ``SUM(amount)`` over an account's entries.

Concurrent posters need no lock of ours: the unique constraints on
``accounts.code`` and ``ledger_transactions.idempotency_key`` decide who
wins (``INSERT ... ON CONFLICT DO NOTHING``), and the loser reads the
winner's row. Accounts are created in sorted order so that two posters
never wait on each other in a cycle. A posting is three statements in two
round trips (:mod:`issuer.sql`), because it sits on the issuer's hottest
path (every top-up posts twice).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from sqlalchemy.orm import Session

from issuer.sql import Db, Sql, of, placeholders, timestamp
from reader.clock import instant

#: Where a posting is recorded: a transaction of the order service (:mod:`issuer.sql`), or an
#: ORM session's (the ledger's statements then run in it).
Book = Db | Session


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


_FIND = Sql("SELECT id, kind, order_id FROM ledger_transactions WHERE idempotency_key = :key")
_LEGS = Sql("SELECT a.code, e.amount FROM entries e JOIN accounts a ON a.id = e.account_id "
            "WHERE e.transaction_id = :id ORDER BY e.id")
NEW_TRANSACTION = Sql(
    "INSERT INTO ledger_transactions (kind, order_id, idempotency_key, created_at) "
    "VALUES (:kind, :order_id, :key, :at) ON CONFLICT (idempotency_key) DO NOTHING RETURNING id")


def balance_of(parameter: str) -> str:
    """The balance of the account whose code is the parameter ``:parameter``, as an SQL
    expression: the sum of its entries (0 for an account never posted to)."""
    return (f"(SELECT COALESCE(SUM(e.amount), 0) FROM entries e JOIN accounts a "
            f"ON a.id = e.account_id WHERE a.code = :{parameter})")


_BALANCE = Sql(f"SELECT {balance_of('code')}")
COVERS = Sql("SELECT (SELECT COALESCE(SUM(e.amount), 0) FROM entries e WHERE e.account_id = a.id) "
             "FROM accounts a WHERE a.code = :code {FOR UPDATE}")
_BALANCES = Sql("SELECT a.code, COALESCE(SUM(e.amount), 0) FROM accounts a "
                "LEFT JOIN entries e ON e.account_id = a.id GROUP BY a.code")
_STATEMENT = Sql(
    "SELECT t.id, t.kind, t.idempotency_key, e.created_at, e.amount FROM entries e "
    "JOIN ledger_transactions t ON t.id = e.transaction_id JOIN accounts a ON a.id = e.account_id "
    "WHERE a.code = :code ORDER BY e.id")


@cache
def _accounts_named(count: int) -> Sql:
    return Sql(f"SELECT code, id FROM accounts WHERE code IN ({', '.join(placeholders('c', count))})")


@cache
def _new_accounts(count: int) -> Sql:
    rows = ", ".join(f"({code}, :at)" for code in placeholders("c", count))
    return Sql(f"INSERT INTO accounts (code, created_at) VALUES {rows} "
               "ON CONFLICT (code) DO NOTHING")


@cache
def new_entries(count: int) -> Sql:
    rows = ", ".join(f"(:t, :a{n}, :m{n}, :at)" for n in range(count))
    return Sql(f"INSERT INTO entries (transaction_id, account_id, amount, created_at) VALUES {rows}")


def _db(book: Book) -> Db:
    return of(book) if isinstance(book, Session) else book


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


def posted(book: Book, idempotency_key: str) -> bool:
    """Whether a posting under ``idempotency_key`` exists."""
    return _db(book).one(_FIND, key=idempotency_key) is not None


def _legs_of(book: Book, transaction_id: int) -> list[tuple[str, int]]:
    return [(code, amount) for code, amount in _db(book).all(_LEGS, id=transaction_id)]


def _replay(db: Db, kind: str, legs: list[tuple[str, int]], order_id: int | None,
            idempotency_key: str) -> int:
    existing = db.one(_FIND, key=idempotency_key)
    if existing is None:  # pragma: no cover - the conflicting row is committed before we return
        raise LedgerError(f"idempotency key {idempotency_key!r} is taken by a vanished posting")
    transaction_id, existing_kind, existing_order = existing
    same = (existing_kind == kind and existing_order == order_id
            and Counter(_legs_of(db, transaction_id)) == Counter(legs))
    if not same:
        raise LedgerError(f"idempotency key {idempotency_key!r} was posted with other legs")
    return int(transaction_id)


def accounts(book: Book, codes: Iterable[str], at: datetime) -> dict[str, int]:
    """The ids of the accounts ``codes``, each created on first use at ``at`` (race-safe: the
    unique code decides, and in sorted order so that two posters never wait on each other in
    a cycle). Ids the order service's committed transactions found are not looked up again."""
    db, wanted = _db(book), sorted(set(codes))
    known = {code: db.accounts[code] for code in wanted if code in db.accounts}
    unknown = [code for code in wanted if code not in known]
    if unknown:
        named = {f"c{n}": code for n, code in enumerate(unknown)}
        found = dict(db.all(_accounts_named(len(unknown)), **named))
        missing = [code for code in unknown if code not in found]
        if missing:
            db.write(_new_accounts(len(missing)), at=at,
                     **{f"c{n}": code for n, code in enumerate(missing)})
            found = dict(db.all(_accounts_named(len(unknown)), **named))
        db.found.update(found)
        known.update(found)
    return {code: int(id_) for code, id_ in known.items()}


def post(book: Book, kind: str, legs: Sequence[tuple[str, int]], idempotency_key: str,
         order_id: int | None = None, *, at: datetime) -> int:
    """Record a balanced posting once under ``idempotency_key``, booked at ``at`` (an instant of
    the caller's clock); its transaction id. The caller commits.

    ``INSERT ... ON CONFLICT DO NOTHING`` settles a race between two posters of one key: the
    loser waits for the winner's commit, inserts nothing, and reads the winner's posting."""
    checked, db = _check(kind, legs, idempotency_key), _db(book)
    now = instant(at)
    ids = accounts(db, (code for code, _ in checked), now)
    made = db.write(NEW_TRANSACTION, kind=kind, order_id=order_id, key=idempotency_key, at=now)
    if made is None:
        return _replay(db, kind, checked, order_id, idempotency_key)
    entries = {f"a{n}": ids[code] for n, (code, _) in enumerate(checked)}
    entries |= {f"m{n}": amount for n, (_, amount) in enumerate(checked)}
    db.write(new_entries(len(checked)), t=made, at=now, **entries)
    return int(made)


def balance(book: Book, account_code: str) -> int:
    """The balance of ``account_code`` in fen: the sum of its entries (0 for an unknown account)."""
    return int(_db(book).value(_BALANCE, code=account_code) or 0)


def covers(book: Book, account_code: str, amount: int) -> bool:
    """Whether ``account_code`` holds ``amount``, with the account locked until the caller
    commits, so two debits racing for the last fen cannot both see it."""
    row = _db(book).one(COVERS, code=account_code)
    if row is None:  # never posted to: it holds nothing
        return amount <= 0
    return int(row[0]) >= amount


def balances(book: Book) -> dict[str, int]:
    """Every account's balance; they add up to zero."""
    return {code: int(total) for code, total in _db(book).all(_BALANCES)}


def statement(book: Book, account_code: str) -> list[StatementLine]:
    """The entries of ``account_code`` in posting order, each with the running balance."""
    lines, running = [], 0
    for transaction_id, kind, key, created_at, amount in _db(book).all(_STATEMENT, code=account_code):
        running += amount
        lines.append(StatementLine(transaction_id, kind, key, timestamp(created_at), amount, running))
    return lines
