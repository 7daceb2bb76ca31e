"""The bench's seeded history is what the issuer itself would have left: its ledger balances,
its cards are found and active, and the issuer's next rows follow it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, func, select

from bench.history import LEFT_OVER, check_balanced, seed
from issuer import ledger
from issuer.accounts import IN_FLIGHT, card_account, funding_account
from issuer.db import Card, CardStatus, Order, OrderState, RelaySession, session_factory
from issuer.keys import DemoKeys
from issuer.orders import Orders
from issuer.products import TRANSIT
from reader import places

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
BANDS, TOPUPS = 3, 7


@pytest.fixture(scope="module")
def history(engine: Engine) -> Engine:
    if engine.dialect.name != "postgresql":
        pytest.skip("the history is seeded in PostgreSQL's SQL (generate_series)")
    seed(engine, BANDS, TOPUPS, NOW)
    return engine


def test_the_seeded_ledger_balances_as_the_issuer_reads_it(history: Engine) -> None:
    with history.connect() as connection:
        check_balanced(connection)
    with session_factory(history)() as session:
        assert sum(ledger.balances(session).values()) == 0
        assert ledger.balance(session, IN_FLIGHT) == 0
        for card in session.scalars(select(Card)):
            topups = session.scalar(select(func.sum(Order.amount)).where(Order.card_id == card.id))
            assert ledger.balance(session, card_account(card)) == topups
            assert ledger.balance(session, funding_account(card.band_id)) == LEFT_OVER


def test_every_past_topup_is_settled_with_its_two_postings_and_one_session(history: Engine) -> None:
    with session_factory(history)() as session:
        orders = session.scalars(select(Order)).all()
        assert len(orders) == TOPUPS
        assert {order.state for order in orders} == {OrderState.SETTLED}
        for order in orders:
            assert ledger.posted(session, f"order:{order.id}:debit")
            assert ledger.posted(session, f"order:{order.id}:settle")
            sessions = session.scalars(select(RelaySession).where(RelaySession.order_id == order.id))
            assert [relay.state["step"] for relay in sessions] == ["settled"]


def test_the_issuer_takes_a_topup_order_for_a_history_card(history: Engine) -> None:
    with session_factory(history)() as session:
        card = session.scalars(select(Card).where(Card.band_id == 1)).one()
    assert card.status is CardStatus.ACTIVE
    TRANSIT.check_serial(bytes.fromhex(card.app_serial))
    service = Orders(session_factory(history), DemoKeys(), places.load_id(9), lambda: NOW)
    order = service.topup(1, bytes.fromhex(card.app_serial), 100, "after-history", NOW)
    assert order == TOPUPS + 1
