"""The metro network a gate needs to charge a fare by distance.

Stations, the lines joining them and the km between neighbours come from a JSON
file; the packaged one is a subset of the Beijing Subway (its ``source`` and
``codes`` fields say where the figures come from and how codes are assigned).
A station has one 16-bit code however many lines serve it: that code is what
the card's transit record stores, and sharing it makes a transfer the same
graph node, so changing lines costs 0 km. Distances are shortest paths over
the network, summed in whole metres so they are exact and symmetric.
"""

from __future__ import annotations

import difflib
import heapq
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
_CODE = re.compile(r"0x[0-9a-f]+|[0-9]+")


class MetroError(Exception):
    """Base of everything this module raises about the network."""


class MetroDataError(MetroError, ValueError):
    """The network file is malformed or inconsistent."""


class UnknownStation(MetroError, LookupError):
    """No station has this code or name; ``suggestions`` are close names, best first."""

    def __init__(self, query: str, suggestions: tuple[str, ...] = ()) -> None:
        self.query = query
        self.suggestions = suggestions
        hint = f"; did you mean {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(f"unknown station {query!r}{hint}")


class NoRoute(MetroError):
    """The two stations are not connected by any line."""


@dataclass(frozen=True, slots=True)
class Station:
    """One physical station: its 16-bit code, names, and the ids of the lines serving it."""

    code: int
    name: str
    name_zh: str
    lines: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.name} ({self.name_zh}, 0x{self.code:04X})"


@dataclass(frozen=True, slots=True)
class FareTable:
    """Fare by distance: ``bands`` of (up to km inclusive, fen), then ``step_fen`` per ``step_km`` or part."""

    bands: tuple[tuple[float, int], ...] = ((6, 300), (12, 400), (22, 500), (32, 600))
    step_km: float = 20
    step_fen: int = 100

    def __post_init__(self) -> None:
        limits = [limit for limit, _ in self.bands]
        if not limits or limits != sorted(set(limits)) or self.step_km <= 0:
            raise ValueError(f"fare bands must be non-empty and increasing: {self.bands!r}")

    def fare_fen(self, distance_km: float) -> int:
        """The fare in fen. Distance 0 (entry and exit at the same station) falls in the
        first band: Beijing charges the base fare for it, since the rider used a gate."""
        if not math.isfinite(distance_km) or distance_km < 0:
            raise ValueError(f"distance must be a finite number of km >= 0, not {distance_km!r}")
        for limit, fen in self.bands:
            if distance_km <= limit:
                return fen
        limit, fen = self.bands[-1]
        return fen + self.step_fen * math.ceil((distance_km - limit) / self.step_km)


BEIJING_2014 = FareTable()  # 3 yuan to 6 km, 4 to 12, 5 to 22, 6 to 32, then +1 per 20 km or part


def _key(text: str) -> str:
    """Lookup key for a name: case-folded, letters and digits only ("Tian'anmen" == "tiananmen")."""
    return "".join(ch for ch in text.casefold() if ch.isalnum())


def _get(obj: Any, key: str, kind: type[T]) -> T:
    value = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(value, kind):
        raise MetroDataError(f"{key!r} must be a {kind.__name__}, got {value!r} in {obj!r}")
    return value


def _metres(km: Any, where: str) -> int:
    if not isinstance(km, int | float) or isinstance(km, bool) or not km > 0:
        raise MetroDataError(f"{where}: distance must be a positive number of km, got {km!r}")
    return round(km * 1000)


@dataclass(frozen=True, eq=False)
class MetroNetwork:
    """Stations by code, each line's stops in order, and the track between neighbours."""

    stations: Mapping[int, Station]
    lines: Mapping[str, tuple[int, ...]]
    links: Mapping[int, Mapping[int, int]] = field(repr=False)  # code -> neighbour -> metres
    #: each line's hops in order (from, to, metres), a loop's closing hop included
    hops: Mapping[str, tuple[tuple[int, int, int], ...]] = field(default_factory=dict, repr=False)
    owners: Mapping[str, str] = field(default_factory=dict)  # line -> its operator
    speeds: Mapping[str, float] = field(default_factory=dict)  # line -> km/h between stops
    dwell_s: int = 30  # at each stop
    transfer_s: int = 300  # the walk and the wait of a change of line
    _names: dict[str, int] = field(init=False, repr=False, default_factory=dict)
    _from: dict[int, dict[int, int]] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        for station in self.stations.values():
            for name in (station.name, station.name_zh):
                if self._names.setdefault(_key(name), station.code) != station.code:
                    raise MetroDataError(f"station name {name!r} is ambiguous")

    @classmethod
    def load(cls, path: str | Path | None = None) -> MetroNetwork:
        """Load a network file; by default the packaged Beijing subset."""
        if path is None:
            text = (resources.files("reader") / "data" / "metro_beijing.json").read_text(encoding="utf-8")
        else:
            text = Path(path).read_text(encoding="utf-8")
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise MetroDataError(f"network file is not JSON: {exc}") from exc

    @classmethod
    def from_dict(cls, doc: Any) -> MetroNetwork:
        """Build from the file's parsed JSON, rejecting anything inconsistent with :class:`MetroDataError`."""
        raw: dict[str, tuple[int, str]] = {}  # name -> (code, Chinese name)
        codes: set[int] = set()
        for entry in _get(doc, "stations", list):
            name, code_text = _get(entry, "name", str), _get(entry, "code", str)
            code = int(code_text, 16) if re.fullmatch(r"0[xX][0-9a-fA-F]{1,4}", code_text) else -1
            if code < 0 or name in raw or code in codes:
                raise MetroDataError(f"station {name!r}: bad or duplicate name or 16-bit code {code_text!r}")
            raw[name] = (code, _get(entry, "name_zh", str))
            codes.add(code)
        lines: dict[str, tuple[int, ...]] = {}
        hops_of: dict[str, tuple[tuple[int, int, int], ...]] = {}
        owners: dict[str, str] = {}
        speeds: dict[str, float] = {}
        links: dict[int, dict[int, int]] = {code: {} for code, _ in raw.values()}
        served: dict[str, list[str]] = {name: [] for name in raw}
        for line in _get(doc, "lines", list):
            line_id, stops, kms = _get(line, "id", str), _get(line, "stops", list), _get(line, "km", list)
            unknown = [stop for stop in stops if not isinstance(stop, str) or stop not in raw]
            following = stops[1:] + stops[:1] if _get(line, "loop", bool) else stops[1:]
            hops = list(zip(stops[: len(following)], following, strict=True))
            if line_id in lines or unknown or len(stops) < 2 or len(kms) != len(hops):
                raise MetroDataError(f"line {line_id!r} needs a new id, >= 2 known stops "
                                     f"(unknown: {unknown}) and one km per hop ({len(kms)} for {len(hops)})")
            track = []
            for (a, b), km in zip(hops, kms, strict=True):
                metres, ca, cb = _metres(km, f"line {line_id} {a}-{b}"), raw[a][0], raw[b][0]
                links[ca][cb] = links[cb][ca] = min(metres, links[ca].get(cb, metres))
                track.append((ca, cb, metres))
            lines[line_id] = tuple(raw[stop][0] for stop in stops)
            hops_of[line_id] = tuple(track)
            owners[line_id] = str(line.get("operator", doc.get("network", "metro")))
            speed = line.get("speed_kmh", 35)
            if not isinstance(speed, int | float) or isinstance(speed, bool) or speed <= 0:
                raise MetroDataError(f"line {line_id!r}: speed_kmh must be a positive number")
            speeds[line_id] = float(speed)
            for stop in dict.fromkeys(stops):
                served[stop].append(line_id)
        if orphans := [name for name, ids in served.items() if not ids]:
            raise MetroDataError(f"stations on no line: {orphans}")
        stations = {code: Station(code, name, zh, tuple(served[name])) for name, (code, zh) in raw.items()}
        timing = {key: doc[key] for key in ("dwell_s", "transfer_s") if key in doc}
        if any(not isinstance(value, int) or isinstance(value, bool) or value < 0
               for value in timing.values()):
            raise MetroDataError(f"dwell_s and transfer_s are whole seconds >= 0: {timing}")
        return cls(stations, lines, links, hops_of, owners, speeds, **timing)

    def station(self, code: int) -> Station:
        try:
            return self.stations[code]
        except KeyError:
            raise UnknownStation(f"0x{code:04X}" if code >= 0 else str(code)) from None

    def find(self, name_or_code: str) -> Station:
        """A station by English or Chinese name (any case, punctuation ignored) or code (decimal or 0xHEX)."""
        text = name_or_code.strip()
        if _CODE.fullmatch(folded := text.casefold()):
            number = int(folded, 16) if folded.startswith("0x") else int(folded)
            if number not in self.stations:
                raise UnknownStation(text)
            return self.stations[number]
        code = self._names.get(_key(text))
        if code is None:
            close = difflib.get_close_matches(_key(text), self._names, n=3, cutoff=0.6)
            suggestions = dict.fromkeys(self.stations[self._names[key]].name for key in close)
            raise UnknownStation(text, tuple(suggestions))
        return self.stations[code]

    def distance_km(self, a: Station | int, b: Station | int) -> float:
        """Shortest distance over the network; transfers cost nothing."""
        start, end = (self.station(x if isinstance(x, int) else x.code).code for x in (a, b))
        if end in self._from and start not in self._from:
            start, end = end, start  # distances are symmetric: reuse a cached tree
        metres = self._tree(start).get(end)
        if metres is None:
            raise NoRoute(f"no route from {self.stations[start]} to {self.stations[end]}")
        return metres / 1000

    def fare_fen(self, a: Station | int, b: Station | int, table: FareTable = BEIJING_2014) -> int:
        return table.fare_fen(self.distance_km(a, b))

    def _tree(self, source: int) -> dict[int, int]:
        """Dijkstra from ``source``: metres to every reachable station, cached per source."""
        if (done := self._from.get(source)) is not None:
            return done
        done, heap = {}, [(0, source)]
        while heap:
            metres, code = heapq.heappop(heap)
            if code not in done:
                done[code] = metres
                for neighbour, step in self.links[code].items():
                    if neighbour not in done:
                        heapq.heappush(heap, (metres + step, neighbour))
        self._from[source] = done
        return done
