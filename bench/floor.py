"""The floor of a top-up's database work: pgbench running the issuer's own statements.

    .venv/bin/python -m bench.floor [--clients 16] [--seconds 10]

A top-up costs PostgreSQL what its three transactions cost (place and open, debit, settle).
pgbench runs exactly those statements, taken from the issuer's modules (:mod:`issuer.records`,
:mod:`issuer.ledger`), prepared, on a database with history (:mod:`bench.history`), with no
Python in between: what PostgreSQL's backends spend then is what they cannot spend less on
this machine for that SQL. :mod:`bench.ota` runs it on its own database after its rounds, so
every run sets the issuer's PostgreSQL CPU against it.

Where pgbench cannot say what the issuer says, the script says it otherwise:

- a top-up's band is drawn at random; one extra statement per top-up reads its card's serial,
  its funding account and a new relay session id (pgbench builds no strings or UUIDs), so the
  floor is, if anything, a little above the truth;
- the ledger's idempotency keys are an expression of the order id (``'order:<id>:debit'``,
  its colons as ``chr(58)``, which pgbench would take for variables), and NULLs are
  literals, where the issuer binds parameters.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection

from bench import history
from bench.backends import Backends
from bench.postgres import database_url, postmaster, scratch_database
from issuer import ledger, records
from issuer.db import make_engine, migrate

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
COLON = "chr(58)"  # pgbench takes a colon in a string literal for a variable
IN_FLIGHT_ID = 2  # issuer:in-flight in bench.history's numbering of the accounts
_STATE = {"aid": "a00000063201010500", "app_serial": "10000000000000000001", "amount": 1,
          "terminal_id": "000000000901", "debited": False, "counter": None, "date": "",
          "time": "", "expected_tac": "", "mac2": "", "refused": False}


@dataclass(frozen=True, slots=True)
class Floor:
    """What pgbench measured: top-ups per second, and PostgreSQL's CPU per top-up (seconds)."""

    rate: float
    postgres: float
    topups: int


def _state(step: str, debited: bool) -> str:
    return json.dumps({**_STATE, "step": step, "debited": debited,
                       "counter": 7 if debited else None})


def script(bands: int) -> str:
    """One top-up, as the issuer's three transactions send it."""
    placing = "\n".join([
        "BEGIN;",
        records.PLACING.bound(band=":b") + ";",
        records.NEW_ORDER.bound(band_id=":b", card_id=":b", kind="'topup'", amount="1",
                                state="'in_relay'", moved_to="NULL") + r" \gset o_",
        records.NEW_RELAY.bound(id=":sid", order_id=":o_id", step="'0'",
                  state=":state0") + ";",
        "COMMIT;"])
    steps = []
    for n, (kind, account_from, account_to, state) in enumerate((
            ("debit", ":funding_id", str(IN_FLIGHT_ID), "debited"),
            ("settle", str(IN_FLIGHT_ID), ":card_account", "settled")), start=1):
        steps.append("\n".join([
            "BEGIN;",
            records.SESSION_LOCKED.bound(id=":sid") + ";",
            *([ledger.COVERS.bound(code=":funding") + ";"] if kind == "debit" else []),
            ledger.NEW_TRANSACTION.bound(
                kind=f"'topup-{kind}'", order_id=":o_id",
                key=f"'order' || {COLON} || CAST(:o_id AS text) || {COLON} || '{kind}'")
            + r" \gset t_",
            ledger.new_entries(2).bound(t=":t_id", a0=account_from, m0="-1",
                      a1=account_to, m1="1") + ";",
            records.SAVE_ORDER.bound(id=":o_id", amount="1", state=f"'{state}'",
                      updated_at=":at", last_error="NULL", moved_to="NULL") + ";",
            records.SAVE_RELAY.bound(id=":sid", step=f"'{n + 1}'",
                      state=f":state{n}") + ";",
            "COMMIT;"]))
    return "\n".join([
        f"\\set b random(1, {bands})",
        "\\set key random(1, 4000000000000000000)",
        f"SELECT app_serial AS serial, 'funding' || {COLON} || 'band' || {COLON} || band_id "
        "AS funding, "
        f"2 + band_id AS funding_id, 2 + {bands} + id AS card_account, "
        r"gen_random_uuid() AS sid FROM cards WHERE id = :b \gset",
        placing, *steps, ""])


def measure(admin: Connection, url: str, name: str, bands: int, clients: int,
            seconds: float) -> Floor:
    """Run the top-up script on database ``name`` (seeded with ``bands`` history bands)."""
    at = datetime.now(UTC).isoformat()
    variables = {"at": at, "expires_at": at, "state0": _state("initialize", False),
                 "state1": _state("credit", True), "state2": _state("settled", True)}
    with tempfile.NamedTemporaryFile("w", suffix=".sql") as file:
        file.write(script(bands))
        file.flush()
        target = make_engine(url).url
        command = ["pgbench", "-n", "-M", "prepared", "-c", str(clients), "-j", "2",
                   "-T", str(int(seconds)), "-f", file.name, "-h", target.host or "127.0.0.1",
                   "-p", str(target.port or 5432), "-U", target.username or "postgres",
                   *(f"-D{key}={value}" for key, value in variables.items()), name]
        if shutil.which("pgbench") is None:
            raise SystemExit("pgbench is not installed: it comes with PostgreSQL's server "
                             "package (Debian: postgresql), which the bench measures anyway")
        with Backends(postmaster(admin), name) as backends:
            done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"pgbench failed: {done.stderr.strip() or done.stdout.strip()}")
    processed = re.search(r"number of transactions actually processed: (\d+)", done.stdout)
    rate = re.search(r"tps = ([\d.]+)", done.stdout)
    if processed is None or rate is None:
        raise RuntimeError(f"pgbench said nothing of its transactions: {done.stdout}")
    topups = int(processed.group(1))
    return Floor(float(rate.group(1)), backends.total.cpu / topups, topups)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16, help="pgbench clients (companions)")
    parser.add_argument("--seconds", type=float, default=10, help="how long pgbench runs")
    parser.add_argument("--server", default=PG, help="PostgreSQL on this machine")
    parser.add_argument("--history-bands", type=int, default=10_000)
    parser.add_argument("--history-topups", type=int, default=200_000)
    parser.add_argument("--script", type=Path, help="also write the pgbench script here")
    args = parser.parse_args()
    if args.script:
        args.script.write_text(script(args.history_bands))
    with scratch_database(args.server) as (name, admin):
        url = database_url(args.server, name)
        migrate(url)
        engine = make_engine(url)
        try:
            history.seed(engine, args.history_bands, args.history_topups, datetime.now(UTC))
        finally:
            engine.dispose()
        floor = measure(admin, url, name, args.history_bands, args.clients, args.seconds)
    print(f"pgbench floor of a top-up's three transactions ({args.clients} clients, "
          f"{floor.topups:,} top-ups): {floor.rate:,.0f} top-ups/s, PostgreSQL CPU "
          f"{floor.postgres * 1e3:.2f} ms a top-up")


if __name__ == "__main__":
    main()
