"""Fare split known answers on small networks computed by hand.

Every network runs at 36 km/h (10 m/s) with a 30 s dwell, so a hop of d metres takes
d / 10 + 30 seconds, and a change of line ``transfer_s``.
"""

from __future__ import annotations

from fractions import Fraction

import pytest

from reader.metro import MetroNetwork
from reader.routes import Splitter, quickest_routes, split_fare


def network(lines, transfer_s=300):
    names = sorted({stop for _, _, stops, _ in lines for stop in stops})
    return MetroNetwork.from_dict({
        "network": "test", "dwell_s": 30, "transfer_s": transfer_s,
        "stations": [{"code": f"0x{n + 1:04X}", "name": name, "name_zh": name}
                     for n, name in enumerate(names)],
        "lines": [{"id": line, "operator": operator, "speed_kmh": 36, "loop": False,
                   "stops": stops, "km": km} for line, operator, stops, km in lines]})


def code(net, name):
    return net.find(name).code


def test_one_operator_takes_the_whole_fare():
    net = network([("L1", "Alpha", ["A", "B", "C"], [2, 3])])
    assert Splitter(net).split(code(net, "A"), code(net, "C"), 400) == {"Alpha": 400}


def test_two_operators_with_a_transfer_split_by_km():
    # P-Q 4 km on North's line, Q-R 6 km on South's: 4/10 and 6/10 of 500 fen.
    net = network([("N", "North", ["P", "Q"], [4]), ("S", "South", ["Q", "R"], [6])])
    routes = quickest_routes(net, code(net, "P"), code(net, "R"))
    assert [route.legs for route in routes] == [(("N", 4000), ("S", 6000))]
    assert routes[0].ms == (400 + 30 + 300 + 600 + 30) * 1000
    assert Splitter(net).split(code(net, "P"), code(net, "R"), 500) == {"North": 200, "South": 300}


# A to C: direct on One's line A-B-C (5 + 5 km): 2 * (500 + 30) = 1060 s; or on Two's lines
# A-D (3 km), change at D, D-C (3 km): 330 + transfer + 330 s. The transfer penalty decides:
# 300 s: 960 s, Two's route; 400 s: 1060 s, a tie, half each; 500 s: 1160 s, One's route.
@pytest.mark.parametrize(("transfer_s", "expected"), [
    (300, {"Two": 500}),
    (400, {"One": 250, "Two": 250}),
    (500, {"One": 500}),
])
def test_the_transfer_penalty_picks_the_route_and_a_tie_splits_it(transfer_s, expected):
    net = network([("L1", "One", ["A", "B", "C"], [5, 5]), ("L2", "Two", ["A", "D"], [3]),
                   ("L3", "Two", ["D", "C"], [3])], transfer_s)
    assert Splitter(net).split(code(net, "A"), code(net, "C"), 500) == expected


def test_two_equal_routes_of_two_operators_split_evenly_and_the_odd_fen_goes_by_name():
    # A-B-D on Alpha's line and A-C-D on Beta's, 2 + 2 km each: equally quick, half each;
    # 301 fen is 150.5 each, and the odd fen goes to Alpha, first by name.
    net = network([("L1", "Alpha", ["A", "B", "D"], [2, 2]), ("L2", "Beta", ["A", "C", "D"], [2, 2])])
    assert len(quickest_routes(net, code(net, "A"), code(net, "D"))) == 2
    assert Splitter(net).split(code(net, "A"), code(net, "D"), 301) == {"Alpha": 151, "Beta": 150}


def test_parts_always_add_up_to_the_fare():
    for fare in range(0, 1000, 7):
        shares = {"a": Fraction(1, 3), "b": Fraction(1, 3), "c": Fraction(1, 3)}
        assert sum(split_fare(fare, shares).values()) == fare


def test_the_beijing_network_splits_a_ride_over_line_4_and_line_1():
    net = MetroNetwork.load()
    parts = Splitter(net).split(net.find("Xizhimen").code, net.find("Guomao").code, 500)
    assert sum(parts.values()) == 500 and set(parts) == {"Beijing MTR", "Beijing Subway"}
