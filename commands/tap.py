"""``koala tap``: tap a card at the demo network's terminals (metro gates, buses, the canteen's
tills, QuickPass POS, the compound's doors, load machines) and report each tap against its
deadline."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.table import Table

from applets import bcd
from applets.sw import SW
from commands.clearing import database_option, gate_blacklist, nats_option
from commands.terminals import load_keys, psam_for
from commands.world import (
    Source,
    World,
    Yuan,
    at_option,
    card_option,
    identifier,
    json_option,
    lock_state,
    pass_world,
    rate_option,
    trace_file_option,
)
from common.money import yuan
from issuer import ecash, site
from issuer.products import CANTEEN, TRANSIT, product
from reader import places
from reader.bus import SimplePurchase, bus_validator
from reader.door import DEADLINE_DOOR_S, Admission, DoorReader
from reader.flow import Flow
from reader.gate import Direction, GateConfig, MetroGate
from reader.load import Load, LoadTerminal
from reader.pos import Pos, Receipt
from reader.tap import TapOutcome, tap
from reader.terminal import PurseTerminal, TapResult
from reader.timing import DEADLINE_EMV_S, DEADLINE_TRANSIT_S

T = TypeVar("T")


@dataclass(frozen=True)
class Tapping:
    """The card a tap reaches (``--band``, ``--reader`` or ``--nfc``, waiting ``--wait``
    seconds on a reader), whether to print its APDUs (``--trace``), where to write its
    frames on the air as pcapng (``--trace-file``) and its timeline as a picture
    (``--timing-plot``)."""

    band_name: str | None
    reader: str | None
    nfc_path: str | None
    wait: float
    trace: bool
    trace_file: Path | None = None
    timing_plot: Path | None = None

    def source(self) -> Source:
        return Source(self.band_name, self.reader, self.nfc_path, self.wait)


def tap_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """The options every tap takes: where the card is, ``--trace`` and ``--trace-file``, and
    the world's clock (``--at``) and air interface (``--rate``); the command gets the card as
    ``tapping``."""

    @functools.wraps(function)
    def command(*args: Any, band_name: str | None, reader: str | None, nfc_path: str | None,
                wait: float, trace: bool, trace_file: Path | None, timing_plot: Path | None,
                **kwargs: Any) -> Any:
        tapping = Tapping(band_name, reader, nfc_path, wait, trace, trace_file, timing_plot)
        return function(*args, tapping=tapping, **kwargs)

    for option in reversed([
        click.option("--band", "band_name", help="The band to tap (in process)."),
        click.option("--reader", help="Tap through this PC/SC reader instead (index or name)."),
        click.option("--nfc", "nfc_path", metavar="PATH",
                     help="Tap through this nfcpy device instead (usb, udp:host:port)."),
        click.option("--wait", type=float, default=10.0, show_default=True,
                     help="Seconds to wait for a card on a reader."),
        click.option("--trace", is_flag=True, help="Print every APDU with its timing."),
        trace_file_option,
        click.option("--timing-plot", type=click.Path(dir_okay=False, writable=True,
                                                      path_type=Path), metavar="FILE.png",
                     help="Draw the tap's timeline (activation, each APDU's air and card time) "
                          "against its deadline into this PNG file."),
        at_option,
        rate_option,
    ]):
        command = option(command)
    return command


@click.group("tap")
def tap_group() -> None:
    """Tap a band at a metro gate, on a bus, at a shop's POS or a load machine."""


@tap_group.command("gate")
@tap_options
@click.option("--station", required=True, help="Station name, Chinese name or code.")
@click.option("--direction", type=click.Choice(["in", "out"]), required=True,
              help="Entry or exit gate.")
@click.option("--gate", "gate_number", type=click.IntRange(1, 999), default=1, show_default=True,
              help="The gate's number at the station (part of its terminal id).")
@nats_option
@database_option
@json_option
@pass_world
def tap_gate(world: World, tapping: Tapping, station: str, direction: str, gate_number: int,
             nats_url: str | None, database: str | None, as_json: bool) -> None:
    """Tap at a metro gate: entry records the station, exit charges by distance; a card on
    the clearing centre's blacklist (or the stream's, with --nats) is refused and blocked."""
    here = world.network.find(station)
    config = GateConfig(world.network, here, Direction.ENTRY if direction == "in" else Direction.EXIT)
    terminal_id = places.gate_id(here.code, gate_number)
    gate = MetroGate(psam_for(world.home, TRANSIT, terminal_id), world.clock, config,
                     gate_blacklist(world, nats_url, database))
    run_tap(world, tapping, gate, gate.tap(), as_json)


@tap_group.command("bus")
@tap_options
@click.option("--route", required=True, help="Route number (digits).")
@click.option("--fare", type=Yuan(), default="2", show_default=True, help="Flat fare in yuan.")
@json_option
@pass_world
def tap_bus(world: World, tapping: Tapping, route: str, fare: int, as_json: bool) -> None:
    """Tap on a bus: a flat fare."""
    try:
        terminal_id = places.bus_id(route)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--route") from None
    validator = bus_validator(psam_for(world.home, TRANSIT, terminal_id), world.clock, route, fare)
    run_tap(world, tapping, validator, validator.tap(), as_json)


@tap_group.command("canteen")
@tap_options
@click.option("--amount", type=Yuan(), required=True, help="The meal's price in yuan.")
@click.option("--till", type=click.IntRange(1, 255), default=1, show_default=True,
              help="The canteen till's number (part of its terminal id).")
@json_option
@pass_world
def tap_canteen(world: World, tapping: Tapping, amount: int, till: int, as_json: bool) -> None:
    """Pay a meal at the canteen's till with the canteen card."""
    sale = SimplePurchase(psam_for(world.home, CANTEEN, places.till_id(till)), world.clock,
                          f"canteen till {till}", amount, CANTEEN.aid)
    run_tap(world, tapping, sale, sale.tap(), as_json)


@tap_group.command("pos")
@tap_options
@click.option("--amount", type=Yuan(), required=True, help="Amount in yuan, e.g. 12.50.")
@click.option("--merchant", default="Koala Mart", show_default=True, help="The shop's name.")
@click.option("--offline", is_flag=True,
              help="A POS with no link to its acquirer: only the card's offline approvals.")
@json_option
@pass_world
def tap_pos(world: World, tapping: Tapping, amount: int, merchant: str, offline: bool,
            as_json: bool) -> None:
    """Pay at a QuickPass POS: offline from the e-cash balance (fDDA), else online."""
    pos = Pos(merchant, world.clock, acquirer=None if offline else ecash.authorise)
    with tapped(world, tapping, pos.purchase(amount), DEADLINE_EMV_S) as outcome:
        if outcome.result is not None and outcome.result.offline:  # e-cash: for the issuer's clearing
            world.home.save_pos_record(outcome.result.purchase)
    report(world, outcome, tapping.trace, as_json, describe_receipt)


def describe_receipt(receipt: Receipt) -> tuple[str, dict[str, Any]]:
    how = "offline (fDDA)" if receipt.offline else "online (issuer approved)"
    text = f"{receipt.merchant}: paid {yuan(receipt.amount)} with {receipt.label} " \
           f"{receipt.masked_pan}, {how}"
    if receipt.balance is not None:
        text += f", e-cash balance {yuan(receipt.balance)}"
    purchase = receipt.purchase
    return text, {"merchant": receipt.merchant, "amount_fen": receipt.amount,
                  "pan": receipt.masked_pan, "offline": receipt.offline,
                  "balance_fen": receipt.balance, "atc": purchase.atc,
                  "cryptogram": purchase.cryptogram.hex().upper()}


@tap_group.command("door")
@tap_options
@click.option("--door", "door_name", type=click.Choice(sorted(site.DOORS)), required=True,
              help="Which door of the compound.")
@json_option
@pass_world
def tap_door(world: World, tapping: Tapping, door_name: str, as_json: bool) -> None:
    """Open a door of the compound with the band's access card (mutual authentication)."""
    door = DoorReader(site.door_id(door_name), site.SITE_MASTER, world.clock, os.urandom)
    outcome = tap_card(world, tapping, door.tap(), DEADLINE_DOOR_S)
    report(world, outcome, tapping.trace, as_json, functools.partial(describe_admission, door_name))


def describe_admission(door_name: str, admission: Admission) -> tuple[str, dict[str, Any]]:
    until = bcd.decode(admission.permission.valid_until)
    return (f"{door_name} door: open (card {admission.card_id.hex().upper()}, "
            f"allowed until {until})",
            {"door": door_name, "card_id": admission.card_id.hex().upper(),
             "valid_until": until})


@tap_group.command("load")
@tap_options
@card_option
@click.option("--amount", type=Yuan(), required=True, help="Amount in yuan, e.g. 50 or 12.50.")
@json_option
@pass_world
def tap_load(world: World, tapping: Tapping, card_name: str, amount: int, as_json: bool) -> None:
    """Top a card up with cash at a station's load machine (MAC1, MAC2, TAC checked)."""
    item = product(card_name)
    terminal = LoadTerminal(places.load_id(), load_keys(), world.clock)
    outcome = tap_card(world, tapping, terminal.load(amount, item.aid), keep=lambda: (
        world.home.save_terminal(terminal.terminal_id, 0, terminal.records)))  # for the clearing
    report(world, outcome, tapping.trace, as_json, describe_load)


def describe_load(load: Load) -> tuple[str, dict[str, Any]]:
    text = f"loaded {yuan(load.amount)}, balance {yuan(load.balance_after)}"
    if load.recovered:
        text += " — completed the interrupted top-up, not loaded again"
    return text, {"amount_fen": load.amount, "balance_fen": load.balance_after,
                  "tac": load.tac.hex().upper(),
                  "recovered": load.recovered}


@contextmanager
def tapped(world: World, tapping: Tapping, flow: Flow[T], deadline_s: float = DEADLINE_TRANSIT_S,
           keep: Callable[[], None] | None = None) -> Iterator[TapOutcome[T]]:
    """Run ``flow`` as one tap on the card ``tapping`` reaches, on the world's air interface,
    and hold the card while the caller keeps what the tap left; ``keep`` runs whether or not
    the tap completed (a terminal's records and sequence number)."""
    with world.link(tapping.source(), tapping.trace_file) as link:
        try:
            outcome = tap(link, flow, world.air, deadline_s=deadline_s)
        finally:
            if keep is not None:
                keep()
        if tapping.timing_plot is not None:
            from commands.plots import timing_plot  # noqa: PLC0415 - matplotlib is slow to import

            timing_plot(outcome, tapping.timing_plot)
            click.echo(f"timeline drawn in {tapping.timing_plot}", err=True)
        yield _with_lock_state(world, tapping, outcome)


def _with_lock_state(world: World, tapping: Tapping, outcome: TapOutcome[T]) -> TapOutcome[T]:
    """A refusal from a locked band says so when no card answered the terminal's SELECT
    (6A82): a reader sees a switched-off card as no card (GP contactless activation), but the
    band's own command knows better."""
    not_found = any(exchange.response[-2:] == SW.FILE_NOT_FOUND.to_bytes(2)
                    for exchange in outcome.trace)
    if outcome.refusal is None or tapping.band_name is None or not not_found:
        return outcome
    worn = world.home.load_band(tapping.band_name)
    if not worn.locked:
        return outcome
    return replace(outcome, refusal=f"{outcome.refusal}; {lock_state(worn)} "
                                    f"(koala band wrist {worn.name} on, then koala companion "
                                    f"unlock --band {worn.name})")


def tap_card(world: World, tapping: Tapping, flow: Flow[T], deadline_s: float = DEADLINE_TRANSIT_S,
             keep: Callable[[], None] | None = None) -> TapOutcome[T]:
    """One tap (see ``tapped``) for a terminal that keeps nothing while it holds the card."""
    with tapped(world, tapping, flow, deadline_s, keep) as outcome:
        return outcome


def run_tap(world: World, tapping: Tapping, terminal: PurseTerminal, flow: Flow[TapResult],
            as_json: bool) -> TapOutcome[TapResult]:
    """A tap at a purse terminal, which keeps its records and PSAM sequence number."""
    outcome = tap_card(world, tapping, flow, keep=lambda: world.home.save_terminal(
        terminal.terminal_id, terminal.psam.seq, terminal.records))
    report(world, outcome, tapping.trace, as_json, describe_tap)
    return outcome


def describe_tap(result: TapResult) -> tuple[str, dict[str, Any]]:
    text = f"{result.place}: paid {yuan(result.fare)}, balance {yuan(result.balance)}"
    if result.journey:
        text += f" ({result.journey})"
    if result.recovered:
        text += " — completed the interrupted tap, not charged again"
    return text, {"place": result.place, "fare_fen": result.fare, "balance_fen": result.balance,
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
    table = Table("#", identifier("command"), identifier("response"), "host µs", "air ms",
                  "card ms", title="APDU trace")
    for i, (exchange, timed) in enumerate(zip(outcome.trace, outcome.timing.exchanges,
                                              strict=False), start=1):
        table.add_row(str(i), exchange.command.hex().upper(), exchange.response.hex().upper(),
                      f"{exchange.host_seconds * 1e6:.0f}", f"{timed.air_s * 1e3:.2f}",
                      f"{timed.card_s * 1e3:.2f}")
    return table
