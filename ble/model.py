"""What moving the relay's bytes over a BLE connection costs: a model for planning.

The phone relays the issuer's APDUs to the band over GATT (:mod:`ble.spec`).
Per relay round trip it writes the batch of C-APDUs to "relay in", every
value but the last as a Write Command and the last *with response* (or,
as the first central did, every one with response), and the band answers
on "relay out" with notifications. This module prices one such round trip in seconds from the
sizes of the GATT values each side sends. It is pure: sizes and link
parameters in, seconds out; no clock, no radio.

What is modelled, bottom up (section numbers: Bluetooth Core Specification
5.x; they have not moved since 5.0):

- **Link-layer packet airtime** (Vol 6 Part B 2.1, uncoded PHYs): preamble
  (1 octet on LE 1M, 2 octets on LE 2M), access address (4), Data Physical
  Channel PDU header (2), payload (0..27 octets, or up to 251 with LE Data
  Length Extension, 4.5.10), MIC (4, on an encrypted link, and only on PDUs
  with a non-empty payload: 2.4), CRC (3), at 1 or 2 Mbit/s. A full 27-octet
  encrypted packet is 41 octets, 328 µs at 1M; a full 251-octet one is 2120 µs
  at 1M and 1064 µs at 2M; an empty packet (an acknowledgement with nothing to
  send) 80 µs at 1M and 44 µs at 2M. These are the connMaxTxTime figures
  (328 to 2120 µs) controllers report.
- **Connection events** (Vol 6 Part B 4.5.1, 4.5.6): once per connection
  interval (7.5 ms to 4 s, a multiple of 1.25 ms) the central and the
  peripheral alternate packets separated by T_IFS = 150 µs (4.1.1). Moving a
  data packet one way costs an exchange: the data packet, T_IFS, the other
  side's (usually empty) packet, T_IFS. An event holds as many exchanges as
  both controllers manage (:attr:`BleLink.packets_per_event`) and as fit the
  interval.
- **L2CAP and ATT** (Vol 3 Part A 3.1; Vol 3 Part F 3.4.5, 3.4.7): a GATT
  value travels in an ATT PDU of opcode (1) and handle (2) plus the value, at
  most ATT_MTU octets; L2CAP's basic header (length 2, channel 2) goes on top,
  and the result is cut into link-layer payloads of the negotiated size
  (Vol 6 Part B 2.4, LLID start / continuation).
- **Write with response** (Vol 3 Part F 3.3.2, 3.4.5.1-2): ATT is a sequential
  protocol, so the phone sends the next Write Request only after the band's
  Write Response (1 octet). A peripheral cannot answer within the T_IFS of the
  packet that completed the request, so the response goes out at the next
  connection event: every write costs at least one event more than its own
  packets, and the phone's next write starts at the event after that.
- **Write Commands** (Vol 3 Part F 3.4.5.3) need no response either: the
  phone's values but the last go out back to back, as many packets per event
  as the event holds, and only the last one, a Write Request, waits for its
  response (``write_commands=True``).
- **Notifications** (Vol 3 Part F 3.4.7.1) need no response: the band queues
  them and they go out back to back, as many per event as the event holds.
  The last write's response leads the band's notifications in the same
  stream (the band answers the write, then its R-APDUs).
- **Loss** is an expected value: each link-layer data packet is lost (or its
  acknowledgement is) with probability :attr:`BleLink.loss`, independently;
  a loss ends the connection event and the packet is sent again at the next
  one (the spec lets the event go on after one CRC error and closes it after
  two, 4.5.6; ending at once is the cautious reading). :func:`expected_events`
  computes the expected number of events exactly under that rule.

A round trip's time is then (:func:`transfer_time`): half an interval on
average for the phone's first write to meet a connection event (it has just
heard from the issuer, at a random phase of the interval), a whole interval
for every event of the writes and their responses and for every event of the
band's stream but its last, and the airtime of that last event's exchanges
(the phone has the band's last notification at its end). With loss these
are expected values over the ways the stream can go.

Not modelled: the band's processing of the APDUs (the card profile of
:mod:`reader.timing` prices that), the issuer's HTTP time (measured apart,
``bench.issuance`` and ``bench.ota``), peripheral latency (the band listens at
every event while it relays), channel-map and PHY-update procedures, and
controllers' buffer limits beyond ``packets_per_event``.

The relay's own framing (the batch encoding of :mod:`ble.relay`, the
AES-CCM seal of :mod:`ble.secure`, the fragment headers of
:mod:`ble.framing`) is a parameter: a :data:`Frame` turns one relay message into the sizes of the
GATT values it is sent as. :func:`raw_frame`, plain fragmentation with no
overhead, is the baseline that framing overhead is measured against.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from functools import cache

from ble.spec import payload_size

T_IFS_S = 150e-6
"""Inter-frame space between two packets of a connection event (Vol 6 Part B 4.1.1)."""

ACCESS_ADDRESS = 4
LL_HEADER = 2  # Data Physical Channel PDU header: LLID, NESN, SN, MD, Length (2.4)
MIC = 4  # only on an encrypted link and a non-empty payload (2.4)
CRC = 3
LL_PAYLOAD = 27  # every controller (4.5.10, connInitialMaxTxOctets)
LL_PAYLOAD_DLE = 251  # LE Data Length Extension's maximum (4.5.10)

L2CAP_HEADER = 4  # basic L2CAP header: length and channel ID (Vol 3 Part A 3.1)
ATT_HEADER = 3  # opcode and attribute handle of a Write Request or a notification (Vol 3 Part F)
ATT_WRITE_RESPONSE = 1  # opcode 0x13 alone (Vol 3 Part F 3.4.5.2)

INTERVAL_STEP_S = 0.00125  # connInterval is a multiple of 1.25 ms (Vol 6 Part B 4.5.1)
INTERVAL_MIN_S, INTERVAL_MAX_S = 0.0075, 4.0


class Phy(IntEnum):
    """The uncoded LE PHYs, by raw bit rate in Mbit/s (Vol 6 Part A 3)."""

    LE_1M = 1
    LE_2M = 2

    @property
    def bit_rate(self) -> float:
        """Bits per second on the air."""
        return self.value * 1e6

    @property
    def preamble(self) -> int:
        """Preamble octets: 1 on LE 1M, 2 on LE 2M (Vol 6 Part B 2.1.1)."""
        return {Phy.LE_1M: 1, Phy.LE_2M: 2}[self]


Frame = Callable[[bytes, int], list[int]]
"""How a relay message is sent: ``frame(message, payload)`` gives the sizes of the GATT
values (each at most ``payload`` bytes, see :func:`ble.spec.payload_size`) that
``message`` becomes, in order."""


def raw_frame(message: bytes, payload: int) -> list[int]:
    """The baseline framing: ``message`` cut into ``payload``-byte values, nothing added.

    An empty message is still one (empty) value: something must be written for it
    to be seen.
    """
    if payload < 1:
        raise ValueError(f"a GATT value carries at least 1 byte, not {payload}")
    return _cut(len(message), payload)


def _cut(length: int, size: int) -> list[int]:
    """``length`` octets in pieces of ``size``, the last one shorter; at least one piece."""
    full, rest = divmod(length, size)
    return [size] * full + ([rest] if rest or not full else [])


@dataclass(frozen=True, slots=True)
class BleLink:
    """The connection the relay runs over, as the phone and the band negotiated it.

    ``packets_per_event`` is how many data packets one way the controllers
    manage in a connection event (a conservative phone manages about 4 at
    1M / 30 ms; good ones 6 or more); the airtime of the interval caps it too.
    ``loss`` is the probability that a link-layer data packet (or its
    acknowledgement) is lost and sent again at the next event. ``encrypted``
    is the link's own encryption, which the relay characteristics require.
    """

    phy: Phy = Phy.LE_1M
    interval_s: float = 0.030
    mtu: int = 23
    dle: bool = False
    packets_per_event: int = 4
    loss: float = 0.0
    encrypted: bool = True

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "phy", Phy(self.phy))
        except ValueError:
            raise ValueError(f"unknown PHY {self.phy!r}: LE 1M (1) or LE 2M (2)") from None
        steps = self.interval_s / INTERVAL_STEP_S
        if not (INTERVAL_MIN_S - 1e-12 <= self.interval_s <= INTERVAL_MAX_S + 1e-12
                and math.isclose(steps, round(steps), abs_tol=1e-6)):
            raise ValueError(f"a connection interval is 7.5 ms to 4 s in steps of 1.25 ms, "
                             f"not {self.interval_s * 1e3:g} ms")
        payload_size(self.mtu)  # raises ValueError outside 23..517
        if self.packets_per_event < 1:
            raise ValueError(f"a connection event carries at least 1 packet, "
                             f"not {self.packets_per_event}")
        if not 0.0 <= self.loss < 1.0:
            raise ValueError(f"a loss probability is in [0, 1), not {self.loss}")

    @classmethod
    def conservative(cls) -> BleLink:
        """A phone that negotiates nothing: LE 1M, 30 ms, ATT_MTU 23, 27-byte LL payloads."""
        return cls(Phy.LE_1M, 0.030, 23, dle=False, packets_per_event=4)

    @classmethod
    def fast(cls) -> BleLink:
        """A current phone at its best: LE 2M, 7.5 ms, ATT_MTU 247, Data Length Extension."""
        return cls(Phy.LE_2M, 0.0075, 247, dle=True, packets_per_event=6)

    @property
    def ll_payload(self) -> int:
        """Largest link-layer payload: 27 octets, or 251 with Data Length Extension."""
        return LL_PAYLOAD_DLE if self.dle else LL_PAYLOAD

    @property
    def value_size(self) -> int:
        """Largest GATT value one write or notification carries (ATT_MTU - 3)."""
        return payload_size(self.mtu)


def packet_airtime(payload: int, phy: Phy, encrypted: bool = True) -> float:
    """Seconds on the air of one link-layer data packet with ``payload`` octets (2.1, 2.4)."""
    if not 0 <= payload <= LL_PAYLOAD_DLE:
        raise ValueError(f"a link-layer payload is 0 to {LL_PAYLOAD_DLE} octets, not {payload}")
    mic = MIC if encrypted and payload else 0
    octets = phy.preamble + ACCESS_ADDRESS + LL_HEADER + payload + mic + CRC
    return 8 * octets / phy.bit_rate


def exchange_time(link: BleLink, payload: int) -> float:
    """One data packet one way with the other side's empty packet, and T_IFS after each."""
    return (packet_airtime(payload, link.phy, link.encrypted) + T_IFS_S
            + packet_airtime(0, link.phy, link.encrypted) + T_IFS_S)


def ll_fragments(att_pdu: int, link: BleLink) -> list[int]:
    """Link-layer payload sizes of an ATT PDU of ``att_pdu`` octets under its L2CAP header."""
    if not 1 <= att_pdu <= link.mtu:
        raise ValueError(f"an ATT PDU is 1 to ATT_MTU={link.mtu} octets, not {att_pdu}")
    return _cut(L2CAP_HEADER + att_pdu, link.ll_payload)


def per_event(link: BleLink, payload: int) -> int:
    """Packets of ``payload`` octets one way that one connection event holds (at least 1)."""
    fit = int(link.interval_s // exchange_time(link, payload))
    return max(1, min(link.packets_per_event, fit))


def expected_events(packets: int, per_event: int, loss: float = 0.0) -> float:
    """Expected connection events to deliver ``packets`` in order, ``per_event`` at most per event.

    Without loss it is ceil(packets / per_event). With loss p, an event sends
    packets until one is lost (which ends the event, and that packet goes
    again next event) or ``per_event`` have gone; so with m = min(per_event, n)
    packets left to try, s of them get through with probability (1-p)^s p for
    s < m and (1-p)^m for s = m, and E[n] = 1 + sum_s P(s) E[n - s].
    """
    if packets < 0 or per_event < 1 or not 0.0 <= loss < 1.0:
        raise ValueError(f"bad arguments: {packets} packets, {per_event} per event, loss {loss}")
    if loss == 0.0:
        return float(-(-packets // per_event))
    return _expected_events(packets, per_event, loss)


@cache
def _expected_events(packets: int, per_event: int, loss: float) -> float:
    events = [0.0]
    ok = 1.0 - loss
    for n in range(1, packets + 1):
        m = min(per_event, n)
        # s = 0 (the first packet lost) leaves n to go: solved for E[n] instead of recursing
        rest = sum(ok ** s * loss * events[n - s] for s in range(1, m)) + ok ** m * events[n - m]
        events.append((1.0 + rest) / ok)
    return events[packets]


def transfer_time(link: BleLink, writes: Sequence[int], notifies: Sequence[int], *,
                  write_commands: bool = False) -> float:
    """Modelled seconds of one relay round trip over ``link``.

    ``writes`` are the sizes of the GATT values the phone writes, in order: each
    with response, or (``write_commands``) all but the last as Write Commands;
    ``notifies`` those of the notifications the band sends back. Each is at most
    :attr:`BleLink.value_size` bytes. From the phone's first write meeting a
    connection event to the band's last notification received.
    """
    for size in (*writes, *notifies):
        if not 0 <= size <= link.value_size:
            raise ValueError(f"a GATT value at ATT_MTU {link.mtu} is 0 to {link.value_size} "
                             f"bytes, not {size}")
    if not writes and not notifies:
        return 0.0
    down = [ll_fragments(ATT_HEADER + size, link) for size in writes]
    up = ([ll_fragments(ATT_WRITE_RESPONSE, link)] if writes else []) + [
        ll_fragments(ATT_HEADER + size, link) for size in notifies]
    events = 0.0
    if down:
        largest = max(max(packets) for packets in down)
        k = per_event(link, largest)
        if write_commands:  # one stream: no write waits for another's response
            down = [[payload for packets in down for payload in packets]]
        for index, packets in enumerate(down):
            events += expected_events(len(packets), k, link.loss)
            if index < len(down) - 1:  # this write's response; the last one leads the notifications
                events += expected_events(1, 1, link.loss)
    stream = [payload for packets in up for payload in packets]
    return link.interval_s / 2 + events * link.interval_s + _stream_time(link, stream)


def _stream_time(link: BleLink, payloads: Sequence[int]) -> float:
    """Expected seconds from the first event of a one-way stream of packets to the end of its
    last exchange: whole intervals for every event but the last, the last one's airtime.

    As :func:`expected_events`, with a time per outcome: T[n] for n packets to go is
    the last event's airtime when all n get through in one event, and one interval
    plus T[n - s] when s < n do.
    """
    k = per_event(link, max(payloads))
    loss, ok, interval = link.loss, 1.0 - link.loss, link.interval_s
    exchanges = [exchange_time(link, payload) for payload in payloads]
    times = [0.0]
    for n in range(1, len(payloads) + 1):
        m = min(k, n)
        tail = len(payloads) - n  # the packets still to go are the stream's last n
        done = sum(exchanges[tail:]) if m == n else interval + times[n - m]
        # s = 0 (the first packet lost) leaves n to go: solved for T[n] instead of recursing
        rest = loss * interval + sum(ok ** s * loss * (interval + times[n - s]) for s in range(1, m))
        times.append((rest + ok ** m * done) / ok)
    return times[-1]


def gatt_values(messages: Iterable[bytes], payload: int, frame: Frame = raw_frame) -> list[int]:
    """The sizes of the GATT values ``messages`` are sent as under ``frame``, in order."""
    sizes: list[int] = []
    for message in messages:
        framed = frame(message, payload)
        if not framed or any(not 0 <= size <= payload for size in framed):
            raise ValueError(f"the framing gave values of {framed} bytes for a {len(message)}-byte "
                             f"message: it must give at least one, each 0 to {payload} bytes")
        sizes.extend(framed)
    return sizes


def relay_time(link: BleLink, commands: Sequence[bytes], responses: Sequence[bytes],
               frame: Frame = raw_frame, *, write_commands: bool = False) -> float:
    """:func:`transfer_time` of one round trip given its relay messages instead of value sizes."""
    return transfer_time(link, gatt_values(commands, link.value_size, frame),
                         gatt_values(responses, link.value_size, frame),
                         write_commands=write_commands)


def session_time(link: BleLink, round_trips: Iterable[tuple[Sequence[int], Sequence[int]]], *,
                 write_commands: bool = False) -> float:
    """Modelled seconds of a relay session: the sum of its round trips' (writes, notifies)."""
    return sum(transfer_time(link, writes, notifies, write_commands=write_commands)
               for writes, notifies in round_trips)
