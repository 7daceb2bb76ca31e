"""Where a city's riders go: origin-destination demand weighted by what is around each station.

A morning's trips start mostly where people live and end mostly where they work (and the
afternoon's the other way round), so the rush hour loads the lines into the centre and not
evenly across the map, and the fare split and the gates' queues with them. Each station has
two relative weights, :data:`WEIGHTS`: its homes and its jobs. They are illustrative (the
outer residential ends of lines 1, 4 and 10 against the CBD, Financial Street, Zhongguancun
and the old town's shopping streets), not survey figures; a station of a network not in the
table weighs 1 both ways.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from reader.metro import Station

#: Station code -> (homes, jobs), relative weights, for ``reader/data/metro_beijing.json``.
WEIGHTS: Mapping[int, tuple[int, int]] = {
    # residential: the outer ends and the neighbourhoods along the lines
    262: (6, 1), 263: (5, 1), 2587: (6, 1), 2597: (5, 1), 1047: (5, 1), 2572: (5, 1),
    2569: (4, 1), 2566: (4, 1), 2561: (4, 1), 2581: (5, 2), 277: (4, 2), 1043: (3, 1),
    529: (3, 1), 530: (3, 2), 527: (3, 1), 1033: (3, 1), 1032: (3, 2),
    # central: offices, banks, shops, ministries
    276: (1, 8), 274: (1, 6), 273: (1, 5), 272: (1, 5), 269: (1, 6), 268: (1, 6),
    524: (1, 4), 526: (2, 4), 513: (2, 5), 2565: (1, 6), 1031: (2, 6), 2578: (1, 5),
    2574: (1, 4), 520: (1, 3), 521: (1, 3),
    # stations of two kinds at once: the railway termini
    522: (2, 3), 1045: (2, 3),
}


@dataclass(frozen=True, slots=True)
class Demand:
    """The stations with their homes' and jobs' weights, ready to draw trips from."""

    stations: Sequence[Station]
    homes: Sequence[int]
    jobs: Sequence[int]

    @classmethod
    def of(cls, stations: Sequence[Station],
           weights: Mapping[int, tuple[int, int]] = WEIGHTS) -> Demand:
        pairs = [weights.get(station.code, (1, 1)) for station in stations]
        return cls(stations, [homes for homes, _ in pairs], [jobs for _, jobs in pairs])

    def trip(self, rng: random.Random, morning: bool) -> tuple[Station, Station]:
        """An origin and another station as destination: from homes to jobs in the morning,
        from jobs to homes after it."""
        starts, ends = (self.homes, self.jobs) if morning else (self.jobs, self.homes)
        origin = rng.choices(range(len(self.stations)), starts)[0]
        ends = list(ends)
        ends[origin] = 0
        destination = rng.choices(range(len(self.stations)), ends)[0]
        return self.stations[origin], self.stations[destination]
