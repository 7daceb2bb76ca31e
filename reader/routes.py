"""The route a journey most likely took, and its fare split between the lines' operators.

A metro card records where a rider entered and left, never the way between. Clearing
centres (Beijing's among them: one fare, split between the operators by the lines each
journey used) assume the quickest route: travel time on each line (its km at its speed,
plus a dwell at every stop) and a penalty for each change of line. Where several routes
are equally quick each is as likely, so each carries an equal part of the journey. The
fare is split by the kilometres each operator's lines carried the rider, summed exactly
(fractions) and rounded to whole fen by largest remainder, so the parts add up to the fare.

Times are whole milliseconds, so equal routes tie exactly.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from dataclasses import dataclass
from fractions import Fraction

from reader.metro import MetroNetwork, NoRoute

MAX_ROUTES = 64  # equally quick routes followed at most (real networks have a handful)
Node = tuple[int, str]  # (station code, line)


@dataclass(frozen=True, slots=True)
class Route:
    """One quickest way: its travel time and the metres run on each line, in order."""

    ms: int
    legs: tuple[tuple[str, int], ...]  # (line, metres)


def _hop_ms(network: MetroNetwork, line: str, metres: int) -> int:
    return round(metres * 3600 / network.speeds.get(line, 35.0)) + network.dwell_s * 1000


def _edges(network: MetroNetwork) -> dict[Node, list[tuple[Node, int, int]]]:
    """The graph of (station, line): rides along each line both ways, changes at stations."""
    edges: dict[Node, list[tuple[Node, int, int]]] = defaultdict(list)
    for line, hops in network.hops.items():
        for a, b, metres in hops:
            ms = _hop_ms(network, line, metres)
            edges[(a, line)].append(((b, line), ms, metres))
            edges[(b, line)].append(((a, line), ms, metres))
    for station in network.stations.values():
        for one in station.lines:
            edges[(station.code, one)] += [((station.code, other), network.transfer_s * 1000, 0)
                                           for other in station.lines if other != one]
    return edges


def quickest_routes(network: MetroNetwork, origin: int, destination: int,
                    edges: dict[Node, list[tuple[Node, int, int]]] | None = None) -> list[Route]:
    """Every quickest route from ``origin`` to ``destination`` (up to :data:`MAX_ROUTES`)."""
    edges = edges if edges is not None else _edges(network)
    start = [(origin, line) for line in network.station(origin).lines]
    best: dict[Node, int] = dict.fromkeys(start, 0)
    before: dict[Node, list[tuple[Node, int]]] = defaultdict(list)  # node -> (previous, metres)
    heap = [(0, node) for node in start]
    done: set[Node] = set()
    while heap:
        ms, node = heapq.heappop(heap)
        if node in done:
            continue
        done.add(node)
        for following, step, metres in edges[node]:
            total = ms + step
            known = best.get(following)
            if known is None or total < known:
                best[following], before[following] = total, [(node, metres)]
                heapq.heappush(heap, (total, following))
            elif total == known and following not in done:
                before[following].append((node, metres))
    ends = [(best[(destination, line)], (destination, line))
            for line in network.station(destination).lines if (destination, line) in best]
    if not ends:
        raise NoRoute(f"no route from {network.station(origin)} to {network.station(destination)}")
    quickest = min(ms for ms, _ in ends)
    routes: list[Route] = []
    for ms, end in ends:
        if ms == quickest:
            for path in _paths(end, before, set(start)):
                routes.append(Route(ms, path))
    unique = list(dict.fromkeys(routes))
    return unique[:MAX_ROUTES]


def _paths(end: Node, before: dict[Node, list[tuple[Node, int]]],
           start: set[Node]) -> list[tuple[tuple[str, int], ...]]:
    """The legs of every equally quick path to ``end``, merged by line in order."""
    found: list[tuple[tuple[str, int], ...]] = []

    def walk(node: Node, hops: list[tuple[str, int]], seen: set[Node]) -> None:
        if len(found) >= MAX_ROUTES:
            return
        if node in start:
            legs: list[tuple[str, int]] = []
            for line, metres in reversed(hops):
                if legs and legs[-1][0] == line:
                    legs[-1] = (line, legs[-1][1] + metres)
                elif metres:
                    legs.append((line, metres))
            found.append(tuple(legs))
            return
        for previous, metres in before.get(node, []):
            if previous not in seen:
                walk(previous, [*hops, (node[1], metres)], seen | {previous})

    walk(end, [], {end})
    return found


def operator_shares(network: MetroNetwork, routes: list[Route]) -> dict[str, Fraction]:
    """Each operator's part of a journey (adding up to 1): by km on its lines, averaged over
    the equally quick routes. A journey that went nowhere (in and out at one station) is
    the station's lines' operators', equally."""
    shares: dict[str, Fraction] = defaultdict(Fraction)
    for route in routes:
        total = sum(metres for _, metres in route.legs)
        for line, metres in route.legs:
            shares[network.owners.get(line, "metro")] += Fraction(metres, total * len(routes))
    return dict(shares)


def split_fare(fare: int, shares: dict[str, Fraction]) -> dict[str, int]:
    """``fare`` fen in whole fen by ``shares``: largest remainders get the odd fen (the
    operator first by name where remainders tie), so the parts add up to the fare."""
    exact = {operator: fare * share for operator, share in shares.items()}
    parts = {operator: int(value) for operator, value in exact.items()}
    left = fare - sum(parts.values())
    for operator in sorted(exact, key=lambda name: (-(exact[name] - parts[name]), name))[:left]:
        parts[operator] += 1
    return parts


class Splitter:
    """Journeys' fares split on one network, each origin and destination's shares found once."""

    def __init__(self, network: MetroNetwork) -> None:
        self.network = network
        self._edges = _edges(network)
        self._shares: dict[tuple[int, int], dict[str, Fraction]] = {}

    def shares(self, origin: int, destination: int) -> dict[str, Fraction]:
        known = self._shares.get((origin, destination))
        if known is None:
            if origin == destination:
                owners = sorted({self.network.owners.get(line, "metro")
                                 for line in self.network.station(origin).lines})
                known = {owner: Fraction(1, len(owners)) for owner in owners}
            else:
                known = operator_shares(self.network, quickest_routes(
                    self.network, origin, destination, self._edges))
            self._shares[(origin, destination)] = known
        return known

    def split(self, origin: int, destination: int, fare: int) -> dict[str, int]:
        """The fen each operator gets of a journey's fare."""
        return split_fare(fare, self.shares(origin, destination))
