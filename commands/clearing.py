"""``koala clearing``: the clearing centre. Records booked once per card and counter from the
terminals' outboxes (or JetStream with ``--nats``), a day settled between issuers and
operators, cards blacklisted down to the gates."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from backoffice import stream
from backoffice.books import Books, engine_for
from backoffice.clearing import Clearing, Tally, clear_files, clear_outboxes, clear_stream
from backoffice.settlement import settle
from commands.world import World, at_option, json_option, pass_world
from common.money import yuan

nats_option = click.option("--nats", "nats_url", metavar="URL", envvar="KOALA_NATS",
                           help="NATS server with JetStream (or $KOALA_NATS), e.g. "
                                "nats://127.0.0.1:4222; without it, the outboxes under $KOALA_HOME.")
database_option = click.option("--database", metavar="URL", envvar="KOALA_CLEARING_DB",
                               help="The books: SQLAlchemy URL (postgresql+psycopg://…); default "
                                    "SQLite in $KOALA_HOME/clearing.")
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_SERIAL = re.compile(r"[0-9A-Fa-f]{20}")


@click.group("clearing")
def clearing_group() -> None:
    """The clearing centre: records booked once, fares split between operators, blacklists to
    the gates."""


def books_for(world: World, database: str | None) -> Books:
    if database is None:
        _local_books(world).parent.mkdir(parents=True, exist_ok=True)
        database = f"sqlite:///{_local_books(world)}"
    return Books(engine_for(database))


def _local_books(world: World) -> Path:
    return world.home.root / "clearing" / "books.db"


def blacklist_cards(world: World, serials: Sequence[str], reason: str, nats_url: str | None,
                    database: str | None) -> str:
    """List the cards in the books, from now on (their records held, not booked as good
    money) and, with a stream, in its bucket, which every watching gate holds; the local
    time they are listed from."""
    since = world.today().strftime("%Y%m%d%H%M%S")
    books = books_for(world, database)
    for serial in serials:
        books.list_card(serial, since, reason)
    if nats_url is not None:
        async def send() -> None:
            async with stream.connected(nats_url) as js:
                for serial in serials:
                    await stream.blacklist(js, serial, since, reason)

        asyncio.run(send())
    return since


def unlist_cards(world: World, serials: Sequence[str], nats_url: str | None,
                 database: str | None) -> None:
    """Take the cards off the books' blacklist and, with a stream, out of its bucket."""
    books = books_for(world, database)
    for serial in serials:
        books.unlist_card(serial)
    if nats_url is not None:
        async def send() -> None:
            async with stream.connected(nats_url) as js:
                for serial in serials:
                    await stream.unblacklist(js, serial)

        asyncio.run(send())


def gate_blacklist(world: World, nats_url: str | None, database: str | None) -> set[bytes]:
    """The cards a gate refuses and blocks: the books' blacklist (without a stream the gates
    of this world read the clearing centre's books), and the stream's bucket with one."""
    listed: set[bytes] = set()
    if database is not None or _local_books(world).exists():
        listed |= {bytes.fromhex(serial) for serial in books_for(world, database).listed()}
    if nats_url is not None:
        async def read() -> set[bytes]:
            async with stream.connected(nats_url) as js:
                return await stream.listed(js)

        listed |= asyncio.run(read())
    return listed


@clearing_group.command("run")
@nats_option
@database_option
@click.option("--workers", type=click.IntRange(1, 32), default=1, show_default=True,
              help="Worker processes sharing the stream's pull consumer (with --nats).")
@click.option("--idle", "idle_s", type=click.FloatRange(0.1, 86400), default=2.0, show_default=True,
              help="With --nats: stop once nothing has come for this many seconds.")
@click.option("--ack-wait", "ack_wait_s", type=click.FloatRange(0.5, 3600), default=30.0,
              show_default=True, help="With --nats: seconds before a record a worker took but "
                                      "never acknowledged goes to another.")
@click.option("--file", "saved", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              metavar="FILE", help="Clear a day saved by `koala city replay --save FILE` instead "
                                   "of the outboxes (what of it the books read before is skipped).")
@json_option
@pass_world
def clearing_run(world: World, nats_url: str | None, database: str | None, workers: int,
                 idle_s: float, ack_wait_s: float, saved: Path | None, as_json: bool) -> None:
    """Check every record's TAC with its issuer's keys and book it once per card and counter."""
    if saved is not None and nats_url is not None:
        raise click.UsageError("--file and --nats are two sources: give one")
    books = books_for(world, database)
    with _progress(world) as advance:
        if saved is not None:
            tally = clear_files(Clearing(books), [saved], advance)
        elif nats_url is None:
            tally = clear_outboxes(Clearing(books), world.home.outbox_dir, advance)
        elif workers == 1:
            tally = asyncio.run(clear_stream(Clearing(books), nats_url, idle_s, ack_wait_s,
                                             progress=advance))
        else:
            tally = _in_processes(workers, nats_url, str(books.engine.url.render_as_string(
                hide_password=False)), idle_s, ack_wait_s)
    _report(world, tally, as_json)


def _in_processes(workers: int, nats_url: str, database: str, idle_s: float,
                  ack_wait_s: float) -> Tally:
    """``workers`` processes on the one consumer; their tallies summed."""
    context = multiprocessing.get_context("spawn")
    results: Any = context.Queue()
    processes = [context.Process(target=_worker, args=(nats_url, database, idle_s, ack_wait_s,
                                                       results)) for _ in range(workers)]
    for process in processes:
        process.start()
    total = Tally()
    for _ in processes:
        outcome = results.get()
        if isinstance(outcome, str):
            raise click.ClickException(outcome)
        total.add(Tally(**outcome))
    for process in processes:
        process.join()
    return total


def _worker(nats_url: str, database: str, idle_s: float, ack_wait_s: float, results: Any) -> None:
    from backoffice.errors import BackOfficeError  # noqa: PLC0415

    try:
        tally = asyncio.run(clear_stream(Clearing(Books(engine_for(database))), nats_url, idle_s,
                                         ack_wait_s))
    except BackOfficeError as error:
        results.put(str(error))
        return
    results.put(asdict(tally))


@contextlib.contextmanager
def _progress(world: World) -> Iterator[Callable[[int], None]]:
    """A spinner with the count of records cleared so far, on stderr (out of --json)."""
    progress = Progress(SpinnerColumn(), TextColumn("clearing"),
                        TextColumn("{task.completed:,.0f} records"), TimeElapsedColumn(),
                        console=Console(stderr=True), transient=True)
    with progress:
        task = progress.add_task("clearing")
        yield lambda count: progress.advance(task, count)


def _report(world: World, tally: Tally, as_json: bool) -> None:
    if as_json:
        world.emit(asdict(tally))
        return
    world.console.print(f"{tally.received} records: {tally.booked} booked, {tally.duplicates} "
                        f"already booked ({tally.replays} replayed), {tally.forged} with a forged "
                        f"TAC, {tally.listed} paid after their card's blacklisting (held), "
                        f"{tally.conflicts} conflicting")


@clearing_group.command("upload")
@nats_option
@pass_world
def clearing_upload(world: World, nats_url: str | None) -> None:
    """Send the terminals' outboxes to the stream: whatever it has not acknowledged yet (a
    terminal that was offline or crashed); a record sent twice is kept once."""
    if nats_url is None:
        raise click.ClickException("upload needs a stream: --nats URL (or $KOALA_NATS)")
    from reader.outbox import outboxes  # noqa: PLC0415

    async def run() -> int:
        async with stream.connected(nats_url) as js:
            return sum([await stream.upload(js, box) for box in outboxes(world.home.outbox_dir)])

    sent = asyncio.run(run())
    world.console.print(f"{sent} records sent to {nats_url}")


@clearing_group.command("settle")
@click.option("--day", required=True, metavar="YYYY-MM-DD",
              help="The day (the terminals' local date) to settle.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Also write the net positions to this CSV file.")
@database_option
@json_option
@pass_world
def clearing_settle(world: World, day: str, csv_path: Path | None, database: str | None,
                    as_json: bool) -> None:
    """Pair the day's entries and exits into journeys, split each fare between the operators of
    the lines its quickest route used, and give each issuer's net position against each operator."""
    if not _DAY.fullmatch(day):
        raise click.BadParameter(f"{day!r} is not YYYY-MM-DD", param_hint="--day")
    result = settle(books_for(world, database), world.network, day)
    if csv_path is not None:
        csv_path.write_text(result.csv())
    if as_json:
        world.emit({"day": day, "collected_fen": result.collected, "journeys": len(result.journeys),
                    "positions": [{"issuer": i, "operator": o, "fen": f}
                                  for (i, o), f in sorted(result.positions.items())],
                    "anomalies": [{"kind": a.kind, "serial": a.serial, "detail": a.detail}
                                  for a in result.findings]})
        return
    table = Table(title=f"net positions on {day}: what each issuer owes each operator")
    for column in ("issuer", "operator", "owes"):
        table.add_column(column, justify="right" if column == "owes" else "left")
    for (issuer, operator), fen in sorted(result.positions.items()):
        table.add_row(issuer, operator, yuan(fen))
    world.console.print(table)
    world.console.print(f"{len(result.journeys)} journeys; {yuan(result.collected)} collected, "
                        f"{yuan(sum(result.positions.values()))} split")
    for anomaly in result.findings:
        world.console.print(f"  {anomaly.kind}: {anomaly.serial or '-'} {anomaly.detail}")


@clearing_group.command("blacklist")
@click.argument("serial")
@click.option("--reason", default="lost", show_default=True, help="Why (lost, stolen, blocked).")
@nats_option
@database_option
@at_option
@pass_world
def clearing_blacklist(world: World, serial: str, reason: str, nats_url: str | None,
                       database: str | None) -> None:
    """Blacklist a card by its application serial (20 hex digits): its records from now on are
    held, not booked as good money, and with --nats every gate refuses it and blocks it."""
    if not _SERIAL.fullmatch(serial):
        raise click.BadParameter(f"{serial!r} is not an application serial (20 hex digits)",
                                 param_hint="SERIAL")
    since = blacklist_cards(world, [serial.upper()], reason, nats_url, database)
    world.console.print(f"card {serial.upper()} blacklisted from {since} ({reason})"
                        + (f"; sent to the gates through {nats_url}" if nats_url else ""))
