"""Pictures people would rather look at than read: a card's balance over time with its taps,
and a tap's timeline against its deadline. matplotlib, headless (Agg), imported only here."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reader import clock
from reader.history import Kind, Line

#: How each kind of line is marked: colour and marker.
STYLE = {Kind.ENTRY: ("tab:blue", ">"), Kind.EXIT: ("tab:blue", "s"), Kind.BUS: ("tab:orange", "^"),
         Kind.LOAD: ("tab:green", "P"), Kind.TOP_UP: ("tab:green", "*"),
         Kind.PURCHASE: ("tab:red", "v"), Kind.OTHER: ("tab:gray", "o")}


def _pyplot() -> Any:
    import matplotlib  # noqa: PLC0415 - a second of imports, for the commands that draw

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def balance_plot(lines: Sequence[Line], title: str, path: Path) -> None:
    """The balance after each line as a step line, each line marked by its kind, oldest left."""
    plt = _pyplot()
    ordered = sorted(lines, key=lambda line: line.when)
    figure, axes = plt.subplots(figsize=(10, 4.5), layout="constrained")
    if ordered:
        axes.step([line.when for line in ordered], [line.balance_after / 100 for line in ordered],
                  where="post", color="black", linewidth=1, zorder=1)
    for kind in Kind:
        marked = [line for line in ordered if line.kind == kind]
        if marked:
            colour, marker = STYLE[kind]
            axes.scatter([line.when for line in marked], [line.balance_after / 100 for line in marked],
                         color=colour, marker=marker, s=60, label=kind.value, zorder=2)
    axes.set_title(title)
    axes.set_ylabel("balance after (¥)")
    axes.set_xlabel(f"time ({clock.label()})")
    axes.grid(alpha=0.3)
    if ordered:
        axes.legend(loc="best")
    figure.autofmt_xdate()
    figure.savefig(path, dpi=110)
    plt.close(figure)
