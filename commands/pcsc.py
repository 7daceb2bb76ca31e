"""``koala pcsc``: the PC/SC readers pcscd sees (the optional ``pcsc`` extra)."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from commands.world import World, identifier, json_option, pass_world


@click.group()
def pcsc() -> None:
    """PC/SC readers seen through pcscd."""


@pcsc.command("readers")
@json_option
@pass_world
def pcsc_readers(world: World, as_json: bool) -> None:
    """List PC/SC readers, whether a card is present, and its ATR."""
    rows = readers()
    if as_json:
        world.emit(rows)
        return
    table = Table("#", "reader", identifier("card ATR"), title="PC/SC readers")
    for row in rows:
        table.add_row(str(row["index"]), str(row["reader"]), str(row["atr"] or "no card"))
    world.console.print(table)


def readers() -> list[dict[str, Any]]:
    """Each reader by index and name, with the ATR of the card in it (empty: none)."""
    from reader.pcsc import PcscReader, reader_names  # noqa: PLC0415 - optional extra

    rows: list[dict[str, Any]] = []
    for index, name in enumerate(reader_names()):
        atr = ""
        if PcscReader(str(index)).card_present():
            card = PcscReader(str(index)).wait_for_card(0)
            atr = card.atr.hex().upper()
            card.disconnect()
        rows.append({"index": index, "reader": name, "atr": atr})
    return rows
