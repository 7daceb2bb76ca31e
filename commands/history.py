"""``koala card history`` and ``koala card journeys``: what a card remembers, read from it as
any reader app would (the doors from the band's own memory: no reader reads them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import click
from rich.table import Table

from applets import bcd
from applets.brands import ECASH
from applets.pboc.layouts import JourneyStatus, TransitRecord
from applets.pboc.purse import EF_LOG
from commands.world import World, json_option, pass_world
from common.money import yuan
from issuer import site
from issuer.products import PRODUCTS, TRANSIT, Product, product
from reader import clock, history, pboc, places
from reader.flow import run
from reader.metro import MetroNetwork
from reader.pos import read_log as pos_log
from reader.transport import in_field
from wallet.band import ACCESS

#: Cards record their terminals' wall time, which carries no zone: the column says which.
WHEN = f"when ({clock.label()})"


def iso(wall: datetime) -> str:
    """A card's wall time as ISO 8601 with the network's offset (``2026-11-23T08:00:00+08:00``)."""
    return wall.replace(tzinfo=clock.NETWORK_ZONE).isoformat()


def shown(wall: datetime) -> str:
    return f"{wall:%Y-%m-%d %H:%M:%S}"


def signed(fen: int) -> str:
    return f"+{yuan(fen)}" if fen > 0 else yuan(fen)


@dataclass(frozen=True)
class Purse:
    """What a reader app reads from a stored-value card."""

    serial: bytes
    history: history.History
    balance: int
    journey: TransitRecord | None


def read_purse(world: World, band_name: str, item: Product) -> Purse:
    """Read the card as any reader app would: its serial, balance, log and metro journey."""
    with world.band(band_name) as worn, in_field(worn) as link:
        issuer = run(pboc.select_purse(item.aid), link)
        balance = run(pboc.read_balance(), link)
        log = run(pboc.read_log(), link)
        journey = run(pboc.read_transit_record(0x01), link) if item.has_transit_record else None
    return Purse(issuer.app_serial, history.read(balance, log, world.network), balance, journey)


@click.command("history")
@click.option("--band", "band_name", required=True, help="The band.")
@click.option("--card", "card_name", default="transit", show_default=True,
              type=click.Choice(sorted([*PRODUCTS, ECASH, ACCESS])), help="Which card.")
@click.option("--limit", type=click.IntRange(1), help="Show only the newest N records.")
@click.option("--plot", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Also draw the balance over time, taps marked, into this PNG file.")
@json_option
@pass_world
def card_history(world: World, band_name: str, card_name: str, limit: int | None,
                 plot: Path | None, as_json: bool) -> None:
    """The card's rides, purchases and loads (or doors opened), newest first, as the card
    holds them."""
    if card_name == ECASH:
        ecash_history(world, band_name, as_json)
        return
    if card_name == ACCESS:
        door_history(world, band_name, as_json)
        return
    item = product(card_name)
    purse = read_purse(world, band_name, item)
    lines = purse.history.lines[:limit]
    hidden = len(purse.history.lines) - len(lines)
    serial = purse.serial.hex().upper()
    if plot is not None:
        from commands.plots import balance_plot  # noqa: PLC0415 - matplotlib is slow to import

        balance_plot(lines, f"{item.label} {serial}", plot)
        click.echo(f"balance over time drawn in {plot}", err=True)
    if as_json:
        world.emit({"serial": serial, "balance_fen": purse.balance, "not_shown": hidden,
                    "no_longer_on_card": purse.history.dropped, "log": [{
                        "when": iso(line.when), "type": line.kind.value, "where": line.place,
                        "amount_fen": line.amount, "balance_after_fen": line.balance_after,
                        ("online_counter" if line.online else "offline_counter"): line.counter,
                        "terminal": line.terminal_id.hex().upper()} for line in lines]})
        return
    table = Table(title=f"{item.label} {serial} · balance {yuan(purse.balance)} · times "
                        f"({clock.label()})")
    table.add_column("when", no_wrap=True)
    for heading in ("type", "where", "amount", "balance after", "counter"):
        table.add_column(heading)
    for line in lines:
        table.add_row(shown(line.when), line.kind.value, line.place, signed(line.amount),
                      yuan(line.balance_after),
                      f"{'load' if line.online else 'purchase'} {line.counter}")
    world.console.print(table)
    if hidden:
        world.console.print(f"{hidden} older records not shown (--limit)", style="dim")
    if purse.history.dropped:
        world.console.print(f"{purse.history.dropped} older transactions are no longer on the "
                            f"card: it keeps its last {EF_LOG.records}", style="dim")
    if purse.journey is not None:
        world.console.print(journey_state(purse.journey, world.network))


@click.command("journeys")
@click.option("--band", "band_name", required=True, help="The band.")
@json_option
@pass_world
def card_journeys(world: World, band_name: str, as_json: bool) -> None:
    """The transit card's metro rides whose entry and exit it still holds, newest first:
    stations, minutes, distance, fare and the balance after."""
    purse = read_purse(world, band_name, TRANSIT)
    rides = history.rides(purse.history, world.network)
    if as_json:
        world.emit([{"entered": iso(r.entered), "exited": iso(r.exited), "from": r.origin,
                     "to": r.destination, "minutes": r.minutes, "km": r.km, "fare_fen": r.fare,
                     "balance_after_fen": r.balance_after} for r in rides])
        return
    table = Table(f"entered ({clock.label()})", "from", "to", "minutes", "km", "fare",
                  "balance after", title=f"metro rides of {band_name}")
    for ride in rides:
        table.add_row(shown(ride.entered), ride.origin, ride.destination, str(ride.minutes),
                      "?" if ride.km is None else f"{ride.km:.1f}", yuan(ride.fare),
                      yuan(ride.balance_after))
    world.console.print(table)
    if purse.journey is not None and purse.journey.status == JourneyStatus.ENTERED:
        world.console.print(journey_state(purse.journey, world.network))


def ecash_history(world: World, band_name: str, as_json: bool) -> None:
    with world.band(band_name) as worn, in_field(worn) as link:
        balance, lines = run(pos_log(), link)
    if as_json:
        world.emit({"balance_fen": balance, "log": [
            {"when": iso(line.when), "merchant": line.merchant, "amount_fen": -line.amount,
             "atc": line.atc} for line in lines]})
        return
    table = Table(WHEN, "where", "amount", "ATC",
                  title=f"UnionPay e-cash · balance {yuan(balance)}")
    for line in lines:
        table.add_row(shown(line.when), line.merchant, signed(-line.amount), str(line.atc))
    world.console.print(table)


def door_history(world: World, band_name: str, as_json: bool) -> None:
    worn = world.home.load_band(band_name)
    names = {number: name for name, number in site.DOORS.items()}
    entries = [(bcd.to_datetime(e.date, e.time), names.get(e.door_id, f"door {e.door_id:08X}"))
               for e in worn.access_log()]
    if as_json:
        world.emit([{"when": iso(when), "door": door} for when, door in entries])
        return
    table = Table(WHEN, "door", title=f"doors opened by {band_name}")
    for when, door in entries:
        table.add_row(shown(when), door)
    world.console.print(table)


def journey_state(record: TransitRecord, network: MetroNetwork) -> str:
    def name(code: int) -> str:
        return places.station_name(places.gate_id(code), network)

    if record.status == JourneyStatus.ENTERED:
        entered = bcd.to_datetime(record.entry_date, record.entry_time)
        return f"in the metro: entered {name(record.entry_station)} at {entered:%Y-%m-%d %H:%M}"
    if record.status == JourneyStatus.EXITED:
        return (f"last ride: {name(record.entry_station)} → {name(record.exit_station)}, "
                f"{yuan(record.fare)}")
    return "no metro ride yet"
