"""``koala companion``: the band's phone, which relays the issuer's APDUs to the band, in
process or over BLE once paired."""

from __future__ import annotations

import os
import sys

import click
from rich.table import Table

from ble.relay import UNLOCK
from commands.contact import (
    VIRTUAL,
    companion,
    issue_card,
    no_new_pairing,
    pair,
    paired_bond,
    phone,
    topup_card,
    transport_option,
)
from commands.world import (
    World,
    Yuan,
    at_option,
    json_option,
    money_card_option,
    pass_world,
)
from common.money import yuan
from issuer.products import PRODUCTS


@click.group("companion")
def companion_group() -> None:
    """The phone: relays the issuer's APDUs to a band."""


@companion_group.command("sync")
@at_option
@click.option("--band", "band_name", required=True, help="The band (in process).")
@pass_world
def companion_sync(world: World, band_name: str) -> None:
    """Relay every order the issuer has waiting for the band (locks, cancellations, leftovers)."""
    with companion(world, band_name):
        pass
    world.console.print("nothing left waiting")


@companion_group.command("scan")
@transport_option
@click.option("--timeout", type=click.FloatRange(0.1, 60), default=5.0, show_default=True)
@pass_world
def companion_scan(world: World, transport: str | None, timeout: float) -> None:
    """Look for a Koala band advertising nearby."""
    if transport == VIRTUAL:
        raise click.UsageError("a scan looks for bands on a radio: the virtual one holds no band "
                               "until a command with --band puts one there")
    with phone(world, "", transport, os.urandom(6), lambda _code: False) as found:
        band = found.scan(timeout)
    world.console.print(f"{band.name} at {band.address} (RSSI {band.rssi})")


@companion_group.command("pair")
@click.option("--band", "band_name", required=True, help="The band.")
@transport_option
@click.option("--yes", is_flag=True, help="Confirm the six digits without asking.")
@pass_world
def companion_pair(world: World, band_name: str, transport: str | None, yes: bool) -> None:
    """Pair this phone with the band over BLE: LE Secure Connections, then the app layer,
    each by comparing the six digits the band shows."""
    if not yes and not sys.stdin.isatty():
        raise click.UsageError("pairing needs its user to compare six digits: run it in a "
                               "terminal, or pass --yes")

    def confirm(code: str) -> bool:
        world.console.print(f"the phone shows [bold]{code}[/]")
        return yes or click.confirm("does the band show the same six digits?", default=True)

    phone_id = pair(world, band_name, transport, confirm)
    world.console.print(f"paired with {band_name} (phone {phone_id.hex().upper()})")


@companion_group.command("cards")
@click.option("--band", "band_name", required=True, help="The band.")
@transport_option
@json_option
@pass_world
def companion_cards(world: World, band_name: str, transport: str | None, as_json: bool) -> None:
    """The band's cards as the paired phone reads them over BLE."""
    bond = paired_bond(world, band_name)
    with phone(world, band_name, transport, bond.phone_id, no_new_pairing) as paired:
        paired.connect(bond.key)
        cards = paired.cards()
    if as_json:
        world.emit(cards)
        return
    table = Table("card", "balance", "answers readers", title=f"{band_name} over BLE")
    for c in cards:
        table.add_row(c["card"], "—" if c["balance_fen"] is None else yuan(c["balance_fen"]),
                      "yes" if c["answers_readers"] else "locked")
    world.console.print(table)


@companion_group.command("topup")
@at_option
@click.option("--band", "band_name", required=True, help="The band.")
@money_card_option
@click.option("--amount", type=Yuan(), required=True, help="Amount in yuan, e.g. 50 or 12.50.")
@transport_option
@pass_world
def companion_topup(world: World, band_name: str, card_name: str, amount: int,
                    transport: str | None) -> None:
    """Top a card up over the air, relayed to the band over BLE by the paired phone."""
    topup_card(world, band_name, card_name, amount, None, ble=True, transport=transport)


@companion_group.command("issue")
@at_option
@click.option("--band", "band_name", required=True, help="The band.")
@click.option("--product", "product_name", required=True, type=click.Choice(sorted(PRODUCTS)))
@transport_option
@pass_world
def companion_issue(world: World, band_name: str, product_name: str,
                    transport: str | None) -> None:
    """Order a card and relay its issuance to the band over BLE by the paired phone."""
    issue_card(world, band_name, product_name, ble=True, transport=transport)


@companion_group.command("unlock")
@click.option("--band", "band_name", required=True, help="The band.")
@transport_option
@pass_world
def companion_unlock(world: World, band_name: str, transport: str | None) -> None:
    """Unlock the band's cards over BLE, as the paired phone does once its user confirmed it
    (a sealed control command: the band takes it from no other phone)."""
    bond = paired_bond(world, band_name)
    with phone(world, band_name, transport, bond.phone_id, no_new_pairing) as paired:
        locked, on_wrist = paired.connect(bond.key)[0].control(UNLOCK)
    where = "on the wrist" if on_wrist else "off the wrist"
    world.console.print(f"{band_name} is {where} and {'locked' if locked else 'unlocked'}")
