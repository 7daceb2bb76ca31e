"""What every ``koala`` command shares: the world (``$KOALA_HOME``, the command's clock and air
interface), the common options and the display helpers."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Column

from applets.brands import ECASH
from backoffice.errors import BackOfficeError
from ble.errors import BleError
from commands.home import Home
from common.files import atomic_write
from common.money import yuan
from issuer.errors import IssuerUnavailable
from issuer.products import PRODUCTS, UnknownProduct, product_for_aid
from reader import clock
from reader.air import Activation, tap_frames, write_capture
from reader.errors import ReaderError
from reader.metro import MetroError, MetroNetwork
from reader.outbox import OutboxError
from reader.tap import TapOutcome
from reader.timing import AirInterface, BitRate
from reader.trace import Exchange
from reader.transport import Transport, in_field
from wallet import contactless
from wallet.band import UID_SIZE, Band
from wallet.errors import WalletError

if TYPE_CHECKING:
    from issuer.client import OperatorClient

USER_ERRORS = (WalletError, BleError, IssuerUnavailable, ReaderError, MetroError, UnknownProduct,
               BackOfficeError, OutboxError)




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
    def link(self, source: Source, trace_file: Path | None = None) -> Iterator[Transport]:
        """The card to tap: a band in process, or whatever card a reader finds. With
        ``trace_file``, what went over the air is written there as pcapng once the card
        leaves, whether or not the command got what it wanted (a failed tap's trace is the
        one most wanted)."""
        with self._card(source, trace_file is not None) as (link, activation):
            started = self.clock()
            try:
                yield link
            finally:
                if trace_file is not None:
                    self.save_air_trace(trace_file, link.trace, activation, started)

    @contextmanager
    def _card(self, source: Source, traced: bool) -> Iterator[tuple[Transport, Activation]]:
        """The card's transport and how it answered the reader's activation: a band's own
        answers; a reader's card as the air model describes it, with the UID and historical
        bytes the reader reports (asked only for a trace: ``traced``)."""
        if source.reader is not None:
            from reader.pcsc import PcscReader, contactless_historical  # noqa: PLC0415 - optional extra

            card = PcscReader(source.reader).wait_for_card(source.wait)
            try:
                seen = (card.uid(), contactless_historical(card.atr)) if traced else (None, None)
                yield card, Activation.modelled(self.air, *seen)
            finally:
                card.disconnect()
        elif source.nfc is not None:
            from reader.nfc import NfcReader  # noqa: PLC0415 - optional extra

            nfc_reader = NfcReader(source.nfc)
            try:
                tag = nfc_reader.wait_for_card(source.wait)
                yield tag, Activation.modelled(self.air, tag.uid)
            finally:
                nfc_reader.release()
                nfc_reader.close()
        else:
            with self.band(source.band_name()) as worn, in_field(worn) as held:
                yield held, band_activation(worn)

    def save_air_trace(self, path: Path, trace: Sequence[Exchange], activation: Activation,
                       started: datetime) -> None:
        """Write the frames of ``trace`` to ``path`` as pcapng, whole or not at all, timed as
        the tap's timing model prices them from ``started`` on (the world's clock: ``--at``)."""
        try:
            frames = tap_frames(trace, activation, self.air)
        except ValueError as error:
            raise click.ClickException(f"no air trace written: {error}") from None
        sink = io.BytesIO()
        since = clock.instant(started) - datetime(1970, 1, 1, tzinfo=UTC)
        packets = write_capture(sink, frames, since // timedelta(microseconds=1), self.air,
                                application=f"koala-band {version('koala-band')}")
        try:
            atomic_write(path, sink.getvalue())
        except OSError as error:
            raise click.ClickException(f"cannot write the air trace {path}: {error.strerror}") \
                from None
        click.echo(f"air trace: {path} ({packets} packets, {len(trace)} APDUs; Wireshark: "
                   f"Decode As ISO 14443 payload -> ISO 7816)", err=True)

    @contextmanager
    def band(self, name: str) -> Iterator[Band]:
        """A band for this process alone, saved after every command that changes it."""
        with self.home.changing(name) as band:
            yield band

    def emit(self, document: Any) -> None:
        click.echo(json.dumps(document, indent=2, ensure_ascii=False))


pass_world = click.make_pass_decorator(World)


def band_activation(band: Band) -> Activation:
    """What ``band`` answers a reader before any APDU: its UID, ATQA, SAK and ATS."""
    return Activation(band.uid, contactless.SENS_RES, contactless.SEL_RES,
                      contactless.Ats().encode())


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


#: ``--trace-file``: the tap's frames on the air as pcapng, for Wireshark and tshark.
trace_file_option = click.option(
    "--trace-file", type=click.Path(dir_okay=False, writable=True, path_type=Path),
    metavar="FILE.pcapng",
    help="Write the frames on the air (ISO 14443 at the modelled times) to this pcapng file "
         "for Wireshark.")


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
    from issuer.client import OperatorClient  # noqa: PLC0415 - httpx: only the issuer's commands

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
