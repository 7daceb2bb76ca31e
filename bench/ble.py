"""Modelled BLE time of an over-the-air issuance and top-up; prints Markdown rows for BENCHMARKS.md.

    .venv/bin/python -m bench.ble [--frame module:callable] [--messages apdu|relay]

Captures the relay round trips of one full issuance of a transit card and of
one top-up of it, in process through the issuer's order service
(``issuer.orders``) on SQLite with the demo keys: per round trip, the batch of
C-APDUs the issuer sent and the R-APDUs the band gave (``common.relay.run_batch``).
Then prices the trace with the BLE link model (``ble.model``) over a
fast and a conservative link, twice: with every write a Write Request (the
first central's way), and as the bleak central writes (every fragment of a
batch but the last a Write Command). No HTTP and no card time: only the bytes
on the air between phone and band. Beside the model, the same orders are
relayed once more over Bumble's virtual controllers, through the bleak
central on our Bumble backend (``phone.ble.bumble_backend.radio.VirtualBle``),
and the time spent between phone and band is measured: the cost of bleak,
the stacks and the app layer, with no air time.

``--frame`` names the framing, a callable ``frame(message, payload) -> list[int]``
giving the sizes of the GATT values a relay message becomes (default
:func:`app_frame`, the relay's app layer, AES-CCM sealed and fragmented as
:mod:`ble.relay` sends it; ``ble.model:raw_frame`` is plain
fragmentation with no overhead). ``--messages`` says what a relay message
is: a round trip's batch one way as :func:`ble.relay.encode_apdus`
encodes it (default: kind, count, a 2-byte length before each APDU), or each
APDU on its own. All rows use them; the last row gives their overhead against
the raw GATT payload (the same batches' bare APDU bytes, plainly fragmented)
at ATT_MTU 247, so the batch encoding counts as framing overhead, as it is.
"""

from __future__ import annotations

import argparse
import importlib
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ble.framing import fragment
from ble.model import BleLink, Frame, gatt_values, raw_frame, session_time
from ble.relay import ANSWERS, BATCH, encode_apdus
from ble.secure import KEY_SIZE, TO_BAND, Session
from issuer import ledger
from issuer.accounts import funding_account
from issuer.db import Band as BandRow
from issuer.db import make_engine, migrate, session_factory
from issuer.keys import DemoKeys
from issuer.orders import Orders
from issuer.products import TRANSIT
from phone.ble.bumble_backend.radio import VirtualBle
from phone.companion import BandLink, LocalBand
from reader import places
from reader.clock import system_clock
from wallet.band import Band

AMOUNT = 5000  # fen


@dataclass(frozen=True, slots=True)
class RoundTrip:
    """One relay round trip: the batch the phone wrote, and the band's answers."""

    commands: tuple[bytes, ...]
    responses: tuple[bytes, ...]


class Timed:
    """A band link that keeps the time spent in it (the phone ↔ band part of a relay)."""

    def __init__(self, link: BandLink) -> None:
        self.link, self.seconds = link, 0.0

    def run(self, commands: list[bytes]) -> list[bytes]:
        start = time.perf_counter()
        answers = self.link.run(commands)
        self.seconds += time.perf_counter() - start
        return answers


def relay(service: Orders, order_id: int, link: Timed) -> list[RoundTrip]:
    """Relay an order to its end, as the phone does, recording each round trip."""
    trips = []
    step = service.open(order_id)
    while step.commands:
        answers = link.run(list(step.commands))
        trips.append(RoundTrip(step.commands, tuple(answers)))
        step = service.answer(step.session_id, step.step, answers)
    if step.state.value != "settled":
        raise SystemExit(f"the order ended {step.state.value}")
    return trips


def capture(over_ble: bool = False) -> tuple[list[RoundTrip], list[RoundTrip], float, float]:
    """The round trips of one transit card's issuance and of one top-up of it, and the
    seconds each spent between phone and band (in process, or over Bumble's virtual radio)."""
    with tempfile.TemporaryDirectory() as home:
        engine = make_engine(f"sqlite:///{Path(home) / 'issuer.db'}")
        migrate(engine)
        sessions = session_factory(engine)
        service = Orders(sessions, DemoKeys(), places.load_id(0x0A))
        band = Band.new("bench-ble")
        serial = TRANSIT.serial(1)
        with sessions.begin() as session:
            row = BandRow(cplc="B1E" + "0" * 81, uid=band.uid.hex(), device_token_hash="-",
                          created_at=system_clock())
            session.add(row)
            session.flush()
            band_id = row.id
            ledger.post(session, "funding", [("bank:settlement", -AMOUNT),
                                             (funding_account(band_id), AMOUNT)], "bench-ble-fund",
                        at=system_clock())
        band.power_on()
        radio = VirtualBle(band, b"\x01" * 6, lambda _code: True) if over_ble else None
        try:
            reach: BandLink = radio.connect(None)[0] if radio is not None else LocalBand(band)
            reach.reset()
            issuing, topping = Timed(reach), Timed(reach)
            issuance = relay(service, service.issue(band_id, "transit", serial,
                                                    "bench-ble-issue"), issuing)
            topup = relay(service, service.topup(band_id, serial, AMOUNT, "bench-ble-topup"),
                          topping)
        finally:
            if radio is not None:
                radio.close()
        engine.dispose()
    return issuance, topup, issuing.seconds, topping.seconds


def app_frame(message: bytes, payload: int) -> list[int]:
    """The relay's app layer: ``message`` sealed (AES-CCM: kind, counter, tag), then cut into
    fragments under their 3-byte headers (:mod:`ble.secure`, :mod:`ble.framing`)."""
    sealed = Session(bytes(KEY_SIZE), TO_BAND).seal(message)
    return [len(value) for value in fragment(sealed, 1, payload)]


def messages(trip: RoundTrip, mode: str) -> tuple[list[bytes], list[bytes]]:
    """The relay messages of a round trip, to the band and back."""
    if mode == "relay":
        return [encode_apdus(BATCH, trip.commands)], [encode_apdus(ANSWERS, trip.responses)]
    if mode == "raw":  # the baseline: each batch's bare APDU bytes
        return [b"".join(trip.commands)], [b"".join(trip.responses)]
    return list(trip.commands), list(trip.responses)


def framed(trips: Sequence[RoundTrip], link: BleLink, frame: Frame,
           mode: str) -> list[tuple[list[int], list[int]]]:
    """Each round trip as the sizes of the GATT values written and notified."""
    sizes = []
    for trip in trips:
        down, up = messages(trip, mode)
        sizes.append((gatt_values(down, link.value_size, frame),
                      gatt_values(up, link.value_size, frame)))
    return sizes


def load_frame(name: str) -> Frame:
    module, _, attribute = name.partition(":")
    if not attribute:
        raise SystemExit(f"--frame takes module:callable, not {name!r}")
    frame: Frame = getattr(importlib.import_module(module), attribute)
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frame", default="bench.ble:app_frame",
                        help="the framing, module:callable (default: the relay's app layer)")
    parser.add_argument("--messages", choices=["apdu", "relay"], default="relay",
                        help="a relay message is one APDU, or one round trip's batch one way as "
                             "the relay encodes it")
    args = parser.parse_args()
    frame = load_frame(args.frame)
    issuance, topup, _, _ = capture()
    _, _, issuing_s, topping_s = capture(over_ble=True)
    links = [("fast", BleLink.fast(), "2M PHY, 7.5 ms, MTU 247, DLE", "≤ 1 s"),
             ("conservative", BleLink.conservative(), "1M PHY, 30 ms, MTU 23, no DLE", "≤ 5 s")]
    print("| figure | target | every write with response | Write Commands but the last |")
    print("|---|---|---|---|")
    for what, trips in (("issuance of a transit card", issuance), ("top-up", topup)):
        apdus = sum(len(trip.commands) for trip in trips)
        for name, link, description, target in links:
            sizes = framed(trips, link, frame, args.messages)
            down = sum(sum(writes) for writes, _ in sizes)
            up = sum(sum(notifies) for _, notifies in sizes)
            writes = sum(len(writes) for writes, _ in sizes)
            notifies = sum(len(notifies) for _, notifies in sizes)
            before, now = (session_time(link, sizes, write_commands=commands)
                           for commands in (False, True))
            print(f"| modelled BLE time of an OTA {what}, {name} link ({description}): "
                  f"{len(trips)} round trips, {apdus} APDUs, {down:,} B in {writes} writes to the "
                  f"band / {up:,} B in {notifies} notifications back "
                  f"| {target if what.startswith('issuance') else '—'} "
                  f"| {before * 1e3:,.0f} ms | {now * 1e3:,.0f} ms |")
    link = BleLink.fast()
    trips = issuance + topup
    raw = session_time(link, framed(trips, link, raw_frame,
                                    "apdu" if args.messages == "apdu" else "raw"))
    real = session_time(link, framed(trips, link, frame, args.messages))
    print(f"| measured phone ↔ band time over Bumble's virtual controllers, the bleak central on "
          f"our Bumble backend (both stacks, LE Secure Connections link, app layer; no air time): "
          f"issuance / top-up | — | — | {issuing_s * 1e3:.0f} ms / {topping_s * 1e3:.0f} ms |")
    print(f"| framing + crypto overhead over the raw GATT payload, issuance + top-up, fast link "
          f"(MTU 247, writes with response), framing `{args.frame}`, one message per "
          f"{args.messages} | ≤ 5 % | {(real - raw) / raw * 100:.1f} % ({real * 1e3:.1f} ms "
          f"against {raw * 1e3:.1f} ms) | — |")


if __name__ == "__main__":
    main()
