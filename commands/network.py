"""``koala network``: the metro network the gates charge by: its stations, its lines and the
fare between two stations."""

from __future__ import annotations

import click
from rich.table import Table

from commands.world import World, json_option, pass_world
from common.money import yuan
from reader.metro import BEIJING_2014


@click.group("network")
def network_group() -> None:
    """The metro network the gates know: stations, lines, fares."""


@network_group.command("stations")
@click.option("--line", "line_id", help="Only the stations of this line, in order.")
@json_option
@pass_world
def network_stations(world: World, line_id: str | None, as_json: bool) -> None:
    """Every station with its code (as gates write it on cards) and the lines serving it."""
    network = world.network
    if line_id is not None and line_id not in network.lines:
        raise click.BadParameter(f"no line {line_id!r}; lines: {', '.join(network.lines)}",
                                 param_hint="'--line'")
    codes = network.lines[line_id] if line_id else sorted(network.stations)
    stations = [network.station(code) for code in dict.fromkeys(codes)]
    if as_json:
        world.emit([{"code": f"{s.code:04X}", "name": s.name, "name_zh": s.name_zh,
                     "lines": list(s.lines)} for s in stations])
        return
    table = Table("code", "station", "站名", "lines",
                  title=f"line {line_id}" if line_id else "stations")
    for station in stations:
        table.add_row(f"{station.code:04X}", station.name, station.name_zh, ", ".join(station.lines))
    world.console.print(table)


@network_group.command("lines")
@json_option
@pass_world
def network_lines(world: World, as_json: bool) -> None:
    """Every line with its stops, end to end."""
    network = world.network
    if as_json:
        world.emit({line: [network.station(code).name for code in stops]
                    for line, stops in network.lines.items()})
        return
    table = Table("line", "stops", "from … to", title="lines")
    for line, stops in network.lines.items():
        table.add_row(line, str(len(stops)), f"{network.station(stops[0]).name} … "
                                             f"{network.station(stops[-1]).name}")
    world.console.print(table)


@network_group.command("fare")
@click.argument("origin", metavar="FROM")
@click.argument("destination", metavar="TO")
@json_option
@pass_world
def network_fare(world: World, origin: str, destination: str, as_json: bool) -> None:
    """The fare a gate charges from FROM to TO: by the shortest distance over the network."""
    network = world.network
    start, end = network.find(origin), network.find(destination)
    km = network.distance_km(start, end)
    fare = BEIJING_2014.fare_fen(km)
    if as_json:
        world.emit({"from": start.name, "to": end.name, "km": km, "fare_fen": fare})
        return
    world.console.print(f"{start.name} → {end.name}: {km:.2f} km, {yuan(fare)}")
