"""The OTA bench's figures and the markdown table that sets them against issue 17's targets."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Round:
    """One measured issuer process. CPU in seconds and syscalls per measured top-up; the
    counts per top-up the process served (warm-up included)."""

    rate: float  # completed top-ups per second
    latencies: list[float]  # seconds, each a whole top-up
    client: float
    issuer: float
    postgres: float
    waits: float  # PostgreSQL backends' voluntary context switches: round trips and other waits
    reads: float
    writes: float
    transactions: float  # PostgreSQL's count (pg_stat_database)
    sessions: float  # new PostgreSQL connections
    sql: dict[str, float] | None  # the issuer's own counts; None without its counters
    ended: int  # backends that ended while sampled


@dataclass(frozen=True, slots=True)
class Setting:
    workers: int
    rounds: list[Round]

    def median(self, figure: Callable[[Round], float]) -> float:
        return statistics.median(figure(r) for r in self.rounds)

    def percentile(self, cut: int) -> float:
        latencies = [latency for r in self.rounds for latency in r.latencies]
        return statistics.quantiles(latencies, n=100)[cut - 1] if len(latencies) > 1 else latencies[0]

    def counted(self, name: str) -> str:
        if any(r.sql is None for r in self.rounds):
            return "n/a"
        return f"{self.median(lambda r: r.sql[name] if r.sql else 0.0):.1f}"


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


def served(setting: Setting) -> float:
    """Issuer plus PostgreSQL CPU per top-up, seconds: what the servers pay."""
    return setting.median(lambda r: r.issuer + r.postgres)


ROWS: list[tuple[str, str, Callable[[Setting], str]]] = [
    ("completed OTA top-ups per second (median of rounds)", "≥ 400",
     lambda s: f"{s.median(lambda r: r.rate):,.0f}"),
    ("top-up latency p50 / p99 (3 HTTP requests each)", "p99 < 50 ms at ≥ 400/s",
     lambda s: f"{ms(s.percentile(50))} / {ms(s.percentile(99))}"),
    ("CPU per top-up: load generator (companions and bands)", "—",
     lambda s: ms(s.median(lambda r: r.client))),
    ("CPU per top-up: issuer (all its processes)", "—", lambda s: ms(s.median(lambda r: r.issuer))),
    ("CPU per top-up: PostgreSQL (the bench database's backends)", "≤ 1.5 x pgbench floor",
     lambda s: ms(s.median(lambda r: r.postgres))),
    ("**issuer + PostgreSQL CPU per top-up**", "≤ 2.0 ms", lambda s: ms(served(s))),
    ("projected top-ups/s per two server cores (2 s / issuer + PostgreSQL)", "≥ 1,000",
     lambda s: f"{2 / served(s):,.0f}"),
    ("ceiling on this machine's 2 cores, load generator included", "—",
     lambda s: f"{2 / s.median(lambda r: r.client + r.issuer + r.postgres):,.0f}"),
    ("SQL statements per top-up (issuer's count)", "fewest possible (26 before)",
     lambda s: s.counted("statements")),
    ("transactions per top-up (issuer's count)", "fewest possible (6 before)",
     lambda s: s.counted("transactions")),
    ("round trips to PostgreSQL per top-up (issuer's count)", "fewest possible (≈ 45 before)",
     lambda s: s.counted("round_trips")),
    ("transactions per top-up (PostgreSQL's pg_stat_database)", "as the issuer counts",
     lambda s: f"{s.median(lambda r: r.transactions):.1f}"),
    ("new PostgreSQL connections per top-up", "≈ 0 (pool sized to concurrency)",
     lambda s: f"{s.median(lambda r: r.sessions):.2f}"),
    ("PostgreSQL backends' waits per top-up (voluntary context switches: round trips, "
     "locks, WAL flushes)", "—", lambda s: f"{s.median(lambda r: r.waits):.1f}"),
    ("PostgreSQL backends' read / write syscalls per top-up (file I/O; recv/send not counted)",
     "—", lambda s: f"{s.median(lambda r: r.reads):.1f} / {s.median(lambda r: r.writes):.1f}"),
]


def report(settings: list[Setting]) -> None:
    """Print the table, one column per worker count, and what qualifies its figures."""
    heads = [f"{s.workers} worker{'s' if s.workers > 1 else ''}" for s in settings]
    print(f"| figure | target | {' | '.join(heads)} |")
    print(f"|---|---|{'---|' * len(settings)}")
    for figure, target, cell in ROWS:
        print(f"| {figure} | {target} | {' | '.join(cell(s) for s in settings)} |")
    if any(r.sql is None for s in settings for r in s.rounds):
        print("\nn/a: the issuer wrote no KOALA_SQL_COUNTS files (an issuer without the counters).")
    ended = sum(r.ended for s in settings for r in s.rounds)
    if ended:
        print(f"\n{ended} PostgreSQL backend(s) ended mid-round: the CPU each spent after its last "
              f"sample (every 20 ms) is missing from the PostgreSQL figure.")
