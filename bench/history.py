"""A PostgreSQL issuer schema with history: bands, their cards and funding, past settled top-ups.

A hot path measured on empty tables measures the wrong plans: every index is
one page and every balance a sum over nothing. :func:`seed` fills a freshly
migrated schema with what a year of service leaves, in set-based SQL
(``INSERT ... SELECT generate_series``) so that 200,000 top-ups take seconds:

- ``bands`` bands, each with its card manager rekeyed and one active transit card;
- a funding posting per band (bank:settlement → funding:band:<id>) covering its top-ups;
- ``topups`` settled top-up orders spread over the bands, each with its two postings
  ``order:<id>:debit`` and ``order:<id>:settle`` (four entries: funding → issuer:in-flight →
  card:<serial>, as :mod:`issuer.orders` posts them) and the one relay session the issuer
  leaves behind a settled top-up.

Ids are given explicitly and the sequences moved past them, so the issuer's own rows follow.
The tables are then vacuumed and analysed, as a year's autovacuum would have left them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, text

from issuer.accounts import IN_FLIGHT, SETTLEMENT
from issuer.keystore import CARD_MANAGER
from issuer.products import TRANSIT
from issuer.server import OTA_TERMINAL
from reader.clock import NETWORK_ZONE

#: What each history band keeps in its funding account after its top-ups, in fen.
LEFT_OVER = 10_000
TABLES = ("bands", "cards", "orders", "relay_sessions", "accounts", "ledger_transactions", "entries")

# Band b holds card b; accounts 1 and 2 are the bank's and the in-flight one, then each band's
# funding account (2 + b) and card account (2 + bands + b). Funding posting b is transaction b
# (entries 2b-1, 2b); top-up j is order j, transactions bands + 2j - 1 and bands + 2j, and
# entries 2 bands + 4j - 3 ... 2 bands + 4j.
STATEMENTS = (
    """INSERT INTO bands (id, cplc, uid, device_token_hash, isd_key_set, created_at)
       SELECT b, upper(md5('cplc' || b) || md5('cplc:' || b) || left(md5('cplc;' || b), 20)),
              upper(left(md5('uid' || b), 14)), encode(sha256(('token' || b)::bytea), 'hex'),
              :key_set, :start + b * interval '1 second'
       FROM generate_series(1, :bands) AS b""",
    """INSERT INTO cards (id, band_id, product, aid, app_serial, status, created_at)
       SELECT id, id, :product, :aid, :prefix || lpad(id::text, 16, '0'), 'active',
              created_at + interval '200 milliseconds'
       FROM bands""",
    """INSERT INTO accounts (id, code, created_at)
       SELECT 1, :settlement, :start UNION ALL SELECT 2, :in_flight, :start
       UNION ALL SELECT 2 + id, 'funding:band:' || id, created_at FROM bands
       UNION ALL SELECT 2 + :bands + id, 'card:' || app_serial, created_at FROM cards""",
    """INSERT INTO orders (id, idempotency_key, kind, band_id, card_id, amount, state,
                           created_at, updated_at)
       SELECT j, band || ':' || md5('topup' || j), 'topup', band, band, 100 * (1 + j * 7 % 50),
              'settled', at, at + interval '40 milliseconds'
       FROM generate_series(1, :topups) AS j,
            LATERAL (SELECT (j - 1) % :bands + 1 AS band,
                            :start + interval '1 day' + j * :spacing * interval '1 second' AS at) AS t""",
    """INSERT INTO ledger_transactions (id, kind, order_id, idempotency_key, created_at)
       SELECT id, 'funding', NULL, 'funding:history-' || id, created_at + interval '500 milliseconds'
       FROM bands
       UNION ALL SELECT :bands + 2 * id - 1, 'topup-debit', id, format('order:%s:debit', id),
                        created_at + interval '20 milliseconds' FROM orders
       UNION ALL SELECT :bands + 2 * id, 'topup-settle', id, format('order:%s:settle', id),
                        updated_at FROM orders""",
    """INSERT INTO entries (id, transaction_id, account_id, amount, created_at)
       SELECT 2 * b.id - 2 + leg.n, b.id, leg.account, leg.amount, t.created_at
       FROM bands AS b JOIN ledger_transactions AS t ON t.id = b.id
            JOIN (SELECT band_id, sum(amount) + :left_over AS paid FROM orders GROUP BY band_id) AS f
              ON f.band_id = b.id,
            LATERAL (VALUES (1, 1, -f.paid), (2, 2 + b.id, f.paid)) AS leg(n, account, amount)""",
    """INSERT INTO entries (id, transaction_id, account_id, amount, created_at)
       SELECT 2 * :bands + 4 * (o.id - 1) + leg.n, leg.tx, leg.account, leg.amount, leg.at
       FROM orders AS o, LATERAL (VALUES
         (1, :bands + 2 * o.id - 1, 2 + o.band_id, -o.amount, o.created_at + interval '20 milliseconds'),
         (2, :bands + 2 * o.id - 1, 2, o.amount, o.created_at + interval '20 milliseconds'),
         (3, :bands + 2 * o.id, 2, -o.amount, o.updated_at),
         (4, :bands + 2 * o.id, 2 + :bands + o.card_id, o.amount, o.updated_at))
         AS leg(n, tx, account, amount, at)""",
    """INSERT INTO relay_sessions (id, order_id, step, state, expires_at)
       SELECT gen_random_uuid(), o.id, '2', json_build_object(
                'aid', lower(c.aid), 'app_serial', c.app_serial, 'amount', o.amount,
                'terminal_id', CAST(:terminal AS text), 'step', 'settled', 'debited', true,
                'counter', (o.id - 1) / :bands,
                'date', to_char(o.created_at AT TIME ZONE :zone, 'YYYYMMDD'),
                'time', to_char(o.created_at AT TIME ZONE :zone, 'HH24MISS'),
                'expected_tac', left(md5('tac' || o.id), 8), 'mac2', left(md5('mac2' || o.id), 8),
                'refused', false),
              o.created_at + interval '10 minutes'
       FROM orders AS o JOIN cards AS c ON c.id = o.card_id""",
)


def seed(engine: Engine, bands: int, topups: int, now: datetime) -> None:
    """Fill the migrated, empty schema behind ``engine`` with ``bands`` bands and ``topups``
    past top-ups, all before ``now``; then VACUUM ANALYZE it."""
    if bands < 1 or topups < 0:
        raise ValueError("a history needs at least one band and no negative number of top-ups")
    start = now - timedelta(days=366)
    params: dict[str, Any] = {
        "bands": bands, "topups": topups, "start": start, "spacing": 360 * 86_400 / max(topups, 1),
        "key_set": CARD_MANAGER, "product": TRANSIT.name, "aid": TRANSIT.aid.hex().upper(),
        "prefix": TRANSIT.serial(0).hex().upper()[:-16], "settlement": SETTLEMENT,
        "in_flight": IN_FLIGHT, "left_over": LEFT_OVER, "terminal": OTA_TERMINAL.hex(),
        "zone": NETWORK_ZONE.key}
    with engine.begin() as connection:
        # Foreign keys hold by construction; their row-by-row checks would be most of the time.
        connection.execute(text("SET LOCAL session_replication_role = replica"))
        for statement in STATEMENTS:
            connection.execute(text(statement), params)
        for table in TABLES:
            if table != "relay_sessions":  # its ids are UUIDs
                connection.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                        f"(SELECT max(id) FROM {table}))"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text(f"VACUUM ANALYZE {', '.join(TABLES)}"))


def check_balanced(connection: Connection) -> None:
    """RuntimeError unless every ledger transaction, and so the whole ledger, sums to zero."""
    total, unbalanced = connection.execute(text(
        "SELECT coalesce(sum(amount), 0), (SELECT count(*) FROM (SELECT 1 FROM entries "
        "GROUP BY transaction_id HAVING sum(amount) <> 0) AS u) FROM entries")).one()
    if total or unbalanced:
        raise RuntimeError(f"the ledger does not balance: entries sum to {total} fen, "
                           f"{unbalanced} transaction(s) unbalanced")
