from __future__ import annotations

import json
import math
from importlib import resources

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reader.metro import (
    BEIJING_2014,
    FareTable,
    MetroDataError,
    MetroError,
    MetroNetwork,
    NoRoute,
    Station,
    UnknownStation,
)

NET = MetroNetwork.load()
CODES = sorted(NET.stations)
codes = st.sampled_from(CODES)


def km(a: str, b: str) -> float:
    return NET.distance_km(NET.find(a), NET.find(b))


# --- the packaged network -------------------------------------------------------------------------

def test_packaged_network_shape():
    assert sorted(NET.lines, key=int) == ["1", "2", "4", "10"]
    assert all(len(stops) == 14 for stops in NET.lines.values())
    assert len(NET.stations) == 47  # 56 stops, 9 of them transfer stations counted twice
    assert NET.station(0x010D) == Station(0x010D, "Xidan", "西单", ("1", "4"))
    assert NET.find("Xizhimen").lines == ("2", "4")
    assert NET.find("Guomao").lines == ("1", "10")


def test_codes_are_16_bit_and_name_the_home_line():
    for code, station in NET.stations.items():
        assert station.code == code
        assert 0 < code <= 0xFFFF
        # high byte: the lowest-numbered line serving the station
        assert code >> 8 == min(int(line) for line in station.lines)
    # low byte: position in the full line, counting stations this subset omits
    assert NET.find("Wukesong").code == 0x0106      # 6th from Pingguoyuan
    assert NET.find("Fuxingmen").code == 0x010C     # on lines 1 and 2, one code
    assert NET.find("Jiaomen West").code == 0x0417  # on lines 4 and 10
    assert NET.find("Gongzhufen").code == 0x0108


def test_load_from_path_matches_packaged(tmp_path):
    path = tmp_path / "net.json"
    path.write_text((resources.files("reader") / "data" / "metro_beijing.json").read_text("utf-8"), "utf-8")
    other = MetroNetwork.load(path)
    assert other.stations == NET.stations
    assert other.lines == NET.lines


# --- distances ------------------------------------------------------------------------------------

def test_distance_along_one_line():
    # 1.778 + 1.313 + 1.172 + 1.166 + 1.715 (via Nanlishilu) + 1.590
    assert km("Wukesong", "Xidan") == pytest.approx(8.734)
    assert km("Xidan", "Xidan") == 0.0


def test_loop_closes():
    # line 2 is a loop: Xizhimen and Jishuitan are neighbours, not 12 stops apart
    assert km("Xizhimen", "Jishuitan") == pytest.approx(1.899)
    assert km("Bagou", "Gongzhufen") == pytest.approx(8.851)  # line 10 closes the same way


def test_transfer_line_1_to_line_4_at_xidan():
    # Wangfujing -(1)- Tian'anmen East - Tian'anmen West - Xidan -(4)- Xuanwumen: 0.852+0.925+1.217+0.815
    assert km("Wangfujing", "Xuanwumen") == pytest.approx(3.809)


def test_transfer_prefers_shorter_line():
    # Fuxingmen to Xizhimen: line 2 (1.832+0.960+0.909) beats line 1 to Xidan then line 4 (6.695)
    assert km("Fuxingmen", "Xizhimen") == pytest.approx(3.701)


def test_route_over_three_lines():
    # Dawanglu -(1)- Jianguomen -(2)- Xuanwumen -(4)- Beijing South:
    # 1.385+2.162 + 0.945+1.023+1.634+2.022 + 1.152+2.843
    assert km("Dawanglu", "Beijing South Railway Station") == pytest.approx(13.166)
    # Bagou -(10)- Haidian Huangzhuang -(4)- Xidan -(1)- Dawanglu: 2.060 + 11.835 + 8.545
    assert km("Bagou", "Dawanglu") == pytest.approx(22.440)


def test_dijkstra_agrees_with_floyd_warshall():
    inf = math.inf
    d = {a: {b: (0.0 if a == b else inf) for b in CODES} for a in CODES}
    for a, neighbours in NET.links.items():
        for b, metres in neighbours.items():
            d[a][b] = metres / 1000
    for k in CODES:
        for i in CODES:
            for j in CODES:
                d[i][j] = min(d[i][j], d[i][k] + d[k][j])
    for a in CODES:
        for b in CODES:
            assert NET.distance_km(a, b) == pytest.approx(d[a][b])


@given(codes, codes)
def test_distance_is_symmetric(a, b):
    assert NET.distance_km(a, b) == NET.distance_km(b, a)
    assert (NET.distance_km(a, b) == 0) == (a == b)


@given(codes, codes, codes)
def test_triangle_inequality(a, b, c):
    assert NET.distance_km(a, c) <= NET.distance_km(a, b) + NET.distance_km(b, c) + 1e-9


def test_disconnected_network_has_no_route():
    doc = {"stations": [{"code": f"0x010{i}", "name": n, "name_zh": n} for i, n in enumerate("ABCD", 1)],
           "lines": [{"id": "1", "loop": False, "stops": ["A", "B"], "km": [1.0]},
                     {"id": "2", "loop": False, "stops": ["C", "D"], "km": [2.5]}]}
    net = MetroNetwork.from_dict(doc)
    assert net.distance_km(0x0101, 0x0102) == 1.0
    with pytest.raises(NoRoute, match=r"no route from A .* to C"):
        net.distance_km(0x0101, 0x0103)


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d["stations"].append({"code": "0x0101", "name": "E", "name_zh": "E"}), "duplicate"),
    (lambda d: d["stations"].__setitem__(0, {"code": "0x10000", "name": "A", "name_zh": "A"}), "16-bit"),
    (lambda d: d["lines"][0]["stops"].append("Z"), "unknown: \\['Z'\\]"),
    (lambda d: d["lines"][0]["km"].append(1.0), "2 for 1"),
    (lambda d: d["lines"][0].__setitem__("km", [0]), "positive"),
    (lambda d: d["stations"][1].__setitem__("name_zh", "a"), "name 'a' is ambiguous"),
    (lambda d: d["stations"].append({"code": "0x0105", "name": "E", "name_zh": "E"}), r"on no line: \['E'\]"),
    (lambda d: d.pop("lines"), "'lines' must be a list"),
])
def test_bad_network_data_is_rejected(change, message):
    doc = {"stations": [{"code": "0x0101", "name": "A", "name_zh": "A"},
                        {"code": "0x0102", "name": "B", "name_zh": "B"}],
           "lines": [{"id": "1", "loop": False, "stops": ["A", "B"], "km": [1.0]}]}
    change(doc)
    with pytest.raises(MetroDataError, match=message):
        MetroNetwork.from_dict(json.loads(json.dumps(doc)))


# --- fares ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("distance", "fen"), [
    (0, 300), (0.5, 300), (6, 300), (6.001, 400),
    (12, 400), (12.001, 500), (22, 500), (22.001, 600),
    (32, 600), (32.001, 700), (52, 700), (52.001, 800), (72, 800), (72.5, 900),
])
def test_beijing_2014_fare_boundaries(distance, fen):
    assert BEIJING_2014.fare_fen(distance) == fen
    assert FareTable().fare_fen(distance) == fen


@pytest.mark.parametrize("distance", [-0.1, math.nan, math.inf])
def test_fare_rejects_nonsense_distance(distance):
    with pytest.raises(ValueError, match="distance"):
        BEIJING_2014.fare_fen(distance)


def test_fare_table_must_increase():
    with pytest.raises(ValueError, match="increasing"):
        FareTable(bands=((12, 400), (6, 300)))


def test_fares_between_stations():
    xidan = NET.find("Xidan")
    assert NET.fare_fen(xidan, xidan) == 300  # same-station exit: Beijing charges the base fare
    assert NET.fare_fen(NET.find("Wangfujing"), NET.find("Xuanwumen")) == 300  # 3.809 km
    assert NET.fare_fen(NET.find("Wukesong").code, xidan.code) == 400         # 8.734 km
    assert NET.fare_fen(NET.find("Dawanglu"), NET.find("北京南站")) == 500      # 13.166 km
    assert NET.fare_fen(NET.find("Bagou"), NET.find("Dawanglu")) == 600       # 22.440 km


# --- finding stations -----------------------------------------------------------------------------

@pytest.mark.parametrize("query", ["Xidan", "xidan", "  XIDAN ", "西单", "269", "0x010D", "0x10d", "0X010d"])
def test_find_xidan(query):
    assert NET.find(query) is NET.station(0x010D)


def test_find_ignores_punctuation_and_spaces():
    assert NET.find("tiananmen west").code == 0x010E
    assert NET.find("Beijing south railway station").name_zh == "北京南站"


def test_typo_suggests_the_station():
    with pytest.raises(UnknownStation, match=r"unknown station 'Xidna'; did you mean Xidan\?") as info:
        NET.find("Xidna")
    assert info.value.suggestions == ("Xidan",)
    with pytest.raises(UnknownStation) as info:
        NET.find("Wangfujin")
    assert info.value.suggestions[0] == "Wangfujing"


def test_nothing_close_suggests_nothing():
    with pytest.raises(UnknownStation) as info:
        NET.find("Heathrow Terminal 5")
    assert info.value.suggestions == ()
    assert str(info.value) == "unknown station 'Heathrow Terminal 5'"


@pytest.mark.parametrize("query", ["0x0999", "2457", "0", "0x"])
def test_find_unknown_code(query):
    with pytest.raises(UnknownStation, match="unknown station"):
        NET.find(query)


def test_unknown_code_raises():
    with pytest.raises(UnknownStation, match="unknown station '0x0999'") as info:
        NET.station(0x0999)
    assert isinstance(info.value, MetroError)
    assert isinstance(info.value, LookupError)
    with pytest.raises(UnknownStation, match="0x0999"):
        NET.distance_km(0x0999, 0x010D)
