"""Origin-destination demand: mornings from homes to jobs, afternoons back, the same trips
for the same seed, every weighted station one of the network's."""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime

from city.demand import WEIGHTS, Demand
from city.riders import riders
from reader.metro import MetroNetwork

GUOMAO, SONGJIAZHUANG = 276, 2587  # the CBD; the south-eastern end of line 10
TRIPS = 4000


def trips(morning: bool, seed: int = 1) -> list[tuple[int, int]]:
    demand = Demand.of(sorted(MetroNetwork.load().stations.values(), key=lambda s: s.code))
    rng = random.Random(seed)
    return [(a.code, b.code) for a, b in (demand.trip(rng, morning) for _ in range(TRIPS))]


def test_every_weighted_station_is_on_the_network() -> None:
    assert set(WEIGHTS) <= set(MetroNetwork.load().stations)


def test_mornings_go_from_homes_to_jobs_and_afternoons_back() -> None:
    for morning, home, work in ((True, SONGJIAZHUANG, GUOMAO), (False, GUOMAO, SONGJIAZHUANG)):
        made = trips(morning)
        origins, destinations = Counter(a for a, _ in made), Counter(b for _, b in made)
        assert origins[home] > 3 * origins[work]
        assert destinations[work] > 3 * destinations[home]
        assert all(a != b for a, b in made)


def test_the_same_seed_makes_the_same_trips() -> None:
    assert trips(True, seed=7) == trips(True, seed=7) != trips(True, seed=8)


def test_a_mornings_riders_head_for_the_centre() -> None:
    def central(code: int) -> bool:
        homes, jobs = WEIGHTS.get(code, (1, 1))
        return jobs > homes

    made = list(riders(MetroNetwork.load(), 60, datetime(2026, 11, 23, 7), datetime(2026, 11, 23, 9)))
    into = sum(central(rider.destination.code) for rider in made)
    out_of = sum(central(rider.origin.code) for rider in made)
    assert into > 2 * out_of, (into, out_of)
