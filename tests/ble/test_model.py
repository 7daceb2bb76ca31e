"""The BLE link model against figures computed by hand from the Bluetooth Core spec.

A link-layer packet is preamble (1 octet at LE 1M, 2 at LE 2M), access address
4, header 2, payload, MIC 4 (encrypted, non-empty payload), CRC 3, at 1 or 2
Mbit/s; packets of a connection event are 150 µs apart. So a full 27-octet
encrypted packet is 41 octets = 328 µs at 1M, and moving it one way with the
peer's empty packet (10 octets, 80 µs) costs 328 + 150 + 80 + 150 = 708 µs.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ble.model import (
    BleLink,
    Phy,
    exchange_time,
    expected_events,
    gatt_values,
    ll_fragments,
    packet_airtime,
    per_event,
    raw_frame,
    relay_time,
    session_time,
    transfer_time,
)

US = 1e-6
MS = 1e-3
SLOW = BleLink.conservative()  # 1M, 30 ms, MTU 23, no DLE, 4 packets an event
FULL = 708 * US  # a full 27-octet packet one way at 1M, with the empty answer and both T_IFS
RESPONSE = (8 * (1 + 4 + 2 + 5 + 4 + 3) + 150 + 80 + 150) * US  # L2CAP 4 + Write Response 1


@pytest.mark.parametrize(("payload", "phy", "encrypted", "microseconds"), [
    (27, Phy.LE_1M, True, 328),  # (1 + 4 + 2 + 27 + 4 + 3) * 8 bits at 1 Mbit/s
    (27, Phy.LE_1M, False, 296),  # no MIC
    (251, Phy.LE_1M, True, 2120),  # the largest connMaxTxTime at 1M
    (251, Phy.LE_2M, True, 1064),  # (2 + 4 + 2 + 251 + 4 + 3) * 8 bits at 2 Mbit/s
    (0, Phy.LE_1M, True, 80),  # an empty packet carries no MIC even on an encrypted link
    (0, Phy.LE_2M, True, 44),
])
def test_one_packet_airtime_is_the_spec_packet_format_at_the_phy_bit_rate(payload, phy, encrypted,
                                                                          microseconds):
    assert packet_airtime(payload, phy, encrypted) == pytest.approx(microseconds * US)


def test_an_exchange_is_the_packet_the_empty_answer_and_two_inter_frame_spaces():
    assert exchange_time(SLOW, 27) == pytest.approx(FULL)
    assert exchange_time(BleLink.fast(), 251) == pytest.approx((1064 + 150 + 44 + 150) * US)


def test_fragments_at_mtu_23_and_247():
    # A full value at ATT_MTU 23: 20 + ATT 3 + L2CAP 4 = 27 octets, one link-layer packet.
    assert SLOW.value_size == 20
    assert ll_fragments(3 + 20, SLOW) == [27]
    # A full value at ATT_MTU 247: 244 + 3 + 4 = 251 octets; 10 packets of 27, or 1 with DLE.
    no_dle = BleLink(mtu=247)
    assert ll_fragments(3 + 244, no_dle) == [27] * 9 + [8]
    assert ll_fragments(3 + 244, BleLink.fast()) == [251]
    # A 261-byte STORE DATA at MTU 23 is 14 writes; at MTU 247 two.
    assert raw_frame(bytes(261), 20) == [20] * 13 + [1]
    assert raw_frame(bytes(261), 244) == [244, 17]
    assert raw_frame(bytes(40), 20) == [20, 20]
    assert raw_frame(b"", 20) == [0]


def test_packets_per_event_are_the_controllers_limit_or_what_fits_the_interval():
    assert per_event(SLOW, 27) == 4  # 30 ms holds 42 exchanges; the phone manages 4
    assert per_event(BleLink(interval_s=0.0075, packets_per_event=20), 27) == 10  # 7.5 / 0.708
    assert per_event(BleLink.fast(), 251) == 5  # 7.5 ms / 1.408 ms, under the 6 the phones manage


def test_a_notification_needs_no_response_event():
    notify = transfer_time(SLOW, [], [20])
    write = transfer_time(SLOW, [20], [])
    assert notify == pytest.approx(15 * MS + FULL)  # half an interval to meet an event, then one exchange
    assert write == pytest.approx(15 * MS + 30 * MS + RESPONSE)  # the response waits for the next event


def test_a_round_trip_counts_each_writes_response_and_the_answers_after_the_last():
    # Two writes: request, response, request; then the last response leads two notifications.
    time = transfer_time(SLOW, [20, 20], [20, 5])
    notification_5 = (8 * (1 + 4 + 2 + 12 + 4 + 3) + 150 + 80 + 150) * US
    assert time == pytest.approx(15 * MS + 3 * 30 * MS + RESPONSE + FULL + notification_5)


def test_a_write_larger_than_a_link_layer_packet_takes_as_many_events_as_its_fragments_need():
    link = BleLink(mtu=247)  # no DLE: a full write is 10 packets, 4 an event: 3 events, then the response
    assert transfer_time(link, [244], []) == pytest.approx(15 * MS + 3 * 30 * MS + RESPONSE)


def test_write_commands_share_events_and_only_the_last_write_waits_for_its_response():
    four = [20] * 4  # one 27-byte packet each, 4 packets an event
    assert transfer_time(SLOW, four, []) == pytest.approx(15 * MS + 7 * 30 * MS + RESPONSE)
    assert transfer_time(SLOW, four, [], write_commands=True) == pytest.approx(
        15 * MS + 30 * MS + RESPONSE)
    assert transfer_time(SLOW, [20], [20], write_commands=True) == transfer_time(SLOW, [20], [20])


def test_more_packets_per_event_take_fewer_events():
    eight = [20] * 8
    assert transfer_time(SLOW, [], eight) == pytest.approx(15 * MS + 30 * MS + 4 * FULL)
    roomy = BleLink(packets_per_event=8)
    assert transfer_time(roomy, [], eight) == pytest.approx(15 * MS + 8 * FULL)
    assert expected_events(8, 4) == 2 and expected_events(8, 8) == 1 and expected_events(9, 8) == 2


def test_loss_is_an_expected_retransmission_at_the_next_event():
    assert expected_events(1, 4, 0.1) == pytest.approx(1 / 0.9)  # geometric: 1/(1-p)
    # Two packets, p = 1/2: E = 1 + E/2 (first lost) + 2/4 (second lost, one to go: 2 events).
    assert expected_events(2, 4, 0.5) == pytest.approx(3)
    assert expected_events(2, 4, 0.2) == pytest.approx(1.2 / 0.8)  # (1 + p)/(1 - p)
    lossy = BleLink(loss=0.1)
    assert transfer_time(lossy, [20], [20]) > transfer_time(SLOW, [20], [20])
    # One notification: lost with p, then an interval and another try.
    assert transfer_time(lossy, [], [20]) == pytest.approx(15 * MS + FULL + 0.1 / 0.9 * 30 * MS)


def test_session_time_sums_round_trips_and_relay_time_frames_messages():
    trips = [([20, 20], [20]), ([5], [10, 10])]
    assert session_time(SLOW, trips) == pytest.approx(sum(transfer_time(SLOW, w, n) for w, n in trips))
    command, answer = bytes(25), bytes(12)
    assert gatt_values([command, answer], 20) == [20, 5, 12]
    assert relay_time(SLOW, [command], [answer]) == pytest.approx(transfer_time(SLOW, [20, 5], [12]))
    assert transfer_time(SLOW, [], []) == 0


def test_a_framing_with_overhead_costs_more_than_the_raw_payload():
    def tagged(message: bytes, payload: int) -> list[int]:
        return raw_frame(bytes(len(message) + 12), payload)  # a header and a tag

    apdus = [bytes(18), bytes(30)]
    assert relay_time(SLOW, apdus, apdus, tagged) > relay_time(SLOW, apdus, apdus)
    with pytest.raises(ValueError, match="framing gave"):
        gatt_values([bytes(10)], 20, lambda message, payload: [payload + 1])


@pytest.mark.parametrize("bad", [
    {"interval_s": 0.007}, {"interval_s": 0.0076}, {"interval_s": 4.00125}, {"mtu": 22},
    {"mtu": 518}, {"packets_per_event": 0}, {"loss": 1.0}, {"loss": -0.1}, {"phy": 3},
])
def test_impossible_links_are_refused(bad):
    with pytest.raises(ValueError):
        BleLink(**bad)


def test_values_larger_than_the_mtu_allows_are_refused():
    with pytest.raises(ValueError, match="0 to 20 bytes"):
        transfer_time(SLOW, [21], [])


def test_presets_are_sane():
    fast, slow = BleLink.fast(), BleLink.conservative()
    assert (fast.phy, fast.interval_s, fast.mtu, fast.dle) == (Phy.LE_2M, 0.0075, 247, True)
    assert (slow.phy, slow.interval_s, slow.mtu, slow.dle) == (Phy.LE_1M, 0.030, 23, False)
    assert (fast.ll_payload, slow.ll_payload) == (251, 27)
    # A typical issuer step: a 40-byte C-APDU and a 30-byte answer.
    step = ([40], [30])
    assert transfer_time(fast, *step) < 15 * MS  # within two 7.5 ms events and a half
    assert transfer_time(fast, *step) < transfer_time(slow, [20, 20], [20, 10])
    # Bulk: 10 kB of notifications at 20 bytes an event's packet, 4 packets per 30 ms: ~3.75 s.
    bulk = transfer_time(slow, [], [20] * 500)
    assert bulk == pytest.approx(15 * MS + 124 * 30 * MS + 4 * FULL)
    assert transfer_time(fast, [], [244] * 41) < 0.1  # the same 10 kB on the fast link


sizes = st.lists(st.integers(0, 20), max_size=12)
links = st.builds(BleLink, phy=st.sampled_from(Phy), interval_s=st.sampled_from([0.0075, 0.015, 0.030]),
                  mtu=st.sampled_from([23, 64, 247]), dle=st.booleans(),
                  packets_per_event=st.integers(1, 12), loss=st.sampled_from([0.0, 0.01, 0.1, 0.4]))


@given(links, sizes, sizes, st.integers(0, 20), st.booleans())
def test_more_bytes_never_take_less_time(link, writes, notifies, extra, to_band):
    before = transfer_time(link, writes, notifies)
    if to_band:
        after = transfer_time(link, [*writes, extra], notifies)
    else:
        after = transfer_time(link, writes, [*notifies, extra])
    assert after >= before - 1e-12
    if writes or notifies:
        grown = [min(size + extra, link.value_size) for size in writes]
        assert transfer_time(link, grown, notifies) >= before - 1e-12


@given(links, sizes, sizes, st.floats(0.0, 0.5))
def test_more_loss_never_takes_less_time(link, writes, notifies, more):
    lossier = BleLink(link.phy, link.interval_s, link.mtu, link.dle, link.packets_per_event,
                      min(link.loss + more, 0.9))
    assert transfer_time(lossier, writes, notifies) >= transfer_time(link, writes, notifies) - 1e-12


@given(links, sizes, sizes, st.integers(1, 8))
def test_more_packets_per_event_never_take_more_time(link, writes, notifies, more):
    roomier = BleLink(link.phy, link.interval_s, link.mtu, link.dle, link.packets_per_event + more,
                      link.loss)
    assert transfer_time(roomier, writes, notifies) <= transfer_time(link, writes, notifies) + 1e-12


@given(links, sizes, sizes)
def test_write_commands_never_take_more_time_than_writes_with_response(link, writes, notifies):
    assert transfer_time(link, writes, notifies, write_commands=True) <= transfer_time(
        link, writes, notifies) + 1e-12


@given(st.integers(0, 200), st.integers(1, 12), st.sampled_from([0.0, 0.05, 0.3]))
def test_expected_events_grow_with_packets_and_loss_and_shrink_with_room(packets, per, loss):
    events = expected_events(packets, per, loss)
    assert expected_events(packets + 1, per, loss) >= events
    assert expected_events(packets, per + 1, loss) <= events
    assert expected_events(packets, per, loss + 0.1) >= events
    assert events >= -(-packets // per)  # loss never helps
