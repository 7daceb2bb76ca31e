"""What every ``koala`` command shares: the world (``$KOALA_HOME``, the command's clock and air
interface), the common options and the display helpers."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import click
from rich.console import Console
from rich.table import Column

from applets.brands import ECASH
from ble.errors import BleError
from commands.home import Home
from common.money import yuan
from issuer.client import IssuerUnavailable, OperatorClient
from issuer.products import PRODUCTS, UnknownProduct, product_for_aid
from reader import clock
from reader.errors import ReaderError
from reader.metro import MetroError, MetroNetwork
from reader.tap import TapOutcome
from reader.timing import AirInterface, BitRate
from reader.transport import Transport, in_field
from wallet import contactless
from wallet.band import UID_SIZE, Band
from wallet.errors import WalletError

USER_ERRORS = (WalletError, BleError, IssuerUnavailable, ReaderError, MetroError, UnknownProduct)




def band_air(bit_rate: BitRate = BitRate.KBPS_106) -> AirInterface:
    """The air interface of a tap on a band at ``bit_rate``: the timing model prices the
    band's own UID and ATS (wallet.contactless), not a typical card's."""
    return AirInterface(bit_rate=bit_rate, uid_length=UID_SIZE,
                        ats_length=len(contactless.Ats().encode()))


#: The largest amount a card's 4-byte amount fields (PBOC purse, EMV 9F02) carry, in fen.
MAX_FEN = 0xFFFFFFFF


class Yuan(click.ParamType[int, Any]):
    """An amount in yuan with at most two decimals, returned in fen."""

    name = "yuan"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip().lstrip("¥")
        try:
            fen = Decimal(text).scaleb(2)
        except InvalidOperation:
            self.fail(f"{value!r} is not an amount in yuan (e.g. 50 or 12.50)", param, ctx)
        if not fen.is_finite() or fen <= 0 or fen != fen.to_integral_value():
            self.fail(f"{value!r} must be positive with at most two decimals", param, ctx)
        if fen > MAX_FEN:
            self.fail(f"{value!r} is more than a card can count: at most {yuan(MAX_FEN)}",
                      param, ctx)
        return int(fen)


@dataclass
class World:
    home: Home
    console: Console
    json: bool = False
    at: datetime | None = None  # the command's --at: the world's clock reads it, and so does the issuer
    air: AirInterface = field(default_factory=band_air)
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
        world.air = band_air(BitRate(int(value)))


at_option = click.option(
    "--at", metavar="DATETIME", callback=_set_at, expose_value=False,
    help=f"When this happens (ISO 8601, e.g. 2026-11-23T08:30; without an offset: "
         f"{clock.label()}). Default: now.")
#: ``--rate``: the ISO 14443 bit rate of the world's air interface (its timing model).
rate_option = click.option(
    "--rate", type=click.Choice([str(r.value) for r in BitRate]), default="106",
    show_default=True, callback=_set_rate, expose_value=False,
    help="ISO 14443 bit rate in kbit/s for the timing model.")


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


def identifier(header: str) -> Column:
    """A table column for an identifier (AID, card number, PAN, APDU): folded onto more lines
    when the terminal is narrow, never cut, so that what is shown can be copied whole."""
    return Column(header, overflow="fold", min_width=min(len(header), 8))


def lock_state(worn: Band) -> str:
    express = worn.express()
    spared = product_for_aid(express).name if express else "no card"
    where = "on the wrist" if worn.on_wrist else "off the wrist"
    if worn.locked:
        return f"{worn.name} is {where} and locked: only {spared} answers readers (express)"
    return f"{worn.name} is {where} and unlocked: every card answers readers"
