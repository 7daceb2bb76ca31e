"""Clocks: where every date that a terminal, the issuer or a band records comes from.

A clock is a function of no arguments returning the current moment; the
caller hands it in, so tests, the demo and ``--at`` replay any day. A moment
is best an aware datetime (an instant). Cards carry dates without a zone
(BCD ``YYYYMMDD hhmmss``): terminals write their *local* wall time, as real
gates do, and the demo network's terminals and issuer keep Beijing time
whatever the machine's ``TZ`` (:data:`NETWORK_ZONE`). A naive moment is taken
as wall time in the terminal's zone already, which is what a card's own
dates read back as.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

Clock = Callable[[], datetime]

#: The zone of the demo network's terminals and of its issuer: Asia/Shanghai (UTC+8, no DST).
NETWORK_ZONE = ZoneInfo("Asia/Shanghai")
#: Years a card's BCD dates can hold: PBOC files carry four digits, EMV records two (20YY).
FIRST_YEAR, LAST_YEAR = 2000, 2099


class BadMoment(ValueError):
    """A date and time a clock cannot be set to; the message says what is accepted."""


def system_clock() -> datetime:
    """The machine's clock, as an instant (only the outermost layer reads it)."""
    return datetime.now(UTC)


def fixed(moment: datetime) -> Clock:
    """A clock that always reads ``moment`` (``--at``: a terminal set to that time)."""
    return lambda: moment


def local(moment: datetime, zone: ZoneInfo = NETWORK_ZONE) -> datetime:
    """The wall time of ``moment`` in ``zone``, naive: what a terminal there writes on a card."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(zone).replace(tzinfo=None)


def instant(moment: datetime, zone: ZoneInfo = NETWORK_ZONE) -> datetime:
    """``moment`` as an aware UTC instant; a naive one is wall time in ``zone``."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


def parse(text: str, zone: ZoneInfo = NETWORK_ZONE) -> datetime:
    """An ISO 8601 date and time as an instant: ``2026-11-23T08:30`` is wall time in ``zone``,
    ``2026-11-23T00:30Z`` or ``…+01:00`` names its own offset; a date alone is its midnight."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BadMoment(f"{text!r} is not a date and time like 2026-11-23T08:30") from None
    wall = local(moment, zone)
    if not FIRST_YEAR <= wall.year <= LAST_YEAR:
        raise BadMoment(f"{text!r} is outside the years cards can record "
                        f"({FIRST_YEAR}-{LAST_YEAR})")
    return instant(moment, zone)


def label(zone: ZoneInfo = NETWORK_ZONE) -> str:
    """How the CLI names the zone of the times it shows, e.g. ``Asia/Shanghai``."""
    return zone.key
