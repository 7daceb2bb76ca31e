"""A bleak backend on Bumble: the phone's central on a Bumble controller instead of the OS's stack.

bleak takes the backend to run on as an argument (``BleakScanner(backend=…)``,
``BleakClient(backend=…)``): classes implementing its ``BaseBleakScanner`` and
``BaseBleakClient``. Ours (:mod:`.scanner`, :mod:`.client`) run them on a Bumble
device (:mod:`.stack`), so the phone's one central
(:class:`phone.ble.central.BandCentral`) drives a USB dongle, an HCI socket, a
controller over TCP or Bumble's virtual controllers exactly as it drives BlueZ
or CoreBluetooth. :mod:`.radio` makes such phones: on a transport, or on a
virtual radio with the band beside it. This package is the one place in
``phone/`` that imports Bumble (``tests/test_layers.py`` holds it to that).
"""

from __future__ import annotations

from phone.ble.bumble_backend.client import BumbleClient
from phone.ble.bumble_backend.scanner import BumbleScanner
from phone.ble.bumble_backend.stack import BumbleStack
from phone.ble.central import Backend


def backend(stack: BumbleStack) -> Backend:
    """bleak's scanner and client on ``stack``, for :class:`~phone.ble.central.BandCentral`."""
    return Backend(BumbleScanner, BumbleClient, stack.options())
