"""The band's phone at contact: how it reaches the band (in process or over BLE), relays what
the issuer has waiting, and orders cards and top-ups; shared by the band, card and companion
groups."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from ble.errors import BleError
from commands.home import PhoneBond
from commands.world import World
from common.money import yuan
from phone.companion import BandLink, Companion, IssuerClient, LocalBand
from wallet.errors import BandBusy

if TYPE_CHECKING:
    from phone.ble.phone import Phone

#: ``--transport`` naming Bumble's virtual radio with the band in this process.
VIRTUAL = "virtual"

transport_option = click.option(
    "--transport", metavar="SPEC",
    help="The phone's Bluetooth controller through our Bumble backend for bleak (usb:0, "
         "hci-socket:0, tcp-client:HOST:PORT, ...), or 'virtual': a virtual radio with the band "
         "in this process; default: this machine's own Bluetooth stack (bleak's backend for "
         "the OS).")


@contextmanager
def companion(world: World, band_name: str, ble: bool = False, transport: str | None = None
              ) -> Iterator[tuple[Companion, Callable[[], list[dict[str, Any]]]]]:
    """The band's phone at contact, and how it lists the band's cards: first it relays
    whatever the issuer has waiting. In process, or over BLE (``ble``) on ``transport``: this
    machine's Bluetooth stack (None), a controller (the band advertising elsewhere for both), or
    the virtual radio with the band in this process (:data:`VIRTUAL`)."""
    link = world.home.issuer_link(band_name)
    client = IssuerClient(link.url, link.device_token, at=world.at)
    try:
        with reach(world, band_name, ble, transport) as (band_link, cards):
            phone = Companion(band_link, link.band_id, client)
            for order in phone.sync():
                world.console.print(f"relayed waiting order {order['order_id']} ({order['kind']}): "
                                    f"{order['state']}")
            yield phone, cards
    finally:
        client.close()


def contact(world: World, name: str) -> None:
    """As the band's phone, relay what the issuer has waiting for it now; or, when another
    process holds the band (out in the field), leave it for the band's next contact."""
    try:
        with companion(world, name):
            pass
    except BandBusy:
        world.console.print("the band is in use by another koala process: what the issuer asks "
                            "of it waits for its next contact (koala companion sync)")


@contextmanager
def reach(world: World, band_name: str, ble: bool, transport: str | None
          ) -> Iterator[tuple[BandLink, Callable[[], list[dict[str, Any]]]]]:
    """How the phone reaches the band, and how it lists the band's cards."""
    if not ble:
        with world.band(band_name) as worn:
            yield LocalBand(worn), worn.card_list
        return
    bond = paired_bond(world, band_name)
    with phone(world, band_name, transport, bond.phone_id, no_new_pairing) as paired:
        yield paired.connect(bond.key)[0], paired.cards


@contextmanager
def phone(world: World, band_name: str, transport: str | None, phone_id: bytes,
          confirm: Callable[[str], bool]) -> Iterator[Phone]:
    """The phone on this machine's Bluetooth stack or on a controller (the band advertising
    elsewhere), or on a virtual radio with the band taken from its image (and saved back)."""
    # slow imports, and Bumble's only with --transport
    from phone.ble.phone import phone_on_os  # noqa: PLC0415

    logging.getLogger("bumble").setLevel(logging.ERROR)  # its refusals reach us as BleError
    try:
        if transport != VIRTUAL:
            if transport is None:
                found, release = phone_on_os(phone_id, confirm)
            else:
                from phone.ble.bumble_backend.radio import phone_on_transport  # noqa: PLC0415

                keys = world.home.link_keys(band_name)[1] if band_name else None  # scan: no band
                found, release = phone_on_transport(transport, phone_id, confirm, keys)
            try:
                yield found
            finally:
                release()
            return
        from phone.ble.bumble_backend.radio import VirtualBle  # noqa: PLC0415

        with world.band(band_name) as worn:
            virtual = VirtualBle(worn, phone_id, confirm,
                                 keystores=world.home.link_keys(band_name),
                                 band_shows=lambda code: world.console.print(
                                     f"the band shows [bold]{code}[/]"))
            try:
                yield virtual
            finally:
                virtual.close()
    except BleError as error:
        hint = (" (or --transport virtual: the band beside the phone on a virtual radio)"
                if transport is None and band_name else "")
        raise click.ClickException(f"{error}{hint}") from None


def no_new_pairing(code: str) -> bool:
    """Commands other than pair use the bond they have: a band that forgot it is refused."""
    return False


def paired_bond(world: World, band_name: str) -> PhoneBond:
    bond = world.home.phone_bond(band_name)
    if bond is None:
        raise click.ClickException(f"this phone is not paired with {band_name}: "
                                   f"koala companion pair --band {band_name}")
    return bond


def pair(world: World, band_name: str, transport: str | None, confirm: Callable[[str], bool]
         ) -> bytes:
    """Pair this phone (the one it already is, if bonded before) with the band and keep the
    bond; the phone's id."""
    old = world.home.phone_bond(band_name)
    phone_id = old.phone_id if old else os.urandom(6)
    with phone(world, band_name, transport, phone_id, confirm) as paired:
        key = paired.connect(None)[1]
    world.home.save_phone_bond(band_name, PhoneBond(phone_id, key))
    return phone_id


def issue_card(world: World, band_name: str, product_name: str, ble: bool = False,
               transport: str | None = None) -> None:
    with world.console.status(f"issuing a {product_name} card over the air…"), \
            companion(world, band_name, ble, transport) as (phone, _):
        order = phone.issue(product_name)
    if order["state"] != "settled":
        raise click.ClickException(f"issuance {order['state']}: {order['last_error']}")
    world.console.print(f"issued {product_name} card {order['app_serial']} on {band_name}")


def topup_card(world: World, band_name: str, card_name: str, amount: int,
               idempotency_key: str | None, ble: bool = False,
               transport: str | None = None) -> None:
    with world.console.status(f"topping up {yuan(amount)} over the air…"), \
            companion(world, band_name, ble, transport) as (phone, cards):
        listed = {c["card"]: c for c in cards()}
        if card_name not in listed:
            raise click.ClickException(f"band {band_name!r} has no {card_name} card")
        result = phone.topup(bytes.fromhex(listed[card_name]["serial"]), amount, idempotency_key)
        balance = next(c["balance_fen"] for c in cards() if c["card"] == card_name)
    if result["state"] != "settled":
        raise click.ClickException(unresolved("top-up", band_name, result["state"]))
    world.console.print(f"topped up {yuan(amount)}: {card_name} balance {yuan(balance)}")


def unresolved(what: str, band_name: str, state: str) -> str:
    if state in ("debited", "in_relay", "pending"):
        return (f"{what} unresolved ({state}): its money is held until the card proves what "
                f"happened; koala companion sync --band {band_name} at the next contact")
    return f"{what} {state}"
