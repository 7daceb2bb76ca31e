"""``koala city``: a city's rush hour on the demo network, every tap a real transaction at a
real gate, its records kept, streamed and cleared as they are made."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, BinaryIO

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from backoffice import stream
from backoffice.clearing import Clearing
from city.replay import Outcome, replay, timetable
from city.riders import Gates, riders
from commands.clearing import books_for, database_option, nats_option
from commands.world import World, json_option, pass_world
from common.money import yuan

_CLOCK = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")


def _clock_time(_ctx: click.Context, param: click.Parameter, value: str) -> time:
    found = _CLOCK.fullmatch(value)
    if found is None:
        raise click.BadParameter(f"{value!r} is not a time of day HH:MM (e.g. 07:00)", param=param)
    return time(int(found[1]), int(found[2]))


def _day(_ctx: click.Context, param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a day YYYY-MM-DD", param=param) from None


@click.group("city")
def city_group() -> None:
    """A city's rush hour: riders through the network's gates, records to the back office."""


@city_group.command("replay")
@click.option("--riders", "count", type=click.IntRange(1, 1_000_000), default=1000,
              show_default=True, help="How many riders: each a band with a transit card "
                                      "(Beijing's, one in ten another T-Union city's).")
@click.option("--from", "begins", default="07:00", show_default=True, callback=_clock_time,
              metavar="HH:MM", help="The morning's first minute (the network's time).")
@click.option("--to", "ends", default="09:00", show_default=True, callback=_clock_time,
              metavar="HH:MM", help="Its end: riders enter before it, most at the middle (the peak).")
@click.option("--day", callback=_day, metavar="YYYY-MM-DD",
              help="The day the terminals record. Default: the day of --at (or today).")
@click.option("--seed", type=int, default=1, show_default=True,
              help="The riders, their trips and their cards are the same for the same seed.")
@click.option("--gate", "gate_number", type=click.IntRange(1, 99), default=1, show_default=True,
              help="Which gates at each station (part of their terminal ids): a morning at other "
                   "gates keeps outboxes of its own.")
@click.option("--save", "save_path", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              metavar="FILE", help="Also keep the day's records in FILE (outbox lines), to clear "
                                   "it again: `koala clearing run --file FILE`.")
@click.option("--clear", "clear_too", is_flag=True,
              help="Clear each minute's records as they come, as `koala clearing run` does.")
@click.option("--chart", "chart_path", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              metavar="FILE.png", help="Draw taps, clearing and lag per minute into this PNG file.")
@nats_option
@database_option
@json_option
@pass_world
def city_replay(world: World, count: int, begins: time, ends: time, day: date | None, seed: int,
                gate_number: int, save_path: Path | None, clear_too: bool, chart_path: Path | None,
                nats_url: str | None, database: str | None, as_json: bool) -> None:
    """Replay a morning on the network: origin-destination trips with a peak, each rider's
    entry and exit real PBOC purchases at real gates with their PSAMs, each record in its
    gate's outbox (and on JetStream with --nats) as it is made; then the throughput, the
    stream's lag and the books."""
    if ends <= begins:
        raise click.BadParameter(f"{ends:%H:%M} is not after --from {begins:%H:%M}",
                                 param_hint="--to")
    on = day or world.today().date()
    start, end = datetime.combine(on, begins), datetime.combine(on, ends)
    outcome = asyncio.run(_replay(world, count, start, end, seed, gate_number, save_path,
                                  clear_too, nats_url, database))
    if chart_path is not None:
        from commands.plots import replay_plot  # noqa: PLC0415 - matplotlib only when drawing

        replay_plot(outcome.minutes, f"{count:,} riders, {start:%Y-%m-%d %H:%M}-{end:%H:%M}",
                    chart_path)
    _report(world, outcome, books_for(world, database), on, nats_url, as_json)


async def _replay(world: World, count: int, start: datetime, end: datetime, seed: int,
                  gate_number: int, save_path: Path | None, clear_too: bool, nats_url: str | None,
                  database: str | None) -> Outcome:
    async with _stream(nats_url) as js:  # reached, and FILE opened, before anything is made
        with _saved(save_path) as save:
            books = books_for(world, database)
            listed = {bytes.fromhex(serial) for serial in books.listed()}
            gates = Gates(world.network, world.home.outbox_dir, gate_number, listed)
            watch = None
            if js is not None:  # the gates hold the blacklist the stream brings down
                ready = asyncio.Event()
                watch = asyncio.create_task(stream.watch_blacklist(js, listed, ready))
                await ready.wait()
            progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeRemainingColumn(), console=Console(stderr=True), transient=True)
            with progress:
                task = progress.add_task("riders", total=count)
                people = []
                for rider in riders(world.network, count, start, end, seed):
                    people.append(rider)
                    progress.advance(task)
                taps = timetable(people)
                progress.reset(task, total=len(taps), description="taps")
                outcome = await replay(taps, gates, save, js, Clearing(books) if clear_too else None,
                                       lambda: progress.advance(task))
                if watch is not None:
                    watch.cancel()
                return outcome


@contextlib.asynccontextmanager
async def _stream(url: str | None) -> AsyncIterator[Any]:
    if url is None:
        yield None
        return
    async with stream.connected(url) as js:
        yield js


@contextlib.contextmanager
def _saved(path: Path | None) -> Any:
    if path is None:
        yield None
        return
    try:
        handle: BinaryIO = path.open("wb")
    except OSError as error:
        raise click.ClickException(f"cannot write {path}: {error.strerror}") from None
    with handle:
        yield handle


def _report(world: World, outcome: Outcome, books: Any, day: date, nats_url: str | None,
            as_json: bool) -> None:
    totals = books.totals()
    spent = sum(fen for fen, _ in totals.values())
    anomalies = len(books.anomalies(day.isoformat()))
    rate = outcome.taps / outcome.seconds if outcome.seconds else 0.0
    if as_json:
        world.emit({"taps": outcome.taps, "records": outcome.records,
                    "refused": len(outcome.refusals), "seconds": round(outcome.seconds, 3),
                    "taps_per_s": round(rate, 1), "cleared": outcome.tally.received,
                    "lag": outcome.lag, "books": {"cards": len(totals), "debits_fen": spent,
                                                  "anomalies": anomalies},
                    "minutes": [{"at": m.at.isoformat(), "taps": m.taps, "cleared": m.cleared,
                                 "lag": m.lag} for m in outcome.minutes]})
        return
    table = Table(title=f"the morning of {day}", show_header=False)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for figure, value in (
            ("taps (real transactions at real gates)", f"{outcome.taps:,}"),
            ("refused at the gate", f"{len(outcome.refusals):,}"),
            ("records kept in the outboxes", f"{outcome.records:,}"),
            ("throughput", f"{rate:,.0f} taps/s in {outcome.seconds:.1f} s"),
            ("cleared here", f"{outcome.tally.received:,} ({outcome.tally.booked:,} booked)"),
            (f"lag at the end ({'stream consumer' if nats_url else 'outboxes'})",
             f"{outcome.lag:,} records"),
            ("books: cards, good debits", f"{len(totals):,}, {yuan(spent)}"),
            (f"books: anomalies on {day}", f"{anomalies:,}")):
        table.add_row(figure, value)
    world.console.print(table)
