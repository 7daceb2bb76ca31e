"""``koala demo``: a whole day of the Koala band, run as a user would type it, against an
issuer in this process and in a world of its own."""

from __future__ import annotations

import shlex
import tempfile
from datetime import date
from pathlib import Path

import click
from rich.table import Table

from commands.home import Home
from commands.local_issuer import local_issuer
from commands.world import World, pass_world


@click.command()
@click.option("--keep", is_flag=True, help="Run in $KOALA_HOME/demo and keep it, instead of a "
                                           "temporary world.")
@pass_world
def demo(world: World, keep: bool) -> None:
    """A whole day: a new band gets its cards and money over the air; out of the front door,
    the metro, breakfast at the canteen, lunch by QuickPass, a bus, home by metro with the
    band in a pocket (express transit) and through the door; the issuer clears and cancels."""
    koala = click.get_current_context().find_root().command  # the demo types koala's commands
    if keep:
        run_demo(World(Home(world.home.root / "demo"), world.console), koala)
        return
    with tempfile.TemporaryDirectory(prefix="koala-demo-") as root:
        run_demo(World(Home(Path(root)), world.console), koala)


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
        ("companion", "pair", "--band", "demo", "--yes", "--transport", "virtual"),
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
        ("companion", "unlock", "--band", "demo", "--transport", "virtual"),
        ("tap", "door", "--band", "demo", "--door", "front", "--at", at(19, 10)),
        ("issuer", "clear", "--at", at(21, 0)),
        ("card", "cancel", "--band", "demo", "--card", "canteen", "--at", at(21, 5)),
        ("card", "list", "--band", "demo"),
        ("card", "history", "--band", "demo"),
    ]


def run_demo(world: World, koala: click.Command) -> None:
    """Run the demo's commands through ``koala`` (the root group) in ``world`` as a user would,
    then sum up the taps."""
    console = world.console
    console.print(f"[bold]Koala band demo[/] in a fresh world at {world.home.root}\n")
    with local_issuer(world.home) as url:
        console.print(f"[bold cyan]$ koala issuer serve &[/]   [dim]# running at {url}[/]\n",
                      markup=True)
        for args in demo_day(world.today().date()):
            console.print(f"[bold cyan]$ koala {shlex.join(args)}[/]", markup=True)
            koala.main(list(args), standalone_mode=False, obj=world)
            console.print()
    table = Table("tap", "host ms", "modelled ms", "deadline ms", "margin ms",
                  title="every tap of the day against its deadline")
    for text, outcome in world.outcomes:
        t = outcome.timing
        table.add_row(text if outcome.accepted else f"refused: {outcome.refusal}",
                      f"{t.host_s * 1e3:.2f}", f"{t.modelled_s * 1e3:.1f}",
                      f"{t.deadline_s * 1e3:.0f}", f"{t.margin_s * 1e3:+.1f}")
    console.print(table)
