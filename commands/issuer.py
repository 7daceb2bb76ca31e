"""``koala issuer``: run the over-the-air issuer and do its operator's work (clearing the
terminals' records, closing orders their cards never proved)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import click

from commands.world import World, at_option, issuer_options, operator_desk, pass_world
from common.money import yuan
from issuer.client import OperatorClient
from reader.record import LoadRecord, PurchaseRecord


@click.group("issuer")
def issuer_group() -> None:
    """The over-the-air issuer service (TSM)."""


@issuer_group.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8700, show_default=True)
@click.option("--database", metavar="URL", envvar="KOALA_ISSUER_DB",
              help="SQLAlchemy URL (postgresql+psycopg://…); default SQLite in $KOALA_HOME/issuer.")
@click.option("--operator-token", envvar="KOALA_OPERATOR_TOKEN", required=True,
              help="Bearer token of the operator (or $KOALA_OPERATOR_TOKEN).")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Server processes (one per core is the usual choice).")
@click.option("--client-time", is_flag=True,
              help="Take each request's stated time (the clients' --at) instead of this machine's "
                   "clock: for replaying a day in a simulated world, never in production.")
@pass_world
def issuer_serve(world: World, host: str, port: int, database: str | None,
                 operator_token: str, workers: int, client_time: bool) -> None:
    """Serve the issuer's HTTP API (OpenAPI at /docs) until interrupted."""
    serve(world, host, port, database, operator_token, workers, client_time)


def serve(world: World, host: str, port: int, database: str | None, operator_token: str,
          workers: int, client_time: bool) -> None:
    """Migrate and load keys once, up front, then hand the workers their settings through the
    environment (each builds its own app from it) and serve."""
    import uvicorn  # noqa: PLC0415 - only the server needs it
    from sqlalchemy.exc import SQLAlchemyError  # noqa: PLC0415

    from issuer.server import build  # noqa: PLC0415

    try:
        build(world.home.root, operator_token, database)
    except SQLAlchemyError as error:
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        raise click.ClickException(f"cannot open the issuer's database {_shown(database)}: "
                                   f"{reason}") from None
    os.environ.update(KOALA_HOME=str(world.home.root), KOALA_OPERATOR_TOKEN=operator_token,
                      KOALA_ISSUER_DB=database or "", KOALA_ISSUER_CLIENT_TIME=str(int(client_time)))
    world.console.print(f"issuer on http://{host}:{port} with {workers} worker(s) "
                        f"(data in {world.home.root / 'issuer'})")
    uvicorn.run("issuer.server:from_environment", factory=True, host=host, port=port,
                workers=workers, log_level="warning", access_log=False)


def _shown(database: str | None) -> str:
    """The database's URL as a message may show it: without its password."""
    from sqlalchemy.engine import make_url  # noqa: PLC0415
    from sqlalchemy.exc import ArgumentError  # noqa: PLC0415

    if database is None:
        return "(SQLite under $KOALA_HOME)"
    try:
        return make_url(database).render_as_string(hide_password=True)
    except ArgumentError:
        return repr(database)


@issuer_group.command("status")
@click.option("--issuer", "issuer_url", envvar="KOALA_ISSUER", default="http://127.0.0.1:8700",
              show_default=True, help="The issuer's URL (or $KOALA_ISSUER).")
@click.option("--wait", type=click.FloatRange(0, 600), default=0, show_default=True,
              help="Seconds to wait for the issuer to answer (after starting it with &).")
@pass_world
def issuer_status(world: World, issuer_url: str, wait: float) -> None:
    """Whether the issuer answers, and the card products it issues."""
    import time  # noqa: PLC0415

    from issuer.client import ApiClient  # noqa: PLC0415
    from issuer.errors import IssuerUnavailable  # noqa: PLC0415

    client = ApiClient(issuer_url, token="")
    deadline = time.monotonic() + wait
    try:
        while True:
            try:
                products = client.call("GET", "/v1/products")
                break
            except IssuerUnavailable:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.1)
    finally:
        client.close()
    names = ", ".join(p["name"] for p in products)
    world.console.print(f"the issuer at {issuer_url} answers; it issues {names}")


@issuer_group.command("clear")
@at_option
@issuer_options
@pass_world
def issuer_clear(world: World, issuer_url: str, operator_token: str) -> None:
    """Send the terminals' purchase and cash-load records to the issuer, which books those whose
    TAC (or, for the bank card's offline purchases, TC) holds."""
    with operator_desk(world, issuer_url, operator_token) as desk:
        cleared = clear(world, desk)
    result, load_result, ecash_result = cleared.debits, cleared.loads, cleared.ecash
    world.console.print(f"cleared {cleared.debit_count} records: {result['booked']} booked, "
                        f"{result['duplicates']} already booked, {result['free']} free (entries), "
                        f"{result['opening']} in opening balances, {len(result['refused'])} refused")
    if load_result is not None:
        world.console.print(f"cleared {cleared.load_count} cash loads: {load_result['booked']} booked, "
                            f"{load_result['duplicates']} already booked, "
                            f"{load_result['opening']} in opening balances, "
                            f"{len(load_result['refused'])} refused")
    if ecash_result is not None:
        world.console.print(f"cleared {cleared.ecash_count} e-cash purchases: "
                            f"{ecash_result['booked']} booked, {ecash_result['duplicates']} "
                            f"already booked, {len(ecash_result['refused'])} refused")
    for reason in cleared.refused():
        world.console.print(f"  refused: {reason}")


@dataclass(frozen=True)
class Cleared:
    """The issuer's answers to one clearing: the debits', the cash loads' and the e-cash
    purchases' (``None`` when there were none of a kind to send), with how many were sent."""

    debit_count: int
    debits: dict[str, Any]
    load_count: int
    loads: dict[str, Any] | None
    ecash_count: int
    ecash: dict[str, Any] | None

    def refused(self) -> list[Any]:
        return [*self.debits["refused"], *(self.loads or {}).get("refused", []),
                *(self.ecash or {}).get("refused", [])]


def clear(world: World, desk: OperatorClient) -> Cleared:
    """Send every record the world's terminals kept: the gates' and validators' debits, the
    load machines' cash loads, the POS terminals' offline e-cash purchases."""
    kept = list(world.home.terminal_records())
    records = [r for r in kept if isinstance(r, PurchaseRecord)]
    loads = [r for r in kept if isinstance(r, LoadRecord)]
    purchases = world.home.pos_records()
    result = desk.clear(records)
    load_result = desk.clear_loads(loads) if loads else None
    ecash_result = desk.clear_ecash(purchases) if purchases else None
    return Cleared(len(records), result, len(loads), load_result, len(purchases), ecash_result)


@issuer_group.command("resolve")
@click.argument("order_id", type=click.IntRange(1, 2**31 - 1))
@at_option
@issuer_options
@pass_world
def issuer_resolve(world: World, order_id: int, issuer_url: str, operator_token: str) -> None:
    """Close an order its card never proved, after the clearing window without contact: a
    held top-up goes back to the funding account, a lost card's balance on to the new band."""
    with operator_desk(world, issuer_url, operator_token) as desk:
        order = desk.resolve(order_id)
    world.console.print(f"order {order_id} ({order['kind']}): {order['state']}, "
                        f"{yuan(order['amount'])} — {order['last_error']}")
