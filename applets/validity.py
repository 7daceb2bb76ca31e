"""Validity periods of cards and permissions: one rule for every start and expiry date.

A card issued on ``start`` for ``years`` is valid until the same day of the
month ``years`` later. A period that starts on 29 February ends on
28 February of the target year when that year has no 29 February, the rule
of banks' card expiry and of most transit operators (never 1 March: a card
must not outlive the period it was sold for).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date

from applets import bcd


def years_after(start: date, years: int) -> date:
    """The same day ``years`` later; 29 February becomes 28 February in a common year."""
    year = start.year + years
    day = min(start.day, calendar.monthrange(year, start.month)[1])
    return start.replace(year=year, day=day)


@dataclass(frozen=True, slots=True)
class Validity:
    """A period from ``start`` to ``end``, both days included."""

    start: date
    end: date

    @classmethod
    def for_years(cls, start: date, years: int) -> Validity:
        return cls(start, years_after(start, years))

    def bcd(self) -> tuple[bytes, bytes]:
        """(start, end) as PBOC files carry them: ``YYYYMMDD`` in BCD."""
        return bcd.encode(f"{self.start:%Y%m%d}"), bcd.encode(f"{self.end:%Y%m%d}")

    def bcd_short(self) -> tuple[bytes, bytes]:
        """(start, end) as EMV records carry them (5F25, 5F24): ``YYMMDD`` in BCD."""
        return bcd.encode(f"{self.start:%y%m%d}"), bcd.encode(f"{self.end:%y%m%d}")
