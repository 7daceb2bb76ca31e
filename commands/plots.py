"""Pictures people would rather look at than read: a card's balance over time with its taps,
and a tap's timeline against its deadline. matplotlib, headless (Agg), imported only here."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reader import clock
from reader.history import Kind, Line
from reader.tap import TapOutcome

if TYPE_CHECKING:
    from city.replay import Minute

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


def timing_plot(outcome: TapOutcome[Any], path: Path) -> None:
    """The tap as it takes place on the air: activation, then for each APDU its frames on the
    air and its time in the card, one row each, against the terminal's deadline."""
    plt = _pyplot()
    timing = outcome.timing
    rows: list[tuple[str, float, float, float]] = [("activation", 0.0, timing.activation_s, 0.0)]
    start = timing.activation_s
    for exchange, timed in zip(outcome.trace, timing.exchanges, strict=False):
        rows.append((exchange.command[:4].hex().upper(), start, timed.air_s, timed.card_s))
        start += timed.air_s + timed.card_s
    rows.append(("deselect", start, timing.deselect_s, 0.0))
    figure, axes = plt.subplots(figsize=(10, 1.2 + 0.35 * len(rows)), layout="constrained")
    for row, (_, begin, air, card) in enumerate(rows):
        axes.barh(row, air * 1e3, left=begin * 1e3, color="tab:blue", height=0.6,
                  label="on the air" if row == 0 else None)
        if card:
            axes.barh(row, card * 1e3, left=(begin + air) * 1e3, color="tab:orange", height=0.6,
                      label="in the card" if row == 1 else None)
    axes.axvline(timing.deadline_s * 1e3, color="tab:red", linestyle="--",
                 label=f"deadline {timing.deadline_s * 1e3:.0f} ms")
    axes.set_yticks(range(len(rows)), [label for label, *_ in rows], fontfamily="monospace")
    axes.invert_yaxis()
    axes.set_xlabel("ms from the card entering the field")
    verdict = "within" if timing.within_deadline else "OVER"
    axes.set_title(f"modelled {timing.modelled_s * 1e3:.1f} ms ({verdict} the deadline), "
                   f"host {timing.host_s * 1e3:.2f} ms")
    axes.grid(axis="x", alpha=0.3)
    axes.legend(loc="lower right")
    figure.savefig(path, dpi=110)
    plt.close(figure)


def replay_plot(minutes: Sequence[Minute], title: str, path: Path) -> None:
    """A replayed morning minute by minute: taps made and records cleared as bars, the records
    not yet cleared (the lag) as a line on an axis of its own."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(10, 4.5), layout="constrained")
    when = [minute.at for minute in minutes]
    width = 1 / (24 * 60) * 0.45  # days: matplotlib's unit of dates, half a minute
    axes.bar([at - timedelta(seconds=15) for at in when], [m.taps for m in minutes], width,
             color="tab:blue", label="taps")
    axes.bar([at + timedelta(seconds=15) for at in when], [m.cleared for m in minutes], width,
             color="tab:green", label="records cleared")
    axes.set_ylabel("per minute")
    axes.set_xlabel(f"the network's time ({clock.label()})")
    lag = axes.twinx()
    lag.plot(when, [m.lag for m in minutes], color="tab:red", linewidth=1.2, label="lag")
    lag.set_ylabel("records not yet cleared")
    lag.set_ylim(bottom=0)
    handles = [*axes.get_legend_handles_labels()[0], *lag.get_legend_handles_labels()[0]]
    axes.legend(handles=handles, loc="upper left")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    figure.autofmt_xdate()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def lag_plot(runs: dict[str, Sequence[tuple[float, int]]], title: str, path: Path) -> None:
    """The stream's lag (records not yet cleared) against seconds, a line per run."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(8, 4), layout="constrained")
    for label, points in runs.items():
        axes.plot([seconds for seconds, _ in points], [lag for _, lag in points], label=label)
    axes.set_xlabel("seconds since the workers started")
    axes.set_ylabel("records not yet cleared")
    axes.set_ylim(bottom=0)
    axes.legend(loc="upper right")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    figure.savefig(path, dpi=110)
    plt.close(figure)
