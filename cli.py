"""The ``koala`` command: bands, their cards, taps at gates and buses, and a demo day.

Everything it keeps lives under ``$KOALA_HOME`` (default ``~/.koala``), or
the directory given with ``--home``. Every command that records a date takes
``--at`` (default: now); times without an offset are Beijing time, the zone of
the demo network's terminals and issuer, whatever the machine's ``TZ``.

The groups live in ``commands/``, one module each; this is the root that gathers them.
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from commands.band import band
from commands.card import card
from commands.companion import companion_group
from commands.demo import demo
from commands.gp import gp_group
from commands.home import Home
from commands.issuer import issuer_group
from commands.network import network_group
from commands.pcsc import pcsc
from commands.tap import tap_group
from commands.world import KoalaGroup, World


@click.group(cls=KoalaGroup)
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="World directory (default $KOALA_HOME or ~/.koala).")
@click.version_option(package_name="koala-band")
@click.pass_context
def main(ctx: click.Context, home: Path | None) -> None:
    """Koala band: a simulated NFC transit and e-cash wristband, its readers and issuer."""
    if ctx.obj is None:  # the demo brings its own world
        ctx.obj = World(Home(home), Console(highlight=False))


for group in (band, card, companion_group, demo, gp_group, issuer_group, network_group, pcsc,
              tap_group):
    main.add_command(group)


if __name__ == "__main__":
    main()
