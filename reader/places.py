"""Terminal identifiers: how a 6-byte terminal id says where a transaction happened.

The card's log (EF 0x18) keeps only the terminal id, so our terminals encode
their place in it, and a history view decodes it back:

===============  ========================================
10 00 SS SS GG GG  metro gate GGGG at station SSSS
20 00 RR RR RR 00  bus validator on route RRRRRR (BCD)
30 00 00 00 00 NN  canteen till NN
99 00 00 00 00 NN  load terminal NN (issuer counter)
===============  ========================================
"""

from __future__ import annotations

from applets import bcd
from reader.metro import MetroError, MetroNetwork

METRO, BUS, TILL, LOAD = 0x10, 0x20, 0x30, 0x99
MAX_ROUTE_DIGITS = 6


def gate_id(station_code: int, gate: int = 1) -> bytes:
    return bytes((METRO, 0x00)) + station_code.to_bytes(2) + gate.to_bytes(2)


def bus_id(route: str) -> bytes:
    if not route.isdigit() or len(route) > MAX_ROUTE_DIGITS:
        raise ValueError(f"a bus route is 1 to {MAX_ROUTE_DIGITS} digits, got {route!r}")
    return bytes((BUS, 0x00)) + bcd.encode(route.rjust(MAX_ROUTE_DIGITS, "0"))[:3] + b"\x00"


def till_id(number: int = 1) -> bytes:
    return bytes((TILL, 0, 0, 0, 0, number))


def load_id(number: int = 1) -> bytes:
    return bytes((LOAD, 0, 0, 0, 0, number))


#: The issuer's over-the-air load terminal: top-ups through the phone.
OTA_LOAD = load_id(0x0A)


def station_code(terminal_id: bytes) -> int:
    """The station of a metro gate's terminal id."""
    return int.from_bytes(terminal_id[2:4])


def station_name(terminal_id: bytes, network: MetroNetwork) -> str:
    """The station of a metro gate's terminal id by name, or by code if not on ``network``."""
    code = station_code(terminal_id)
    try:
        return network.station(code).name
    except MetroError:
        return f"station {code:04X}"


def describe(terminal_id: bytes, network: MetroNetwork) -> str:
    """A place name for a terminal id, or its hex if it is not one of ours."""
    kind = terminal_id[0]
    if kind == METRO:
        return f"metro {station_name(terminal_id, network)}"
    if kind == BUS:
        try:
            return f"bus {int(bcd.decode(terminal_id[2:5]))}"
        except ValueError:
            pass
    if kind == TILL:
        return f"canteen till {terminal_id[-1]}"
    if terminal_id == OTA_LOAD:
        return "over the air (issuer)"
    if kind == LOAD:
        return f"load machine {terminal_id[-1]}"
    return f"terminal {terminal_id.hex().upper()}"
