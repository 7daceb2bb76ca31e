"""Terminal clocks: the network's wall time whatever the machine's zone, --at parsed once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from reader import clock


def test_a_naive_time_is_beijing_wall_time_and_an_offset_is_honoured():
    assert clock.parse("2026-11-23T08:30") == datetime(2026, 11, 23, 0, 30, tzinfo=UTC)
    assert clock.parse("2026-11-23T00:30Z") == datetime(2026, 11, 23, 0, 30, tzinfo=UTC)
    assert clock.parse("2026-11-22T16:30-08:00") == datetime(2026, 11, 23, 0, 30, tzinfo=UTC)
    assert clock.parse("2028-02-29") == datetime(2028, 2, 28, 16, 0, tzinfo=UTC)


def test_terminals_write_the_networks_wall_time_for_any_instant():
    los_angeles = timezone(timedelta(hours=-8))
    late = datetime(2035, 12, 31, 23, 59, 30, tzinfo=los_angeles)
    assert clock.local(late) == datetime(2036, 1, 1, 15, 59, 30)
    assert clock.local(datetime(2026, 11, 23, 8, 30)) == datetime(2026, 11, 23, 8, 30)
    assert clock.instant(clock.local(late)) == late


@pytest.mark.parametrize(("text", "message"), [
    ("noon", "not a date"),
    ("0001-01-01", "outside the years"),
    ("2100-01-01T00:00", "outside the years"),
])
def test_a_bad_moment_says_what_is_accepted(text, message):
    with pytest.raises(clock.BadMoment, match=message):
        clock.parse(text)


def test_a_fixed_clock_reads_its_moment_and_the_system_clock_is_an_instant():
    moment = clock.parse("2026-11-23T08:30")
    assert clock.fixed(moment)() == moment
    assert clock.system_clock().tzinfo is not None
