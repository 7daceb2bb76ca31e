"""``koala card``: the cards on a band: list them beside the issuer's books, order, top up
and cancel them over the air, and read their history as any reader app would."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from commands.contact import companion, issue_card, topup_card
from commands.history import card_history, card_journeys
from commands.home import NotRegistered
from commands.world import (
    World,
    Yuan,
    at_option,
    card_option,
    identifier,
    json_option,
    lock_state,
    money_card_option,
    pass_world,
)
from common.money import yuan
from issuer.errors import IssuerUnavailable
from issuer.products import PRODUCTS, product
from phone.companion import IssuerClient
from reader import clock
from wallet.errors import WalletError

#: Cards record their terminals' wall time, which carries no zone: the column says which.
WHEN = f"when ({clock.label()})"


@click.group()
def card() -> None:
    """Cards on a band: list, issue, top up, cancel, choose the express one; read their history
    and rides."""


card.add_command(card_history)
card.add_command(card_journeys)


@card.command("list")
@click.option("--band", "band_name", required=True, help="The band.")
@json_option
@pass_world
def card_list(world: World, band_name: str, as_json: bool) -> None:
    """The band's cards with their balances, and the issuer's books beside them if registered."""
    worn = world.home.load_band(band_name)
    cards = worn.summaries()
    books = issuer_books(world, band_name)
    if as_json:
        world.emit([{"card": c.name, "label": c.label, "aid": c.aid.hex().upper(),
                     "number": c.number, "balance_fen": c.balance, "valid_until": c.valid_until,
                     "answers_readers": c.active, "issuer": books.get(c.serial.hex().upper())}
                    for c in cards])
        return
    table = Table("card", identifier("AID"), identifier("number"), "balance", "valid until",
                  "answers", "issuer's books", title=f"band {band_name}")
    for c in cards:
        book = books.get(c.serial.hex().upper())
        table.add_row(c.name, c.aid.hex().upper(), c.number,
                      "—" if c.balance is None else yuan(c.balance), c.valid_until,
                      "yes" if c.active else "locked",
                      f"{yuan(book['balance'])} {book['status']}" if book else "—")
    world.console.print(table)
    if worn.locked:
        world.console.print(lock_state(worn))


def issuer_books(world: World, band_name: str) -> dict[str, dict[str, Any]]:
    """The issuer's view of the band's cards by serial; empty if the band is not registered."""
    try:
        link = world.home.issuer_link(band_name)
    except NotRegistered:
        return {}
    except WalletError as error:
        click.echo(f"(no issuer's view: {error})", err=True)  # stdout may be JSON
        return {}
    client = IssuerClient(link.url, link.device_token, at=world.at)
    try:
        return {card["app_serial"]: card for card in client.cards(link.band_id)}
    except IssuerUnavailable as error:
        click.echo(f"(no issuer's view: {error})", err=True)  # stdout may be JSON
        return {}
    finally:
        client.close()


@card.command("default")
@click.option("--band", "band_name", required=True, help="The band.")
@card_option
@pass_world
def card_default(world: World, band_name: str, card_name: str) -> None:
    """Make a stored-value card the express card: gates take it even while the band is locked."""
    with world.band(band_name) as worn:
        worn.set_express(product(card_name).aid)
    world.console.print(lock_state(worn))


@card.command("issue")
@at_option
@click.option("--band", "band_name", required=True, help="The band (in process).")
@click.option("--product", "product_name", required=True, type=click.Choice(sorted(PRODUCTS)))
@pass_world
def card_issue(world: World, band_name: str, product_name: str) -> None:
    """Order a card from the issuer and relay its issuance to the band, over the air."""
    issue_card(world, band_name, product_name)


@card.command("topup")
@at_option
@click.option("--band", "band_name", required=True, help="The band (in process).")
@money_card_option
@click.option("--amount", type=Yuan(), required=True, help="Amount in yuan, e.g. 50 or 12.50.")
@click.option("--key", "idempotency_key", help="Idempotency key (default: a new one).")
@pass_world
def card_topup(world: World, band_name: str, card_name: str, amount: int,
               idempotency_key: str | None) -> None:
    """Top a card up over the air from the band's funding account at the issuer."""
    topup_card(world, band_name, card_name, amount, idempotency_key)


@card.command("cancel")
@at_option
@click.option("--band", "band_name", required=True, help="The band (in process).")
@card_option
@pass_world
def card_cancel(world: World, band_name: str, card_name: str) -> None:
    """Cancel a card, as its holder's phone does: it proves its balance, is deleted from the
    band, and the balance is refunded to the band's funding account."""
    final = cancel(world, band_name, card_name)
    if final["state"] != "settled":
        raise click.ClickException(f"cancellation {final['state']}: {final['last_error']}")
    world.console.print(f"cancelled {card_name} card {final['app_serial']}: "
                        f"{yuan(final['amount'])} refunded")


def cancel(world: World, band_name: str, card_name: str) -> dict[str, Any]:
    """Order the card's cancellation and relay it, as the band's phone; the order as the
    issuer then has it."""
    serial = world.home.load_band(band_name).card(card_name).issuer_file.app_serial
    with world.console.status(f"cancelling the {card_name} card over the air…"), \
            companion(world, band_name) as (phone, _):
        return phone.cancel(serial)
