"""bench.day's rate leaves the workers' start-up and the last batches out, and its lag table
keeps the first and the last sample."""

from __future__ import annotations

from bench.day import Sample, lag_table, steady_rate

TOTAL = 10_000


def run(start_s: float, rate: float, step_s: float = 0.25) -> list[Sample]:
    """A lag that stays at TOTAL while the workers start, then falls at ``rate``."""
    samples, seconds, lag = [], 0.0, TOTAL
    while lag:
        lag = TOTAL if seconds < start_s else max(0, TOTAL - int((seconds - start_s) * rate))
        samples.append(Sample(seconds, lag))
        seconds += step_s
    return samples


def test_the_steady_rate_leaves_the_start_up_out() -> None:
    samples = run(start_s=2.0, rate=1000.0)
    assert abs(steady_rate(samples, TOTAL) - 1000.0) < 20
    assert TOTAL / samples[-1].seconds < 850, "wall to wall, the start-up would count"


def test_the_lag_table_runs_from_the_first_sample_to_the_last() -> None:
    samples = run(start_s=1.0, rate=1000.0)
    rows = lag_table(samples, rows=5)
    assert rows[2].startswith("| 0.0 | 10,000 | — |")
    assert rows[-1].startswith(f"| {samples[-1].seconds:.1f} | 0 |")
    assert 5 <= len(rows) - 2 <= 7
