"""Validity periods: one rule for every card's start and expiry, leap days included."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from applets.validity import Validity, years_after


@pytest.mark.parametrize(("start", "years", "end"), [
    (date(2028, 2, 29), 10, date(2038, 2, 28)),  # the target year has no 29 February
    (date(2028, 2, 29), 2, date(2030, 2, 28)),
    (date(2028, 2, 29), 4, date(2032, 2, 29)),   # ... and this one has
    (date(2035, 12, 31), 10, date(2045, 12, 31)),  # the last day of a year stays the last
    (date(2035, 12, 31), 5, date(2040, 12, 31)),
    (date(2036, 1, 1), 2, date(2038, 1, 1)),
    (date(2026, 11, 23), 10, date(2036, 11, 23)),
])
def test_a_period_ends_on_the_same_day_years_later_or_on_28_february(start, years, end):
    assert years_after(start, years) == end


def test_validity_in_the_two_bcd_forms_cards_carry():
    period = Validity.for_years(date(2028, 2, 29), 5)
    assert period == Validity(date(2028, 2, 29), date(2033, 2, 28))
    assert period.bcd() == (bytes.fromhex("20280229"), bytes.fromhex("20330228"))
    assert period.bcd_short() == (bytes.fromhex("280229"), bytes.fromhex("330228"))


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2089, 12, 31)), st.integers(1, 10))
def test_a_period_never_outlives_its_years_nor_changes_month(start, years):
    end = years_after(start, years)
    assert (end.year, end.month) == (start.year + years, start.month)
    assert end.day == start.day or (start.month, start.day, end.day) == (2, 29, 28)
