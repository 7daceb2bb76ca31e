"""The ``koala`` command: bands, their cards, taps at gates and buses, and a demo day.

Everything it keeps lives under ``$KOALA_HOME`` (default ``~/.koala``), or
the directory given with ``--home``. Every command that records a date takes
``--at`` (default: now); times without an offset are Beijing time, the zone of
the demo network's terminals and issuer, whatever the machine's ``TZ``.
"""

from __future__ import annotations

import json
import os
import shlex
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from applets import bcd
from applets.brands import ECASH
from applets.gp.channel import Level
from applets.gp.cplc import cplc
from applets.gp.domain import ISD_AID
from applets.gp.keys import TEST_KEY, KeySet
from applets.pboc.layouts import JourneyStatus, LogRecord, TransitRecord, TxType
from applets.sw import SW
from applets.validity import Validity
from issuer import ecash, gp, site
from issuer.clearing import LoadRecord, PurchaseRecord
from issuer.client import IssuerUnavailable, OperatorClient
from issuer.emv_pki import DemoPki
from issuer.products import CANTEEN, PRODUCTS, TRANSIT, Product, UnknownProduct, product, product_for_aid
from phone.companion import BandLink, Companion, IssuerClient, LocalBand
from reader import clock, pboc, places
from reader.bus import SimplePurchase, bus_validator
from reader.door import DEADLINE_DOOR_S, Admission, DoorReader
from reader.errors import ReaderError
from reader.flow import Flow, expect, run
from reader.gate import Direction, GateConfig, MetroGate
from reader.load import Load, LoadKeys, LoadTerminal
from reader.metro import MetroError, MetroNetwork
from reader.pos import Pos, Purchase, Receipt
from reader.pos import read_log as pos_log
from reader.psam import Psam
from reader.tap import TapOutcome, tap
from reader.terminal import PurseTerminal, TapResult
from reader.timing import DEADLINE_EMV_S, AirInterface, BitRate
from reader.transport import Transport, in_field
from wallet.band import ACCESS, UID_SIZE, Band
from wallet.ble.errors import BleError
from wallet.ble.secure import SecurityError
from wallet.errors import BandBusy, WalletError
from wallet.home import Home, IssuerLink, PhoneBond
from wallet.vpcd import DEFAULT_HOST as DEFAULT_VPCD_HOST
from wallet.vpcd import DEFAULT_PORT as DEFAULT_VPCD_PORT
from wallet.vpcd import VpcdBridge, VpcdCard

if TYPE_CHECKING:
    from wallet.ble.radio import Phone

T = TypeVar("T")
USER_ERRORS = (WalletError, IssuerUnavailable, ReaderError, MetroError, UnknownProduct)
CARD_VALIDITY_YEARS = 10
ECASH_LIMIT = 100_000  # the EC balance limit (9F77), fen: PBOC caps e-cash at ¥1,000
#: Cards record their terminals' wall time, which carries no zone: the column says which.
WHEN = f"when ({clock.label()})"


def money(fen: int) -> str:
    return f"¥{fen / 100:,.2f}"


class Yuan(click.ParamType[int, Any]):
    """An amount in yuan with at most two decimals, returned in fen."""

    name = "yuan"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip().lstrip("¥")
        try:
            amount = Decimal(text)
        except InvalidOperation:
            self.fail(f"{value!r} is not an amount in yuan (e.g. 50 or 12.50)", param, ctx)
        if not amount.is_finite() or amount <= 0 or amount != amount.quantize(Decimal("0.01")):
            self.fail(f"{value!r} must be positive with at most two decimals", param, ctx)
        return int(amount * 100)


class KoalaGroup(click.Group):
    """Turns the errors a user can act on into one-line messages, never tracebacks."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except USER_ERRORS as error:
            raise click.ClickException(str(error)) from error


@dataclass
class World:
    home: Home
    console: Console
    json: bool = False
    at: datetime | None = None  # the command's --at: the world's clock reads it, and so does the issuer
    air: AirInterface = field(default_factory=lambda: AirInterface(uid_length=UID_SIZE))
    outcomes: list[tuple[str, TapOutcome[Any]]] = field(default_factory=list)
    _network: MetroNetwork | None = None

    @property
    def clock(self) -> clock.Clock:
        return clock.system_clock if self.at is None else clock.fixed(self.at)

    def today(self) -> datetime:
        """The command's moment as the network's wall time (what cards and terminals record)."""
        return clock.local(self.clock())

    @property
    def network(self) -> MetroNetwork:
        if self._network is None:
            self._network = MetroNetwork.load()
        return self._network

    @contextmanager
    def link(self, source: Source) -> Iterator[Transport]:
        """The card to tap: a band in process, or whatever card a reader finds."""
        if source.reader is not None:
            from reader.pcsc import PcscReader  # noqa: PLC0415 - optional extra

            card = PcscReader(source.reader).wait_for_card(source.wait)
            try:
                yield card
            finally:
                card.disconnect()
        elif source.nfc is not None:
            from reader.nfc import NfcReader  # noqa: PLC0415 - optional extra

            nfc_reader = NfcReader(source.nfc)
            try:
                yield nfc_reader.wait_for_card(source.wait)
            finally:
                nfc_reader.release()
                nfc_reader.close()
        else:
            with self.band(source.band_name()) as worn, in_field(worn) as held:
                yield held

    @contextmanager
    def band(self, name: str) -> Iterator[Band]:
        """A band for this process alone, saved after every command that changes it."""
        with self.home.changing(name) as band:
            yield band

    def emit(self, document: Any) -> None:
        click.echo(json.dumps(document, indent=2, ensure_ascii=False))


pass_world = click.make_pass_decorator(World)


@dataclass(frozen=True)
class Source:
    """Where the card of a tap comes from: ``--band``, ``--reader`` or ``--nfc``."""

    band: str | None
    reader: str | None
    nfc: str | None
    wait: float

    def __post_init__(self) -> None:
        given = [self.band, self.reader, self.nfc]
        if sum(x is not None for x in given) != 1:
            raise click.UsageError("give exactly one of --band, --reader and --nfc")

    def band_name(self) -> str:
        if self.band is None:
            raise click.UsageError("this needs --band")
        return self.band


def _set_at(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """``--at``: the moment of this command, for the world's clock and the issuer's."""
    world = ctx.find_object(World)
    if world is None:  # --help: nothing runs
        return
    try:
        world.at = None if value is None else clock.parse(value)
    except clock.BadMoment as error:
        raise click.BadParameter(str(error), ctx, param) from None


def _set_rate(ctx: click.Context, param: click.Parameter, value: str) -> None:
    world = ctx.find_object(World)
    if world is not None:
        world.air = AirInterface(bit_rate=BitRate(int(value)), uid_length=UID_SIZE)


at_option = click.option(
    "--at", metavar="DATETIME", callback=_set_at, expose_value=False,
    help=f"When this happens (ISO 8601, e.g. 2026-11-23T08:30; without an offset: "
         f"{clock.label()}). Default: now.")


def tap_options(function: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed([
        click.option("--band", "band_name", help="The band to tap (in process)."),
        click.option("--reader", help="Tap through this PC/SC reader instead (index or name)."),
        click.option("--nfc", "nfc_path", metavar="PATH",
                     help="Tap through this nfcpy device instead (usb, udp:host:port)."),
        click.option("--wait", type=float, default=10.0, show_default=True,
                     help="Seconds to wait for a card on a reader."),
        click.option("--trace", is_flag=True, help="Print every APDU with its timing."),
        at_option,
        click.option("--rate", type=click.Choice([str(r.value) for r in BitRate]), default="106",
                     show_default=True, callback=_set_rate, expose_value=False,
                     help="ISO 14443 bit rate in kbit/s for the timing model."),
    ]):
        function = option(function)
    return function


card_option = click.option("--card", "card_name", default="transit", show_default=True,
                           type=click.Choice(sorted(PRODUCTS)), help="Which card.")
money_card_option = click.option("--card", "card_name", default="transit", show_default=True,
                                 type=click.Choice(sorted([*PRODUCTS, ECASH])),
                                 help="Which card (ecash: the bank card's e-cash balance).")


def json_option(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")(function)


def issuer_options(function: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed([
        click.option("--issuer", "issuer_url", envvar="KOALA_ISSUER", default="http://127.0.0.1:8700",
                     show_default=True, help="The issuer's URL (or $KOALA_ISSUER)."),
        click.option("--operator-token", envvar="KOALA_OPERATOR_TOKEN", required=True,
                     help="The operator's bearer token (or $KOALA_OPERATOR_TOKEN)."),
    ]):
        function = option(function)
    return function


@contextmanager
def operator_desk(world: World, url: str, token: str) -> Iterator[OperatorClient]:
    client = OperatorClient(url, token, at=world.at)
    try:
        yield client
    finally:
        client.close()


@contextmanager
def companion(world: World, band_name: str, ble: bool = False, transport: str | None = None
              ) -> Iterator[tuple[Companion, Callable[[], list[dict[str, Any]]]]]:
    """The band's phone at contact, and how it lists the band's cards: first it relays
    whatever the issuer has waiting. In process, or over BLE (``ble``: a virtual radio with the
    band in this process; ``transport``: a controller, the band advertising elsewhere)."""
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


@click.group(cls=KoalaGroup)
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="World directory (default $KOALA_HOME or ~/.koala).")
@click.version_option(package_name="koala-band")
@click.pass_context
def main(ctx: click.Context, home: Path | None) -> None:
    """Koala band: a simulated NFC transit and e-cash wristband, its readers and issuer."""
    if ctx.obj is None:  # the demo brings its own world
        ctx.obj = World(Home(home), Console(highlight=False))


# -- bands -----------------------------------------------------------------------------------


@main.group()
def band() -> None:
    """Create and list bands."""


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
    products = [product(card) for card in names if card not in (ECASH, ACCESS)]
    new = create_band(world.home, name, products, holder, world.today(),
                      ecash_balance if ECASH in names else None, ACCESS in names)
    world.console.print(f"created band [bold]{name}[/] (UID {new.uid.hex().upper()}) "
                        f"with {', '.join(names) or 'no cards'}")


def create_band(home: Home, name: str, products: list[Product], holder: str,
                today: datetime, ecash_balance: int | None = None, access: bool = False) -> Band:
    new = Band.new(name)
    start, expiry = Validity.for_years(today.date(), CARD_VALIDITY_YEARS).bcd()
    for item in products:
        new.add_purse(item.personalisation(item.factory_serial(new.uid), start, expiry, holder),
                      item.aid)
    if ecash_balance is not None:
        profile = ecash.profile_for(ecash.pan_for(ecash.account_for(new.uid)), holder or "KOALA",
                                   today.date())
        limit = max(ecash_balance, ECASH_LIMIT)
        new.add_ecash(ecash.personalisation(profile, DemoPki.load(), balance=ecash_balance,
                                            balance_limit=limit))
    if access:
        new.add_access_card(site.resident_card(int.from_bytes(new.uid), today.date()))
    home.save_band(new)
    return new


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
        table.add_row(name, ", ".join(f"{k} {money(v)}" for k, v in cards.items()))
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
    worn = world.home.load_band(name)
    with operator_desk(world, issuer_url, operator_token) as desk:
        made = desk.register_band(cplc(worn.uid), worn.uid)  # again: the same band, a new token
        world.home.save_issuer_link(name, IssuerLink(issuer_url, made["band_id"],
                                                     made["device_token"]))
        for item in worn.summaries():
            if item.name != ACCESS:  # the compound's card is not the issuer's
                desk.register_card(made["band_id"], item.name, item.serial)
    world.console.print(f"band [bold]{name}[/] is band {made['band_id']} at {issuer_url}")
    contact(world, name)


def contact(world: World, name: str) -> None:
    """As the band's phone, relay what the issuer has waiting for it now; or, when another
    process holds the band (out in the field), leave it for the band's next contact."""
    try:
        with companion(world, name):
            pass
    except BandBusy:
        world.console.print("the band is in use by another koala process: what the issuer asks "
                            "of it waits for its next contact (koala companion sync)")


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
    world.console.print(f"funding account of {name}: {money(balance)}")


@band.command("lost")
@at_option
@click.argument("name")
@click.option("--to", "new_name", required=True, help="The band the balances move to.")
@issuer_options
@pass_world
def band_lost(world: World, name: str, new_name: str, issuer_url: str, operator_token: str) -> None:
    """Report the band lost: its token can only sync from now on, its cards are locked in the
    books now and on the band at its next contact; once the band proves a card locked, the
    card's balance moves to the new band's funding account, ready for cards issued there."""
    lost, new = world.home.issuer_link(name), world.home.issuer_link(new_name)
    with operator_desk(world, issuer_url, operator_token) as desk:
        locks = desk.report_lost(lost.band_id, new.band_id, uuid.uuid4().hex)
    for order in locks:
        done = order["state"] == "settled"
        world.console.print(f"order {order['order_id']}, card {order['app_serial']}: locked, "
                            f"{money(order['amount'])} "
                            f"{'moved' if done else 'moves once the band proves the lock'} "
                            f"to {new_name}")
    world.console.print(f"{len(locks)} card(s) of {name} locked; the band's token now only syncs")


@band.command("found")
@at_option
@click.argument("name")
@issuer_options
@pass_world
def band_found(world: World, name: str, issuer_url: str, operator_token: str) -> None:
    """The lost band is back with its owner: it gets a new device token, and each card whose
    balance stayed on it is unlocked (a card whose balance moved to the new band stays locked)."""
    link = world.home.issuer_link(name)
    with operator_desk(world, issuer_url, operator_token) as desk:
        answer = desk.found(link.band_id, uuid.uuid4().hex)
    world.home.save_issuer_link(name, IssuerLink(link.url, link.band_id, answer["device_token"]))
    world.console.print(f"band [bold]{name}[/] is back: {len(answer['orders'])} card(s) to "
                        f"unlock, a new device token kept")
    contact(world, name)


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


def lock_state(worn: Band) -> str:
    express = worn.express()
    spared = product_for_aid(express).name if express else "no card"
    where = "on the wrist" if worn.on_wrist else "off the wrist"
    if worn.locked:
        return f"{worn.name} is {where} and locked: only {spared} answers readers (express)"
    return f"{worn.name} is {where} and unlocked: every card answers readers"


@band.command("advertise")
@click.argument("name")
@click.option("--transport", metavar="SPEC", required=True,
              help="Bumble transport of the band's Bluetooth controller: usb:0, hci-socket:0, "
                   "tcp-client:HOST:PORT (e.g. python -m bumble.apps.controllers), ...")
@click.option("--yes", is_flag=True, help="Accept pairings without asking (digits printed).")
@pass_world
def band_advertise(world: World, name: str, transport: str, yes: bool) -> None:
    """Serve the band over BLE until interrupted: its info, its cards, the issuer's relay."""
    import asyncio  # noqa: PLC0415
    import signal  # noqa: PLC0415

    from wallet.ble.radio import advertise  # noqa: PLC0415 - Bumble is slow to import

    async def serve(worn: Band) -> None:
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

    with world.band(name) as worn:
        try:
            asyncio.run(serve(worn))
        except BleError as error:
            raise click.ClickException(str(error)) from None


@band.command("attach")
@click.argument("names", nargs=-1, required=True)
@click.option("--host", default=DEFAULT_VPCD_HOST, show_default=True, help="Where vpcd listens.")
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_VPCD_PORT, show_default=True,
              help="vpcd port of the first slot; each further band takes the next port.")
@pass_world
def band_attach(world: World, names: tuple[str, ...], host: str, port: int) -> None:
    """Put bands into the vsmartcard virtual reader: pcscd then sees them as PC/SC cards.

    Runs until interrupted, reconnecting whenever pcscd restarts; every change
    a terminal makes reaches the band's image before the terminal hears of it.
    """
    with ExitStack() as held:
        bridges = []
        for slot, name in enumerate(names):
            worn = held.enter_context(world.band(name))
            bridges.append(VpcdBridge(VpcdCard(worn), host, port + slot).start())
        for bridge in bridges:
            world.console.print(f"band [bold]{bridge.card.band.name}[/] → vpcd {host}:"
                                f"{bridge.address[1]} (Ctrl-C to detach)")
        try:
            while True:
                time.sleep(0.5)
        except KeyboardInterrupt:
            world.console.print("detaching")
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


# -- GlobalPlatform ------------------------------------------------------------------------


def gp_options(function: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed([
        click.option("--band", "band_name", help="The band (in process)."),
        click.option("--reader", help="Through this PC/SC reader instead (index or name)."),
        click.option("--nfc", "nfc_path", metavar="PATH", help="Through this nfcpy device instead."),
        click.option("--wait", type=float, default=10.0, show_default=True,
                     help="Seconds to wait for a card on a reader."),
        click.option("--sd", "domain", default=ISD_AID.hex().upper(), show_default=True,
                     help="AID of the security domain to open a channel with."),
        click.option("--key", default=TEST_KEY.hex().upper(), show_default="GP test key 404142…4F",
                     help="ENC, MAC and DEK key (hex) unless --enc/--mac/--dek are given."),
        click.option("--enc", help="ENC key (hex)."),
        click.option("--mac", help="MAC key (hex)."),
        click.option("--dek", help="DEK key (hex)."),
        click.option("--kvn", type=click.IntRange(0, 255), default=0, show_default=True,
                     help="Key version number (0: the domain's first key set)."),
        click.option("--scp", type=click.Choice(["2", "3"]), default="3", show_default=True,
                     help="Secure channel protocol of the domain's keys."),
        click.option("--diversify", type=click.Choice(["none", *gp.SCHEMES]), default="none",
                     show_default=True,
                     help="The keys are masters; derive the band's own from its diversification data."),
    ]):
        function = option(function)
    return function


@dataclass(frozen=True)
class GpTarget:
    source: Source
    domain: bytes
    keys: KeySet
    diversify: gp.Diversifier | None

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> GpTarget:
        def key(name: str) -> bytes:
            return _hex(options[name] or options["key"], f"--{name}")

        try:
            keys = KeySet(options["kvn"], int(options["scp"]), key("enc"), key("mac"), key("dek"))
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--key") from None
        source = Source(options["band_name"], options["reader"], options["nfc_path"],
                        options["wait"])
        scheme = options["diversify"]
        derive = gp.diversified(keys, scheme) if scheme != "none" else None
        return cls(source, _hex(options["domain"], "--sd"), keys, derive)


def _hex(text: str, hint: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not hexadecimal", param_hint=hint) from None


def run_gp(world: World, target: GpTarget,
           body: Callable[[gp.HostChannel], Flow[T]]) -> T:
    """Open a secure channel to the target domain and run ``body`` in it."""

    def flow() -> Flow[T]:
        expect((yield gp.select(target.domain)), "SELECT domain")
        level = GP_LEVEL if target.keys.scp == 3 else GP_LEVEL & ~Level.R_MAC
        channel = yield from gp.open_channel(target.keys, level, os.urandom, target.keys.version,
                                             target.diversify)
        return (yield from body(channel))

    with world.link(target.source) as link:
        return run(flow(), link)


GP_LEVEL = Level.C_MAC | Level.C_DECRYPTION | Level.R_MAC


@main.group("gp")
def gp_group() -> None:
    """Manage the band's cards with GlobalPlatform, as a TSM does (secure channel)."""


@gp_group.command("list")
@gp_options
@json_option
@pass_world
def gp_list(world: World, /, as_json: bool, **options: Any) -> None:
    """The domains, applications and load files the domain may see."""
    target = GpTarget.from_options(options)

    def listing(channel: gp.HostChannel) -> Flow[list[gp.Registered]]:
        rows: list[gp.Registered] = []
        for scope in (0x80, 0x40):
            response = yield channel.wrap(gp.get_status(scope))
            answer = channel.unwrap(response)
            if answer.sw == SW.OK:
                rows += gp.parse_status(answer.data)
        return rows

    rows = run_gp(world, target, listing)
    if as_json:
        world.emit([{"aid": r.aid.hex().upper(), "lifecycle": r.lifecycle,
                     "privileges": r.privileges.hex().upper(), "domain": r.domain.hex().upper()}
                    for r in rows])
        return
    table = Table("AID", "life cycle", "privileges", "domain", title="GlobalPlatform registry")
    for r in rows:
        table.add_row(r.aid.hex().upper(), lifecycle_name(r.lifecycle), r.privileges.hex().upper(),
                      r.domain.hex().upper() or "(card manager)")
    world.console.print(table)


def lifecycle_name(state: int) -> str:
    names = {0x03: "INSTALLED", 0x07: "SELECTABLE", 0x0F: "PERSONALIZED", 0x01: "OP_READY",
             0x7F: "CARD_LOCKED", 0xFF: "TERMINATED"}
    if state != 0xFF and state & 0x80:
        return f"LOCKED ({names.get(state & 0x7F, f'{state & 0x7F:02X}')})"
    return names.get(state, f"{state:02X}")


@gp_group.command("install")
@gp_options
@click.option("--package", "load_file", required=True, help="Load file AID (hex).")
@click.option("--module", required=True, help="Module AID (hex).")
@click.option("--aid", "instance", required=True, help="New instance AID (hex).")
@click.option("--privileges", default="00", show_default=True, help="Privileges (hex, 1-3 bytes).")
@pass_world
def gp_install(world: World, /, load_file: str, module: str, instance: str, privileges: str,
               **options: Any) -> None:
    """INSTALL [for install and make selectable] from the band's load files."""
    target = GpTarget.from_options(options)
    command = gp.install(_hex(load_file, "--package"), _hex(module, "--module"),
                         _hex(instance, "--aid"), _hex(privileges, "--privileges"))
    run_gp(world, target, lambda channel: channel.send(command, "INSTALL"))
    world.console.print(f"installed {instance.upper()}")


@gp_group.command("delete")
@gp_options
@click.option("--aid", "instance", required=True, help="Instance AID (hex).")
@click.option("--related", is_flag=True, help="Also delete a domain's applications.")
@pass_world
def gp_delete(world: World, /, instance: str, related: bool, **options: Any) -> None:
    """DELETE an instance and all it kept."""
    target = GpTarget.from_options(options)
    command = gp.delete(_hex(instance, "--aid"), related)
    run_gp(world, target, lambda channel: channel.send(command, "DELETE"))
    world.console.print(f"deleted {instance.upper()}")


@gp_group.command("lock")
@gp_options
@click.option("--aid", "instance", required=True, help="Instance AID (hex).")
@click.option("--unlock", is_flag=True, help="Unlock instead.")
@pass_world
def gp_lock(world: World, /, instance: str, unlock: bool, **options: Any) -> None:
    """Lock (or unlock) an application: a lost band's cards stop working at gates."""
    target = GpTarget.from_options(options)
    command = gp.set_status(_hex(instance, "--aid"), lock=not unlock)
    run_gp(world, target, lambda channel: channel.send(command, "SET STATUS"))
    world.console.print(f"{'unlocked' if unlock else 'locked'} {instance.upper()}")


# -- the issuer and the companion ----------------------------------------------------------


@main.group("issuer")
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
    import uvicorn  # noqa: PLC0415 - only the server needs it

    from issuer.server import build  # noqa: PLC0415

    build(world.home.root, operator_token, database)  # migrate and load keys once, up front
    os.environ.update(KOALA_HOME=str(world.home.root), KOALA_OPERATOR_TOKEN=operator_token,
                      KOALA_ISSUER_DB=database or "", KOALA_ISSUER_CLIENT_TIME=str(int(client_time)))
    world.console.print(f"issuer on http://{host}:{port} with {workers} worker(s) "
                        f"(data in {world.home.root / 'issuer'})")
    uvicorn.run("issuer.server:from_environment", factory=True, host=host, port=port,
                workers=workers, log_level="warning")


@issuer_group.command("clear")
@at_option
@issuer_options
@pass_world
def issuer_clear(world: World, issuer_url: str, operator_token: str) -> None:
    """Send the terminals' purchase and cash-load records to the issuer, which books those whose
    TAC (or, for the bank card's offline purchases, TC) holds."""
    kept = list(world.home.terminal_records())
    records = [r for r in kept if r.get("record", "debit") == "debit"]
    loads = [r for r in kept if r.get("record") == "load"]
    purchases = world.home.pos_records()
    with operator_desk(world, issuer_url, operator_token) as desk:
        result = desk.clear([{f.name: record[f.name] for f in fields(PurchaseRecord)}
                             for record in records])
        load_result = desk.clear_loads([{f.name: load[f.name] for f in fields(LoadRecord)}
                                        for load in loads]) if loads else None
        ecash_result = desk.clear_ecash(purchases) if purchases else None
    world.console.print(f"cleared {len(records)} records: {result['booked']} booked, "
                        f"{result['duplicates']} already booked, {result['free']} free (entries), "
                        f"{result['opening']} in opening balances, {len(result['refused'])} refused")
    if load_result is not None:
        world.console.print(f"cleared {len(loads)} cash loads: {load_result['booked']} booked, "
                            f"{load_result['duplicates']} already booked, "
                            f"{load_result['opening']} in opening balances, "
                            f"{len(load_result['refused'])} refused")
        result["refused"] += load_result["refused"]
    if ecash_result is not None:
        world.console.print(f"cleared {len(purchases)} e-cash purchases: "
                            f"{ecash_result['booked']} booked, {ecash_result['duplicates']} "
                            f"already booked, {len(ecash_result['refused'])} refused")
        result["refused"] += ecash_result["refused"]
    for reason in result["refused"]:
        world.console.print(f"  refused: {reason}")


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
                        f"{money(order['amount'])} — {order['last_error']}")


@main.group("companion")
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


@contextmanager
def reach(world: World, band_name: str, ble: bool, transport: str | None
          ) -> Iterator[tuple[BandLink, Callable[[], list[dict[str, Any]]]]]:
    """How the phone reaches the band, and how it lists the band's cards."""
    if not ble and transport is None:
        with world.band(band_name) as worn:
            yield LocalBand(worn), worn.card_list
        return
    bond = paired_bond(world, band_name)
    with phone(world, band_name, transport, bond.phone_id, no_new_pairing) as paired:
        yield paired.connect(bond.key)[0], paired.cards


transport_option = click.option(
    "--transport", metavar="SPEC",
    help="Bumble transport of this side's Bluetooth controller (usb:0, hci-socket:0, "
         "tcp-client:HOST:PORT, ...); default: a virtual radio with the band in this process.")


@contextmanager
def phone(world: World, band_name: str, transport: str | None, phone_id: bytes,
          confirm: Callable[[str], bool]) -> Iterator[Phone]:
    """The phone on a controller (the band advertising elsewhere), or on a virtual radio with
    the band taken from its image (and saved back)."""
    from wallet.ble.radio import VirtualBle, phone_on_transport  # noqa: PLC0415 - slow import

    try:
        if transport is not None:
            keys = world.home.link_keys(band_name)[1] if band_name else None  # scan: no band
            found, release = phone_on_transport(transport, phone_id, confirm, keys)
            try:
                yield found
            finally:
                release()
            return
        with world.band(band_name) as worn:
            virtual = VirtualBle(worn, phone_id, confirm,
                                 keystores=world.home.link_keys(band_name))
            try:
                yield virtual
            finally:
                virtual.close()
    except (BleError, SecurityError) as error:
        raise click.ClickException(str(error)) from None


def no_new_pairing(code: str) -> bool:
    """Commands other than pair use the bond they have: a band that forgot it is refused."""
    return False


def paired_bond(world: World, band_name: str) -> PhoneBond:
    bond = world.home.phone_bond(band_name)
    if bond is None:
        raise click.ClickException(f"this phone is not paired with {band_name}: "
                                   f"koala companion pair --band {band_name}")
    return bond


@companion_group.command("scan")
@click.option("--transport", metavar="SPEC", required=True,
              help="Bumble transport of the phone's Bluetooth controller (usb:0, ...).")
@click.option("--timeout", type=click.FloatRange(0.1, 60), default=5.0, show_default=True)
@pass_world
def companion_scan(world: World, transport: str, timeout: float) -> None:
    """Look for a Koala band advertising nearby."""
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
    def confirm(code: str) -> bool:
        world.console.print(f"the phone shows [bold]{code}[/]")
        return yes or click.confirm("does the band show the same six digits?", default=True)

    old = world.home.phone_bond(band_name)
    phone_id = old.phone_id if old else os.urandom(6)
    with phone(world, band_name, transport, phone_id, confirm) as paired:
        key = paired.connect(None)[1]
    world.home.save_phone_bond(band_name, PhoneBond(phone_id, key))
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
        table.add_row(c["card"], "—" if c["balance"] is None else money(c["balance"]),
                      "yes" if c["answers"] else "locked")
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
@click.option("--band", "band_name", required=True, help="The band (in process).")
@pass_world
def companion_unlock(world: World, band_name: str) -> None:
    """Unlock the band's cards, as the phone does once its user has confirmed it."""
    with world.band(band_name) as worn:
        worn.unlock()
    world.console.print(lock_state(worn))


# -- PC/SC -----------------------------------------------------------------------------------


@main.group()
def pcsc() -> None:
    """PC/SC readers seen through pcscd."""


@pcsc.command("readers")
@json_option
@pass_world
def pcsc_readers(world: World, as_json: bool) -> None:
    """List PC/SC readers, whether a card is present, and its ATR."""
    from reader.pcsc import PcscReader, reader_names  # noqa: PLC0415 - optional extra

    rows: list[dict[str, Any]] = []
    for index, name in enumerate(reader_names()):
        atr = ""
        if PcscReader(str(index)).card_present():
            card = PcscReader(str(index)).wait_for_card(0)
            atr = card.atr.hex().upper()
            card.disconnect()
        rows.append({"index": index, "reader": name, "atr": atr})
    if as_json:
        world.emit(rows)
        return
    table = Table("#", "reader", "card ATR", title="PC/SC readers")
    for row in rows:
        table.add_row(str(row["index"]), str(row["reader"]), str(row["atr"] or "no card"))
    world.console.print(table)


# -- cards -----------------------------------------------------------------------------------


@main.group()
def card() -> None:
    """Cards on a band: list, top up, history."""


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
        world.emit([{"card": c.name, "aid": c.aid.hex().upper(), "number": c.number,
                     "balance": c.balance, "expiry": c.valid_until,
                     "active": c.active, "issuer": books.get(c.serial.hex().upper())}
                    for c in cards])
        return
    table = Table("card", "AID", "number", "balance", "valid until", "answers readers",
                  "issuer's books", title=f"band {band_name}")
    for c in cards:
        book = books.get(c.serial.hex().upper())
        table.add_row(f"{c.name} ({c.label})", c.aid.hex().upper(), c.number,
                      "—" if c.balance is None else money(c.balance), c.valid_until,
                      "yes" if c.active else "locked",
                      f"{money(book['balance'])} {book['status']}" if book else "—")
    world.console.print(table)
    if worn.locked:
        world.console.print(lock_state(worn))


def issuer_books(world: World, band_name: str) -> dict[str, dict[str, Any]]:
    """The issuer's view of the band's cards by serial; empty if the band is not registered."""
    try:
        link = world.home.issuer_link(band_name)
    except WalletError:
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


def issue_card(world: World, band_name: str, product_name: str, ble: bool = False,
               transport: str | None = None) -> None:
    with companion(world, band_name, ble, transport) as (phone, _):
        order = phone.issue(product_name)
    if order["state"] != "settled":
        raise click.ClickException(f"issuance {order['state']}: {order['last_error']}")
    world.console.print(f"issued {product_name} card {order['app_serial']} on {band_name}")


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


def topup_card(world: World, band_name: str, card_name: str, amount: int,
               idempotency_key: str | None, ble: bool = False,
               transport: str | None = None) -> None:
    with companion(world, band_name, ble, transport) as (phone, cards):
        listed = {c["card"]: c for c in cards()}
        if card_name not in listed:
            raise click.ClickException(f"band {band_name!r} has no {card_name} card")
        result = phone.topup(bytes.fromhex(listed[card_name]["serial"]), amount, idempotency_key)
        balance = next(c["balance"] for c in cards() if c["card"] == card_name)
    if result["state"] != "settled":
        raise click.ClickException(unresolved("top-up", band_name, result["state"]))
    world.console.print(f"topped up {money(amount)}: {card_name} balance {money(balance)}")


def unresolved(what: str, band_name: str, state: str) -> str:
    if state in ("debited", "in_relay", "pending"):
        return (f"{what} unresolved ({state}): its money is held until the card proves what "
                f"happened; koala companion sync --band {band_name} at the next contact")
    return f"{what} {state}"


@card.command("cancel")
@at_option
@click.option("--band", "band_name", required=True, help="The band (in process).")
@card_option
@issuer_options
@pass_world
def card_cancel(world: World, band_name: str, card_name: str, issuer_url: str,
                operator_token: str) -> None:
    """Cancel a card: it proves its balance, is deleted from the band, and the balance is
    refunded to the band's funding account."""
    link = world.home.issuer_link(band_name)
    serial = world.home.load_band(band_name).card(card_name).issuer_file.app_serial
    with operator_desk(world, issuer_url, operator_token) as desk:
        order = desk.cancel(link.band_id, serial, uuid.uuid4().hex)
    with companion(world, band_name) as (phone, _):
        final = phone.issuer.order(link.band_id, int(order["order_id"]))
    if final["state"] != "settled":
        raise click.ClickException(f"cancellation {final['state']}: {final['last_error']}")
    world.console.print(f"cancelled {card_name} card {final['app_serial']}: "
                        f"{money(final['amount'])} refunded")


def describe_load(load: Load) -> tuple[str, dict[str, Any]]:
    text = f"loaded {money(load.amount)}, balance {money(load.balance_after)}"
    if load.recovered:
        text += " — completed the interrupted top-up, not loaded again"
    return text, {"amount": load.amount, "balance": load.balance_after, "tac": load.tac.hex(),
                  "recovered": load.recovered}


@card.command("history")
@click.option("--band", "band_name", required=True, help="The band.")
@click.option("--card", "card_name", default="transit", show_default=True,
              type=click.Choice(sorted([*PRODUCTS, ECASH, ACCESS])), help="Which card.")
@json_option
@pass_world
def card_history(world: World, band_name: str, card_name: str, as_json: bool) -> None:
    """The card's journeys, purchases and loads (or doors opened), read from the card as any
    reader app would (the doors from the band's own memory: no reader reads them)."""
    if card_name == ECASH:
        ecash_history(world, band_name, as_json)
        return
    if card_name == ACCESS:
        door_history(world, band_name, as_json)
        return
    item = product(card_name)
    with world.band(band_name) as worn, in_field(worn) as link:
        issuer = run(pboc.select_purse(item.aid), link)
        balance = run(pboc.read_balance(), link)
        log = run(pboc.read_log(), link)
        journey = run(pboc.read_transit_record(0x01), link) if item.has_transit_record else None
    if as_json:
        world.emit({"serial": issuer.app_serial.hex().upper(), "balance": balance,
                    "log": [history_row(r, world.network) for r in log]})
        return
    table = Table(WHEN, "what", "where", "amount", "counter",
                  title=f"{item.label} {issuer.app_serial.hex().upper()} · balance {money(balance)}")
    for record in log:
        row = history_row(record, world.network)
        sign = "+" if row["type"] == "load" else "-" if record.amount else ""
        table.add_row(row["when"], row["type"], row["where"],
                      f"{sign}{money(record.amount)}", str(record.counter))
    world.console.print(table)
    if journey is not None:
        world.console.print(journey_state(journey, world.network))


def ecash_history(world: World, band_name: str, as_json: bool) -> None:
    with world.band(band_name) as worn, in_field(worn) as link:
        balance, lines = run(pos_log(), link)
    if as_json:
        world.emit({"balance": balance, "log": [
            {"when": f"{line.when:%Y-%m-%d %H:%M:%S}", "merchant": line.merchant,
             "amount": line.amount, "atc": line.atc} for line in lines]})
        return
    table = Table(WHEN, "where", "amount", "ATC",
                  title=f"UnionPay e-cash · balance {money(balance)}")
    for line in lines:
        table.add_row(f"{line.when:%Y-%m-%d %H:%M:%S}", line.merchant, f"-{money(line.amount)}",
                      str(line.atc))
    world.console.print(table)


def door_history(world: World, band_name: str, as_json: bool) -> None:
    worn = world.home.load_band(band_name)
    names = {number: name for name, number in site.DOORS.items()}
    entries = [(bcd.to_datetime(e.date, e.time), names.get(e.door_id, f"door {e.door_id:08X}"))
               for e in worn.access_log()]
    if as_json:
        world.emit([{"when": f"{when:%Y-%m-%d %H:%M:%S}", "door": door} for when, door in entries])
        return
    table = Table(WHEN, "door", title=f"doors opened by {band_name}")
    for when, door in entries:
        table.add_row(f"{when:%Y-%m-%d %H:%M:%S}", door)
    world.console.print(table)


def history_row(record: LogRecord, network: MetroNetwork) -> dict[str, Any]:
    kinds = {TxType.EP_LOAD: "load", TxType.EP_PURCHASE: "purchase",
             TxType.CAPP_PURCHASE: "metro"}
    return {"when": f"{bcd.to_datetime(record.date, record.time):%Y-%m-%d %H:%M:%S}",
            "type": kinds.get(TxType(record.tx_type), f"type {record.tx_type:02X}")
            if record.tx_type in set(TxType) else f"type {record.tx_type:02X}",
            "where": places.describe(record.terminal_id, network),
            "amount": record.amount, "counter": record.counter}


def journey_state(record: TransitRecord, network: MetroNetwork) -> str:
    def name(code: int) -> str:
        try:
            return network.station(code).name
        except MetroError:
            return f"station {code:04X}"

    if record.status == JourneyStatus.ENTERED:
        entered = bcd.to_datetime(record.entry_date, record.entry_time)
        return f"in the metro: entered {name(record.entry_station)} at {entered:%Y-%m-%d %H:%M}"
    if record.status == JourneyStatus.EXITED:
        return (f"last ride: {name(record.entry_station)} → {name(record.exit_station)}, "
                f"{money(record.fare)}")
    return "no metro ride yet"


# -- taps --------------------------------------------------------------------------------------


@main.group("tap")
def tap_group() -> None:
    """Tap a band at a metro gate, on a bus, at a shop's POS or a load machine."""


@tap_group.command("gate")
@tap_options
@click.option("--station", required=True, help="Station name, Chinese name or code.")
@click.option("--direction", type=click.Choice(["in", "out"]), required=True,
              help="Entry or exit gate.")
@click.option("--gate", "gate_number", type=click.IntRange(1, 999), default=1, show_default=True)
@json_option
@pass_world
def tap_gate(world: World, band_name: str | None, reader: str | None, nfc_path: str | None,
             wait: float, trace: bool, station: str, direction: str,
             gate_number: int, as_json: bool) -> None:
    """Tap at a metro gate: entry records the station, exit charges by distance."""
    here = world.network.find(station)
    config = GateConfig(world.network, here, Direction.ENTRY if direction == "in" else Direction.EXIT)
    terminal_id = places.gate_id(here.code, gate_number)
    gate = MetroGate(psam_for(world.home, TRANSIT, terminal_id), world.clock, config)
    run_tap(world, Source(band_name, reader, nfc_path, wait), gate, gate.tap(), trace, as_json)


@tap_group.command("bus")
@tap_options
@click.option("--route", required=True, help="Route number (digits).")
@click.option("--fare", type=Yuan(), default="2", show_default=True, help="Flat fare in yuan.")
@json_option
@pass_world
def tap_bus(world: World, band_name: str | None, reader: str | None, nfc_path: str | None,
            wait: float, trace: bool, route: str, fare: int,
            as_json: bool) -> None:
    """Tap on a bus: a flat fare."""
    try:
        terminal_id = places.bus_id(route)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--route") from None
    validator = bus_validator(psam_for(world.home, TRANSIT, terminal_id), world.clock, route, fare)
    run_tap(world, Source(band_name, reader, nfc_path, wait), validator, validator.tap(), trace,
            as_json)


@tap_group.command("canteen")
@tap_options
@click.option("--amount", type=Yuan(), required=True, help="The meal's price in yuan.")
@click.option("--till", type=click.IntRange(1, 255), default=1, show_default=True)
@json_option
@pass_world
def tap_canteen(world: World, band_name: str | None, reader: str | None, nfc_path: str | None,
                wait: float, trace: bool, amount: int, till: int,
                as_json: bool) -> None:
    """Pay a meal at the canteen's till with the canteen card."""
    sale = SimplePurchase(psam_for(world.home, CANTEEN, places.till_id(till)), world.clock,
                          f"canteen till {till}", amount, CANTEEN.aid)
    run_tap(world, Source(band_name, reader, nfc_path, wait), sale, sale.tap(), trace, as_json)


@tap_group.command("pos")
@tap_options
@click.option("--amount", type=Yuan(), required=True, help="Amount in yuan, e.g. 12.50.")
@click.option("--merchant", default="Koala Mart", show_default=True, help="The shop's name.")
@click.option("--offline", is_flag=True,
              help="A POS with no link to its acquirer: only the card's offline approvals.")
@json_option
@pass_world
def tap_pos(world: World, band_name: str | None, reader: str | None, nfc_path: str | None,
            wait: float, trace: bool, amount: int, merchant: str,
            offline: bool, as_json: bool) -> None:
    """Pay at a QuickPass POS: offline from the e-cash balance (fDDA), else online."""
    pos = Pos(merchant, world.clock, acquirer=None if offline else ecash.authorise)
    with world.link(Source(band_name, reader, nfc_path, wait)) as link:
        outcome = tap(link, pos.purchase(amount), world.air, deadline_s=DEADLINE_EMV_S)
    if outcome.result is not None and outcome.result.offline:  # e-cash: for the issuer's clearing
        world.home.save_pos_record(clearing_record(outcome.result.purchase))
    report(world, outcome, trace, as_json, describe_receipt)


def clearing_record(purchase: Purchase) -> dict[str, Any]:
    """A POS purchase as ``POST /v1/clearing/ecash`` takes it."""
    return {"pan": purchase.pan, "psn": purchase.psn, "amount": purchase.amount,
            "atc": purchase.atc, "cryptogram": purchase.cryptogram.hex().upper(),
            "cid": purchase.cid, "iad": purchase.iad.hex().upper(),
            "data": {f"{tag:X}": value.hex().upper() for tag, value in purchase.data.items()},
            "merchant": purchase.merchant}


def describe_receipt(receipt: Receipt) -> tuple[str, dict[str, Any]]:
    how = "offline (fDDA)" if receipt.offline else "online (issuer approved)"
    text = f"{receipt.merchant}: paid {money(receipt.amount)} with {receipt.label} " \
           f"{receipt.masked_pan}, {how}"
    if receipt.balance is not None:
        text += f", e-cash balance {money(receipt.balance)}"
    purchase = receipt.purchase
    return text, {"merchant": receipt.merchant, "amount": receipt.amount,
                  "pan": receipt.masked_pan, "offline": receipt.offline,
                  "balance": receipt.balance, "atc": purchase.atc,
                  "cryptogram": purchase.cryptogram.hex().upper()}


@tap_group.command("door")
@tap_options
@click.option("--door", "door_name", type=click.Choice(sorted(site.DOORS)), required=True,
              help="Which door of the compound.")
@json_option
@pass_world
def tap_door(world: World, band_name: str | None, reader: str | None, nfc_path: str | None,
             wait: float, trace: bool, door_name: str,
             as_json: bool) -> None:
    """Open a door of the compound with the band's access card (mutual authentication)."""
    door = DoorReader(site.door_id(door_name), site.SITE_MASTER, world.clock, os.urandom)
    with world.link(Source(band_name, reader, nfc_path, wait)) as link:
        outcome = tap(link, door.tap(), world.air, deadline_s=DEADLINE_DOOR_S)

    def describe(admission: Admission) -> tuple[str, dict[str, Any]]:
        until = bcd.decode(admission.permission.valid_until)
        return (f"{door_name} door: open (card {admission.card_id.hex().upper()}, "
                f"allowed until {until})",
                {"door": door_name, "card_id": admission.card_id.hex().upper(),
                 "valid_until": until})

    report(world, outcome, trace, as_json, describe)


@tap_group.command("load")
@tap_options
@card_option
@click.option("--amount", type=Yuan(), required=True, help="Amount in yuan, e.g. 50 or 12.50.")
@json_option
@pass_world
def tap_load(world: World, band_name: str | None, reader: str | None, nfc_path: str | None,
             wait: float, trace: bool, card_name: str, amount: int, as_json: bool) -> None:
    """Top a card up with cash at a station's load machine (MAC1, MAC2, TAC checked)."""
    item = product(card_name)
    keys = {p.issuer_id: LoadKeys(p.master.load, p.master.tac) for p in PRODUCTS.values()}
    terminal = LoadTerminal(places.load_id(), keys, world.clock)
    with world.link(Source(band_name, reader, nfc_path, wait)) as link:
        try:
            outcome = tap(link, terminal.load(amount, item.aid), world.air)
        finally:  # the machine keeps what it loaded, for the issuer's clearing
            world.home.save_terminal(terminal.terminal_id, 0, terminal.records)
    report(world, outcome, trace, as_json, describe_load)


def psam_for(home: Home, item: Product, terminal_id: bytes) -> Psam:
    """The PSAM of a terminal that takes ``item``'s cards, with its saved sequence number."""
    return Psam(terminal_id, {item.issuer_id: item.master.purchase}, home.terminal_seq(terminal_id))


def run_tap(world: World, source: Source, terminal: PurseTerminal, flow: Flow[TapResult],
            trace: bool, as_json: bool) -> TapOutcome[TapResult]:
    with world.link(source) as link:
        try:
            outcome = tap(link, flow, world.air)
        finally:
            world.home.save_terminal(terminal.terminal_id, terminal.psam.seq, terminal.records)
    report(world, outcome, trace, as_json, describe_tap)
    return outcome


def describe_tap(result: TapResult) -> tuple[str, dict[str, Any]]:
    text = f"{result.place}: paid {money(result.fare)}, balance {money(result.balance)}"
    if result.journey:
        text += f" ({result.journey})"
    if result.recovered:
        text += " — completed the interrupted tap, not charged again"
    return text, {"place": result.place, "fare": result.fare, "balance": result.balance,
                  "journey": result.journey, "recovered": result.recovered}


def report(world: World, outcome: TapOutcome[T], trace: bool, as_json: bool,
           describe: Callable[[T], tuple[str, dict[str, Any]]]) -> None:
    """Print a tap for people or as JSON; a refused or incomplete tap exits with 1."""
    timing = outcome.timing
    text, document = describe(outcome.result) if outcome.result is not None else ("", {})
    world.outcomes.append((text or "refused", outcome))
    if as_json:
        world.emit({"accepted": outcome.accepted, "refusal": outcome.refusal,
                    "incomplete": outcome.incomplete, **document,
                    "timing": {"host_ms": timing.host_s * 1e3,
                               "modelled_ms": timing.modelled_s * 1e3,
                               "deadline_ms": timing.deadline_s * 1e3},
                    "trace": [{"command": e.command.hex().upper(),
                               "response": e.response.hex().upper()} for e in outcome.trace]})
    else:
        if trace:
            world.console.print(trace_table(outcome))
        if outcome.result is not None:
            world.console.print(f"[green]✓[/] {text}")
        elif outcome.refusal is not None:
            world.console.print(f"[red]✗ refused:[/] {outcome.refusal}")
        else:
            world.console.print(f"[yellow]! incomplete tap:[/] {outcome.incomplete}")
        world.console.print(timing_line(outcome), style="dim")
    if not outcome.accepted:
        click.get_current_context().exit(1)


def timing_line(outcome: TapOutcome[Any]) -> str:
    t = outcome.timing
    verdict = "within" if t.within_deadline else "OVER"
    return (f"host {t.host_s * 1e3:.2f} ms · modelled {t.modelled_s * 1e3:.1f} ms "
            f"(activation {t.activation_s * 1e3:.1f} + air {t.air_s * 1e3:.1f} "
            f"+ card {t.card_s * 1e3:.1f}) {verdict} the {t.deadline_s * 1e3:.0f} ms deadline")


def trace_table(outcome: TapOutcome[Any]) -> Table:
    table = Table("#", "command", "response", "host µs", "air ms", "card ms", title="APDU trace")
    for i, (exchange, timed) in enumerate(zip(outcome.trace, outcome.timing.exchanges,
                                              strict=False), start=1):
        table.add_row(str(i), exchange.command.hex().upper(), exchange.response.hex().upper(),
                      f"{exchange.host_seconds * 1e6:.0f}", f"{timed.air_s * 1e3:.2f}",
                      f"{timed.card_s * 1e3:.2f}")
    return table


# -- demo -----------------------------------------------------------------------------------


@main.command()
@click.option("--keep", is_flag=True, help="Run in $KOALA_HOME/demo and keep it, instead of a "
                                           "temporary world.")
@pass_world
def demo(world: World, keep: bool) -> None:
    """A whole day: a new band gets its cards and money over the air; out of the front door,
    the metro, breakfast at the canteen, lunch by QuickPass, a bus, home by metro with the
    band in a pocket (express transit) and through the door; the issuer clears and cancels."""
    if keep:
        run_demo(World(Home(world.home.root / "demo"), world.console))
        return
    with tempfile.TemporaryDirectory(prefix="koala-demo-") as root:
        run_demo(World(Home(Path(root)), world.console))


def demo_day(today: date) -> list[tuple[str, ...]]:
    """The commands of the demo, as a user would type them (with the issuer running), each
    that records a date at its own time of ``today``: the day runs on its own clock."""

    def at(hour: int, minute: int) -> str:
        return f"{today:%Y-%m-%d}T{hour:02d}:{minute:02d}"

    return [
        ("band", "create", "demo", "--cards", "ecash,access", "--ecash-balance", "200",
         "--at", at(7, 0)),
        ("band", "register", "demo", "--at", at(7, 1)),
        ("band", "fund", "demo", "--amount", "100", "--at", at(7, 2)),
        ("card", "issue", "--band", "demo", "--product", "transit", "--at", at(7, 3)),
        ("card", "issue", "--band", "demo", "--product", "canteen", "--at", at(7, 4)),
        ("card", "topup", "--band", "demo", "--card", "transit", "--amount", "50",
         "--at", at(7, 5)),
        ("card", "topup", "--band", "demo", "--card", "canteen", "--amount", "30",
         "--at", at(7, 6)),
        ("card", "topup", "--band", "demo", "--card", "ecash", "--amount", "20",
         "--at", at(7, 7)),
        ("card", "list", "--band", "demo"),
        ("tap", "door", "--band", "demo", "--door", "front", "--at", at(7, 48)),
        ("tap", "gate", "--band", "demo", "--station", "Xizhimen", "--direction", "in",
         "--at", at(8, 2)),
        ("tap", "gate", "--band", "demo", "--station", "Guomao", "--direction", "out",
         "--at", at(8, 37), "--trace"),
        ("tap", "canteen", "--band", "demo", "--amount", "6.50", "--at", at(8, 50)),
        ("tap", "pos", "--band", "demo", "--amount", "32", "--merchant", "Noodle Bar",
         "--at", at(12, 20)),
        ("tap", "bus", "--band", "demo", "--route", "1", "--fare", "2", "--at", at(13, 5)),
        ("band", "wrist", "demo", "off"),
        ("tap", "gate", "--band", "demo", "--station", "Guomao", "--direction", "in",
         "--at", at(18, 6)),
        ("tap", "gate", "--band", "demo", "--station", "Bagou", "--direction", "out",
         "--at", at(18, 58)),
        ("band", "wrist", "demo", "on"),
        ("companion", "unlock", "--band", "demo"),
        ("tap", "door", "--band", "demo", "--door", "front", "--at", at(19, 10)),
        ("issuer", "clear", "--at", at(21, 0)),
        ("card", "cancel", "--band", "demo", "--card", "canteen", "--at", at(21, 5)),
        ("card", "list", "--band", "demo"),
        ("card", "history", "--band", "demo"),
    ]


@contextmanager
def local_issuer(home: Home) -> Iterator[str]:
    """The issuer service of ``home`` on a free loopback port, in this process, on the time its
    clients state (the demo's ``--at``); its URL."""
    import socket  # noqa: PLC0415 - only the demo runs a server in process
    import threading  # noqa: PLC0415

    import uvicorn  # noqa: PLC0415

    from issuer.server import build  # noqa: PLC0415

    token = uuid.uuid4().hex
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(build(home.root, token, client_time=True),
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    saved = {name: os.environ.get(name) for name in ("KOALA_ISSUER", "KOALA_OPERATOR_TOKEN")}
    os.environ.update(KOALA_ISSUER=url, KOALA_OPERATOR_TOKEN=token)
    try:
        yield url
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        server.should_exit = True
        thread.join(5)
        sock.close()


def run_demo(world: World) -> None:
    """Run the demo's commands in ``world`` as a user would, then sum up the taps."""
    console = world.console
    console.print(f"[bold]Koala band demo[/] in a fresh world at {world.home.root}\n")
    with local_issuer(world.home) as url:
        console.print(f"[bold cyan]$ koala issuer serve &[/]   [dim]# running at {url}[/]\n",
                      markup=True)
        for args in demo_day(world.today().date()):
            console.print(f"[bold cyan]$ koala {shlex.join(args)}[/]", markup=True)
            main.main(list(args), standalone_mode=False, obj=world)
            console.print()
    table = Table("tap", "host ms", "modelled ms", "deadline ms", "margin ms",
                  title="every tap of the day against its deadline")
    for text, outcome in world.outcomes:
        t = outcome.timing
        table.add_row(text if outcome.accepted else f"refused: {outcome.refusal}",
                      f"{t.host_s * 1e3:.2f}", f"{t.modelled_s * 1e3:.1f}",
                      f"{t.deadline_s * 1e3:.0f}", f"{t.margin_s * 1e3:+.1f}")
    console.print(table)


if __name__ == "__main__":
    main()
