"""The ``koala`` command: bands, their cards, taps at gates and buses, and a demo day.

Everything it keeps lives under ``$KOALA_HOME`` (default ``~/.koala``), or
the directory given with ``--home``. Every command that records a date takes
``--at`` (default: now); times without an offset are Beijing time, the zone of
the demo network's terminals and issuer, whatever the machine's ``TZ``.

The groups live in ``commands/``, one module each, imported when they run; this is the root
that names them.
"""

from __future__ import annotations

from pathlib import Path

import click

from commands.lazy import LazyGroup

GROUPS = {
    "band": ("commands.band:band", "The bands: make, list, register, fund, report lost or found,"
                                   " wear, serve over BLE, attach to PC/SC, emulate over NFC."),
    "card": ("commands.card:card", "Cards on a band: list, issue, top up, cancel, choose the "
                                   "express one; read their history and rides."),
    "clearing": ("commands.clearing:clearing_group",
                 "The clearing centre: records booked once, fares split between operators, "
                 "blacklists to the gates."),
    "city": ("commands.city:city_group",
             "A city's rush hour: riders through the network's gates, records to the back office."),
    "companion": ("commands.companion:companion_group",
                  "The phone: relays the issuer's APDUs to a band."),
    "demo": ("commands.demo:demo", "A whole day: a new band gets its cards and money over the "
                                   "air; out of the front door, the metro, breakfast at the "
                                   "canteen, lunch by QuickPass, a bus, home by metro with the "
                                   "band in a pocket (express transit) and through the door; "
                                   "the issuer clears and cancels."),
    "gp": ("commands.gp:gp_group",
           "Manage the band's cards with GlobalPlatform, as a TSM does (secure channel)."),
    "issuer": ("commands.issuer:issuer_group", "The over-the-air issuer service (TSM)."),
    "network": ("commands.network:network_group",
                "The metro network the gates know: stations, lines, fares."),
    "pcsc": ("commands.pcsc:pcsc", "PC/SC readers seen through pcscd."),
    "tap": ("commands.tap:tap_group",
            "Tap a band at a metro gate, on a bus, at a shop's POS or a load machine."),
}


@click.group(cls=LazyGroup, lazy=GROUPS)
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="World directory (default $KOALA_HOME or ~/.koala).")
@click.version_option(package_name="koala-band")
@click.pass_context
def main(ctx: click.Context, home: Path | None) -> None:
    """Koala band: a simulated NFC transit and e-cash wristband, its readers and issuer."""
    if ctx.obj is None:  # the demo brings its own world
        from rich.console import Console  # noqa: PLC0415 - only a command that runs needs them

        from commands.home import Home  # noqa: PLC0415
        from commands.world import World  # noqa: PLC0415

        ctx.obj = World(Home(home), Console(highlight=False))


if __name__ == "__main__":
    main()
