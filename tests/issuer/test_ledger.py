"""The double-entry ledger on SQLite and PostgreSQL, with the schema built by the Alembic migration.

PostgreSQL: every test module run creates its own schema ``koala_test_<pid>_<random>``
in the database of ``$KOALA_TEST_PG_URL`` (default the local server's ``test``),
points ``search_path`` at it through the connection options, migrates it to
head and drops it afterwards, so concurrent runs never see each other's rows.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections import Counter

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import IntegrityError

from issuer import ledger
from issuer.db import Account, Entry, Transaction, migrate, session_factory
from issuer.ledger import LedgerError
from tests.conftest import NOW as AT


def fresh() -> str:
    return uuid.uuid4().hex[:12]


def count_transactions(engine: Engine, prefix: str) -> int:
    with session_factory(engine)() as session:
        return session.scalar(select(func.count()).select_from(Transaction)
                              .where(Transaction.idempotency_key.startswith(prefix))) or 0


def test_schema_comes_from_the_migration_and_matches_the_models(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection)
        assert context.get_current_revision() == "0004"
        if engine.dialect.name == "postgresql":
            assert str(connection.execute(text("select current_schema()")).scalar()).startswith("koala_test_")
        assert compare_metadata(context, Account.metadata) == []
    migrate(engine)  # already at head: nothing to do
    with engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == "0004"


def test_foreign_keys_are_enforced(engine: Engine) -> None:
    run = fresh()
    with session_factory(engine)() as session:
        with pytest.raises(IntegrityError):
            ledger.post(session, "topup", [(f"a:{run}", -1), (f"b:{run}", 1)], run,
                        order_id=999_999_999, at=AT)
        session.rollback()
    assert count_transactions(engine, run) == 0


def test_balanced_posting(engine: Engine) -> None:
    run = fresh()
    funding, card, fee = f"funding:{run}", f"card:{run}", f"revenue:{run}"
    with session_factory(engine)() as session:
        first = ledger.post(session, "topup", [(funding, -5000), (card, 4990), (fee, 10)], f"{run}-1", at=AT)
        second = ledger.post(session, "purchase", [(card, -300), (funding, 300)], f"{run}-2", at=AT)
        session.commit()
        assert first != second
        assert ledger._legs_of(session, first) == [(funding, -5000), (card, 4990), (fee, 10)]
    with session_factory(engine)() as session:
        assert ledger.balance(session, funding) == -4700
        assert ledger.balance(session, card) == 4690
        assert ledger.balance(session, fee) == 10
        assert ledger.balance(session, f"nobody:{run}") == 0
        lines = ledger.statement(session, card)
        assert [(line.kind, line.amount, line.balance) for line in lines] == [("topup", 4990, 4990),
                                                                             ("purchase", -300, 4690)]
        assert [line.idempotency_key for line in lines] == [f"{run}-1", f"{run}-2"]


@pytest.mark.parametrize("legs", [
    [],
    [("a", 100)],
    [("a", -100), ("b", 99)],
    [("a", -100), ("b", 100), ("c", 1)],
    [("a", 0), ("b", 0)],
    [("a", -1.5), ("b", 1.5)],
    [("a", -True), ("b", True)],
    [("", -1), ("b", 1)],
])
def test_refused_postings_write_nothing(engine: Engine, legs: list[tuple[str, int]]) -> None:
    run = fresh()
    with session_factory(engine)() as session:
        with pytest.raises(LedgerError):
            ledger.post(session, "topup", [(code and f"{run}{code}", amount) for code, amount in legs], run,
                        at=AT)
        session.commit()
    assert count_transactions(engine, run) == 0
    with session_factory(engine)() as session:
        assert session.scalar(select(func.count()).select_from(Account)
                              .where(Account.code.startswith(run))) == 0


def test_idempotent_replay(engine: Engine) -> None:
    run = fresh()
    legs = [(f"funding:{run}", -2000), (f"card:{run}", 2000)]
    with session_factory(engine)() as session:
        first = ledger.post(session, "topup", legs, run, at=AT)
        again = ledger.post(session, "topup", list(reversed(legs)), run, at=AT)  # same legs, any order
        session.commit()
        assert again == first
    with session_factory(engine)() as session:
        later = ledger.post(session, "topup", legs, run, at=AT)
        session.commit()
        assert later == first
        assert ledger.balance(session, f"card:{run}") == 2000
        assert session.scalar(select(func.count()).select_from(Entry)
                              .where(Entry.transaction_id == first)) == 2
    assert count_transactions(engine, run) == 1


@pytest.mark.parametrize("kind, legs", [
    ("topup", [("funding", -2001), ("card", 2001)]),
    ("topup", [("funding", -2000), ("other", 2000)]),
    ("topup", [("funding", -2000), ("card", 1000), ("card", 1000)]),
    ("refund", [("funding", -2000), ("card", 2000)]),
])
def test_conflicting_replay_is_refused(engine: Engine, kind: str, legs: list[tuple[str, int]]) -> None:
    run = fresh()
    with session_factory(engine)() as session:
        ledger.post(session, "topup", [(f"funding:{run}", -2000), (f"card:{run}", 2000)], run, at=AT)
        session.commit()
    with session_factory(engine)() as session:
        with pytest.raises(LedgerError, match="other legs"):
            ledger.post(session, kind, [(f"{code}:{run}", amount) for code, amount in legs], run, at=AT)
        session.rollback()
        assert ledger.balance(session, f"card:{run}") == 2000
        assert ledger.balance(session, f"funding:{run}") == -2000
        assert ledger.balance(session, f"other:{run}") == 0
    assert count_transactions(engine, run) == 1


ACCOUNTS = ("funding:alice", "funding:bob", "card:01", "card:02", "issuer:float", "revenue")
transfer = st.tuples(st.sampled_from(ACCOUNTS), st.sampled_from(ACCOUNTS),
                     st.integers(1, 10_000_000)).filter(lambda t: t[0] != t[1])
posting = st.lists(transfer, min_size=1, max_size=4)
step = st.one_of(posting, st.integers(0, 50))  # a new posting, or a replay of an earlier one


@given(steps=st.lists(step, min_size=1, max_size=12))
def test_balances_are_derived_and_conserved(engine: Engine, steps: list[list[tuple[str, str, int]] | int]
                                            ) -> None:
    run = fresh()
    expected: Counter[str] = Counter()
    posted: list[tuple[str, list[tuple[str, int]], int]] = []
    with session_factory(engine)() as session:
        for item in steps:
            if isinstance(item, int):
                if not posted:
                    continue
                key, legs, transaction_id = posted[item % len(posted)]
                assert ledger.post(session, "transfer", legs, key, at=AT) == transaction_id
            else:
                legs = [leg for source, target, amount in item
                        for leg in ((f"{source}:{run}", -amount), (f"{target}:{run}", amount))]
                key = f"{run}-{len(posted)}"
                posted.append((key, legs, ledger.post(session, "transfer", legs, key, at=AT)))
                for code, amount in legs:
                    expected[code] += amount
            session.commit()
    with session_factory(engine)() as session:
        for name in ACCOUNTS:
            code = f"{name}:{run}"
            assert ledger.balance(session, code) == expected[code]
            lines = ledger.statement(session, code)
            assert (lines[-1].balance if lines else 0) == expected[code]
        assert sum(ledger.balances(session).values()) == 0
    assert count_transactions(engine, run) == len(posted)


def _run_threads(count: int, work) -> list[BaseException]:
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def body(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            work(index)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=body, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    return errors


THREADS = 8
SHARED = 4


def test_concurrent_posters_make_one_transaction_per_key(engine: Engine) -> None:
    run = fresh()
    funding, float_ = f"funding:{run}", f"issuer:float:{run}"
    ids: dict[str, set[int]] = {f"{run}-shared-{n}": set() for n in range(SHARED)}
    lock = threading.Lock()

    def shared_legs(n: int) -> list[tuple[str, int]]:
        return [(funding, -(n + 1) * 100), (f"card:{run}:{n}", (n + 1) * 100)]

    def work(index: int) -> None:
        order = list(range(SHARED))
        random.Random(index).shuffle(order)
        factory = session_factory(engine)
        for n in order:
            legs = shared_legs(n)
            with factory() as session:  # fresh session and connection per posting
                transaction = ledger.post(session, "topup", legs if index % 2 else legs[::-1],
                                          f"{run}-shared-{n}", at=AT)
                session.commit()
                with lock:
                    ids[f"{run}-shared-{n}"].add(transaction)
            with factory() as session:
                ledger.post(session, "fee", [(f"card:{run}:{n}", -1), (float_, 1)], f"{run}-own-{index}-{n}",
                            at=AT)
                session.commit()

    assert _run_threads(THREADS, work) == []
    assert all(len(found) == 1 for found in ids.values()), ids
    assert count_transactions(engine, run) == SHARED + THREADS * SHARED
    with session_factory(engine)() as session:
        assert ledger.balance(session, funding) == -sum((n + 1) * 100 for n in range(SHARED))
        for n in range(SHARED):
            assert ledger.balance(session, f"card:{run}:{n}") == (n + 1) * 100 - THREADS
        assert ledger.balance(session, float_) == THREADS * SHARED
        assert session.scalar(select(func.count()).select_from(Account)
                              .where(Account.code.contains(run))) == SHARED + 2
        assert sum(ledger.balances(session).values()) == 0


def test_concurrent_conflicting_posters_one_wins(engine: Engine) -> None:
    run = fresh()
    winners: list[int] = []
    lock = threading.Lock()

    def legs(index: int) -> list[tuple[str, int]]:
        return [(f"funding:{run}", -(index + 1)), (f"card:{run}", index + 1)]

    def work(index: int) -> None:
        with session_factory(engine)() as session:
            transaction = ledger.post(session, "topup", legs(index), run, at=AT)
            session.commit()
            with lock:
                winners.append(transaction)

    errors = _run_threads(THREADS, work)
    assert len(winners) == 1, winners
    assert len(errors) == THREADS - 1
    assert all(isinstance(error, LedgerError) for error in errors), errors
    assert count_transactions(engine, run) == 1
    with session_factory(engine)() as session:
        won = ledger.balance(session, f"card:{run}")
        assert 1 <= won <= THREADS
        assert ledger.balance(session, f"funding:{run}") == -won
