"""CPU and system calls of one database's client backends on a local PostgreSQL, from /proc.

PostgreSQL's CPU for a top-up is spent in the backends that serve the issuer's
connections, and only those: the server is shared (other engineers' tests run
on it), so neither all postgres processes nor the postmaster's reaped-children
times are ours. The bench's database has a name of its own, which every one of
its backends shows in its process title (``postgres: 15/main: postgres
koala_bench_… 127.0.0.1(…) idle``), so :class:`Backends` finds them among the
postmaster's children without a query to the server it measures.

A backend's CPU can only be read while it lives, and a pool may open and
close connections during a run. So a thread samples every ``interval``: a
backend already there at the start counts from its first sample, one born
during the run from zero (its fork and authentication are the run's cost). A
backend that ends loses only the CPU after its last sample, and one that lives
less than ``interval`` may be missed: :attr:`Backends.ended` says how many
ended, for the caller to print. CPU comes from /proc/<pid>/schedstat, in
nanoseconds (a backend is one thread), not from clock ticks.

Round trips: a backend sleeps once each time it waits for the client's next
message, so its voluntary context switches count round trips (1,000 ``SELECT
1`` make 996), plus its other waits (a lock, a WAL flush). Its read and write
syscalls (/proc/<pid>/io ``syscr``, ``syscw``) do *not* count the network:
PostgreSQL talks to its sockets with recv() and send(), which those counters
leave out; they count its file I/O (pages missing from shared buffers, WAL
writes) and its latch.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType


@dataclass(frozen=True, slots=True)
class Usage:
    cpu: float = 0.0  # seconds on a CPU
    waits: int = 0  # voluntary context switches
    reads: int = 0  # read syscalls
    writes: int = 0  # write syscalls

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.cpu + other.cpu, self.waits + other.waits, self.reads + other.reads,
                     self.writes + other.writes)

    def __sub__(self, other: Usage) -> Usage:
        return Usage(self.cpu - other.cpu, self.waits - other.waits, self.reads - other.reads,
                     self.writes - other.writes)


def stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat after the command name (field 3 onwards); OSError once it ended."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def parent(pid: int) -> int:
    return int(stat_fields(pid)[1])


def _fields(path: str, separator: str) -> dict[str, str]:
    lines = Path(path).read_text().splitlines()
    return dict(line.split(separator, 1) for line in lines if separator in line)


def usage(pid: int) -> Usage:
    """A single-threaded process's CPU, waits and syscalls so far; OSError once it ended."""
    ran = int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
    waits = int(_fields(f"/proc/{pid}/status", ":")["voluntary_ctxt_switches"])
    io = _fields(f"/proc/{pid}/io", ": ")
    return Usage(ran / 1e9, waits, int(io["syscr"]), int(io["syscw"]))


class Backends:
    """The client backends of ``database`` under ``postmaster``, sampled while in a ``with``."""

    def __init__(self, postmaster: int, database: str, interval: float = 0.02) -> None:
        self._children = Path(f"/proc/{postmaster}/task/{postmaster}/children")
        self._marker = f" {database} "
        self._interval = interval
        self._ours: dict[tuple[int, str], bool] = {}  # (pid, start time): a backend of ours?
        self._keys: dict[int, tuple[int, str]] = {}  # the children known by pid
        self._first: dict[tuple[int, str], Usage] = {}
        self._last: dict[tuple[int, str], Usage] = {}
        self._started = False
        self._lock = threading.Lock()  # the caller may add pids while the thread samples
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.overhead = 0.0  # the sampler's own CPU, seconds: the caller's, not the server's
        self.ended = 0

    def __enter__(self) -> Backends:
        self.sample()
        self._started = True
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()
        alive = self.sample()
        self.ended = sum(1 for key in self._last if key not in alive)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.sample()
        self.overhead = time.thread_time()

    def sample(self, pids: list[int] | None = None) -> set[tuple[int, str]]:
        """Read every backend of ours (or ``pids``, taken as ours: from pg_stat_activity); the
        ones alive."""
        alive = set()
        with self._lock:
            listed = pids if pids is not None else [int(p) for p in self._children.read_text().split()]
            if pids is None:  # a pid gone from the list may come back as another process
                self._keys = {pid: key for pid, key in self._keys.items() if pid in listed}
            for pid in listed:
                try:
                    key = self._keys.get(pid) or (pid, stat_fields(pid)[19])  # its start time
                    if key not in self._ours and not self._classify(key, pids is not None):
                        continue
                    self._keys[pid] = key
                    if self._ours[key]:
                        now = usage(pid)
                        self._first.setdefault(key, now if not self._started else Usage())
                        self._last[key] = now
                        alive.add(key)
                except OSError:  # ended meanwhile
                    continue
        return alive

    def _classify(self, key: tuple[int, str], ours: bool) -> bool:
        """Whether the process is known now: a new backend shows the postmaster's command line
        until it has read its connection's startup packet (user and database)."""
        title = Path(f"/proc/{key[0]}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        if not ours and not title.startswith("postgres: "):
            return False
        self._ours[key] = ours or (self._marker in title and "autovacuum" not in title)
        return True

    @property
    def total(self) -> Usage:
        """What the backends of ours spent while sampled."""
        spent = Usage()
        for key, last in self._last.items():
            spent += last - self._first[key]
        return spent
