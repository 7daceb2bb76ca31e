"""``koala band``: make bands, register them with the issuer, and put them where readers and
phones find them (vpcd, nfcpy, BLE)."""

from __future__ import annotations

import time
import uuid
from contextlib import ExitStack

import click
from rich.table import Table

from applets.brands import ECASH
from applets.gp.cplc import cplc
from ble.errors import BleError
from commands.clearing import blacklist_cards, database_option, nats_option, unlist_cards
from commands.contact import contact
from commands.factory import create_band
from commands.home import IssuerLink
from commands.world import (
    World,
    Yuan,
    at_option,
    issuer_options,
    json_option,
    lock_state,
    operator_desk,
    pass_world,
)
from common.money import yuan
from issuer.products import PRODUCTS, product
from phone.companion import IssuerClient
from wallet.band import ACCESS, Band
from wallet.errors import VpcdBusy
from wallet.vpcd import CLAIM_S, VpcdBridge, VpcdCard
from wallet.vpcd import DEFAULT_HOST as DEFAULT_VPCD_HOST
from wallet.vpcd import DEFAULT_PORT as DEFAULT_VPCD_PORT


@click.group()
def band() -> None:
    """The bands: make, list, register, fund, report lost or found, wear, serve over BLE,
    attach to PC/SC, emulate over NFC."""


@band.command("create")
@at_option
@click.argument("name")
@click.option("--cards", default="transit,canteen", show_default=True,
              help=f"Cards the factory puts on the band: {', '.join([*PRODUCTS, ECASH, ACCESS])}.")
@click.option("--holder", default="", help="Card holder name written to the cards.")
@click.option("--ecash-balance", type=Yuan(), default="500", show_default=True,
              help="EC balance the bank loads onto an ecash card at issuance, in yuan.")
@pass_world
def band_create(world: World, name: str, cards: str, holder: str, ecash_balance: int) -> None:
    """Make a band with factory-personalised cards (until over-the-air issuance)."""
    path = world.home.band_path(name)
    if path.exists():
        raise click.ClickException(f"band {name!r} exists already ({path})")
    names = [card.strip() for card in cards.split(",") if card.strip()]
    kinds = [*PRODUCTS, ECASH, ACCESS]
    if unknown := [card for card in names if card not in kinds]:
        raise click.BadParameter(f"no card kind {', '.join(map(repr, unknown))}; "
                                 f"the factory makes {', '.join(kinds)}", param_hint="'--cards'")
    if len(set(names)) != len(names):
        raise click.BadParameter(f"{cards!r} names a card twice: a band holds one of each",
                                 param_hint="'--cards'")
    products = [product(card) for card in names if card not in (ECASH, ACCESS)]
    new = create_band(world.home, name, products, holder, world.today(),
                      ecash_balance if ECASH in names else None, ACCESS in names)
    world.console.print(f"created band [bold]{name}[/] (UID {new.uid.hex().upper()}) "
                        f"with {', '.join(names) or 'no cards'}")


@band.command("list")
@json_option
@pass_world
def band_list(world: World, as_json: bool) -> None:
    """The bands in this world and their balances."""
    balances = {name: world.home.load_band(name).balances() for name in world.home.band_names()}
    if as_json:
        world.emit([{"band": name, "cards": cards} for name, cards in balances.items()])
        return
    table = Table("band", "cards", title=f"bands in {world.home.root}")
    for name, cards in balances.items():
        table.add_row(name, ", ".join(f"{k} {yuan(v)}" for k, v in cards.items()))
    world.console.print(table if balances else "no bands yet: koala band create NAME")


@band.command("register")
@at_option
@click.argument("name")
@issuer_options
@pass_world
def band_register(world: World, name: str, issuer_url: str, operator_token: str) -> None:
    """Register the band (and cards already on it) with the issuer and keep its device token;
    then, as its phone, relay what registration asks of the band: its card manager takes the
    issuer's keys, and each card proves the balance the issuer's books open with."""
    band_id = register(world, name, issuer_url, operator_token)
    world.console.print(f"band [bold]{name}[/] is band {band_id} at {issuer_url}")
    contact(world, name)


def register(world: World, name: str, issuer_url: str, operator_token: str) -> int:
    """Register the band and its cards (again: the same band, a new token) and keep the link;
    the band's id at the issuer."""
    worn = world.home.load_band(name)
    with operator_desk(world, issuer_url, operator_token) as desk:
        made = desk.register_band(cplc(worn.uid), worn.uid)
        world.home.save_issuer_link(name, IssuerLink(issuer_url, made["band_id"],
                                                     made["device_token"]))
        for item in worn.summaries():
            if item.name != ACCESS:  # the compound's card is not the issuer's
                desk.register_card(made["band_id"], item.name, item.serial)
    return int(made["band_id"])


@band.command("fund")
@at_option
@click.argument("name")
@click.option("--amount", type=Yuan(), required=True, help="Amount in yuan.")
@issuer_options
@pass_world
def band_fund(world: World, name: str, amount: int, issuer_url: str, operator_token: str) -> None:
    """Pay money into the band's funding account at the issuer (what top-ups draw on)."""
    link = world.home.issuer_link(name)
    with operator_desk(world, issuer_url, operator_token) as desk:
        balance = desk.fund(link.band_id, amount, uuid.uuid4().hex)
    world.console.print(f"funding account of {name}: {yuan(balance)}")


@band.command("funding")
@click.argument("name")
@json_option
@pass_world
def band_funding(world: World, name: str, as_json: bool) -> None:
    """The band's funding account at the issuer, as its phone sees it (its device token)."""
    link = world.home.issuer_link(name)
    client = IssuerClient(link.url, link.device_token, at=world.at)
    try:
        balance = client.funding(link.band_id)
    finally:
        client.close()
    if as_json:
        world.emit({"band": name, "funding_fen": balance})
        return
    world.console.print(f"funding account of {name}: {yuan(balance)}")


@band.command("lost")
@at_option
@click.argument("name")
@click.option("--to", "new_name", required=True, help="The band the balances move to.")
@issuer_options
@nats_option
@database_option
@pass_world
def band_lost(world: World, name: str, new_name: str, issuer_url: str, operator_token: str,
              nats_url: str | None, database: str | None) -> None:
    """Report the band lost: its token can only sync from now on, its cards are locked in the
    books now and on the band at its next contact; once the band proves a card locked, the
    card's balance moves to the new band's funding account, ready for cards issued there.
    Its cards are blacklisted at the clearing centre too (and on the stream with --nats), so
    the band stops at its first gate whether or not its phone ever syncs."""
    lost, new = world.home.issuer_link(name), world.home.issuer_link(new_name)
    with operator_desk(world, issuer_url, operator_token) as desk:
        locks = desk.report_lost(lost.band_id, new.band_id, uuid.uuid4().hex)
    blacklist_cards(world, [order["app_serial"] for order in locks], "lost", nats_url, database)
    for order in locks:
        done = order["state"] == "settled"
        world.console.print(f"order {order['order_id']}, card {order['app_serial']}: locked, "
                            f"{yuan(order['amount'])} "
                            f"{'moved' if done else 'moves once the band proves the lock'} "
                            f"to {new_name}")
    world.console.print(f"{len(locks)} card(s) of {name} locked and blacklisted to the gates; the "
                        f"band's token now only syncs")


@band.command("found")
@at_option
@click.argument("name")
@issuer_options
@nats_option
@database_option
@pass_world
def band_found(world: World, name: str, issuer_url: str, operator_token: str,
               nats_url: str | None, database: str | None) -> None:
    """The lost band is back with its owner: it gets a new device token, and each card whose
    balance stayed on it is unlocked and taken off the clearing centre's blacklist (and the
    stream's with --nats); a card whose balance moved to the new band stays locked and listed.
    A card a gate has already blocked (APPLICATION BLOCK) stays blocked on the band."""
    unlocking = found(world, name, issuer_url, operator_token)
    unlist_cards(world, unlocking, nats_url, database)
    world.console.print(f"band [bold]{name}[/] is back: {len(unlocking)} card(s) to "
                        f"unlock and off the blacklist, a new device token kept")
    contact(world, name)


def found(world: World, name: str, issuer_url: str, operator_token: str) -> list[str]:
    """Tell the issuer the band is found and keep its new device token; the serials of the
    cards it unlocks at the band's next contact."""
    link = world.home.issuer_link(name)
    with operator_desk(world, issuer_url, operator_token) as desk:
        answer = desk.found(link.band_id, uuid.uuid4().hex)
    world.home.save_issuer_link(name, IssuerLink(link.url, link.band_id, answer["device_token"]))
    return [order["app_serial"] for order in answer["orders"]]


@band.command("wrist")
@click.argument("name")
@click.argument("state", type=click.Choice(["on", "off"]))
@pass_world
def band_wrist(world: World, name: str, state: str) -> None:
    """The wrist sensor: taking the band off locks every card but the express one, until
    the companion unlocks it (koala companion unlock)."""
    with world.band(name) as worn:
        worn.wrist(state == "on")
    world.console.print(lock_state(worn))


@band.command("advertise")
@click.argument("name")
@click.option("--transport", metavar="SPEC", required=True,
              help="Bumble transport of the band's Bluetooth controller: usb:0, hci-socket:0, "
                   "tcp-client:HOST:PORT (e.g. python -m bumble.apps.controllers), ...")
@click.option("--yes", is_flag=True, help="Accept pairings without asking (digits printed).")
@pass_world
def band_advertise(world: World, name: str, transport: str, yes: bool) -> None:
    """Serve the band over BLE until interrupted: its info, its cards, the issuer's relay."""
    with world.band(name) as worn:
        try:
            serve_ble(world, name, worn, transport, yes)
        except BleError as error:
            raise click.ClickException(str(error)) from None


def serve_ble(world: World, name: str, worn: Band, transport: str, yes: bool) -> None:
    """Advertise the band on the controller until SIGINT or SIGTERM, asking (unless ``yes``)
    whether the phone shows the band's digits, and saving the band after every change."""
    import asyncio  # noqa: PLC0415
    import signal  # noqa: PLC0415

    from wallet.ble.service import advertise  # noqa: PLC0415 - Bumble is slow to import

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)

        async def confirm(number: int) -> bool:
            world.console.print(f"the band shows [bold]{number:06d}[/] (link)")
            return yes or await loop.run_in_executor(
                None, lambda: click.confirm("does the phone show the same?", default=True))

        def show(code: str) -> None:
            world.console.print(f"the band shows [bold]{code}[/] (app)")

        world.console.print(f"band {name} on BLE via {transport}; Ctrl-C stops it")
        await advertise(worn, transport, confirm, show, stop, lambda: world.home.save_band(worn),
                        world.home.link_keys(name)[0])

    asyncio.run(serve())


@band.command("attach")
@click.argument("names", nargs=-1, required=True)
@click.option("--host", default=DEFAULT_VPCD_HOST, show_default=True, help="Where vpcd listens.")
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_VPCD_PORT, show_default=True,
              envvar="KOALA_VPCD_PORT",
              help="vpcd port of the first slot (or $KOALA_VPCD_PORT); each further band takes "
                   "the next port.")
@pass_world
def band_attach(world: World, names: tuple[str, ...], host: str, port: int) -> None:
    """Put bands into the vsmartcard virtual reader: pcscd then sees them as PC/SC cards.

    Runs until interrupted, reconnecting whenever pcscd restarts; every change
    a terminal makes reaches the band's image before the terminal hears of it.
    A slot that already serves another card (another attach, a test run) is an
    error: vpcd would keep this band waiting unseen until that card left.
    """
    attach(world, names, host, port)


def attach(world: World, names: tuple[str, ...], host: str, port: int) -> None:
    """Bridge each band to its vpcd slot (``port`` onwards) until Ctrl-C; a slot another
    card holds stops them all with VpcdBusy."""
    with ExitStack() as held:
        bridges: list[VpcdBridge] = []
        try:
            for slot, name in enumerate(names):
                worn = held.enter_context(world.band(name))
                bridges.append(VpcdBridge(VpcdCard(worn), host, port + slot).start())
            for bridge in bridges:
                taken = bridge.claim(CLAIM_S + 1.0)
                world.console.print(f"band [bold]{bridge.card.band.name}[/] → vpcd {host}:"
                                    f"{bridge.address[1]}{'' if taken else ' (waiting for pcscd)'}"
                                    f" (Ctrl-C to detach)")
            try:
                while not any(bridge.busy.is_set() for bridge in bridges):
                    time.sleep(0.5)
            except KeyboardInterrupt:
                world.console.print("detaching")
                return
            raise VpcdBusy(next(b for b in bridges if b.busy.is_set()).busy_message())
        finally:
            for bridge in bridges:
                bridge.stop()


@band.command("emulate")
@click.argument("name")
@click.option("--nfc", "nfc_path", required=True, metavar="PATH",
              help="nfcpy device that can listen: usb, usb:054c:06c3, udp:localhost:54321.")
@pass_world
def band_emulate(world: World, name: str, nfc_path: str) -> None:
    """Present a band as an ISO 14443-4 card on an NFC device, for phones and terminals."""
    from wallet.nfc import NfcCard  # noqa: PLC0415 - optional extra

    with world.band(name) as worn:
        card = NfcCard(worn, nfc_path)
        world.console.print(f"band [bold]{name}[/] listening on {nfc_path} as UID "
                            f"{worn.uid.hex().upper()} (Ctrl-C to stop)")
        try:
            card.serve_forever()
        except KeyboardInterrupt:
            card.stop()
    world.console.print(f"{card.taps} taps served")

