"""GlobalPlatform from the host's side: secure channel sessions on a band, and the transit
operator's security domain with its keys."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from applets import iso7816
from applets.apdu import CommandAPDU
from applets.gp.channel import Level
from applets.gp.keys import KeySet
from applets.gp.loadfiles import LOAD_FILES
from applets.sw import SW
from issuer import gp
from reader.flow import Flow, run
from reader.transport import in_field
from wallet.band import Band

SSD_AID = bytes.fromhex("A00000015153504B4F414C4101")  # the transit operator's domain
SD_LOAD_FILE, SD_MODULE = LOAD_FILES[0].aid, next(iter(LOAD_FILES[0].modules))
PURSE_LOAD_FILE, PURSE_MODULE = LOAD_FILES[1].aid, next(iter(LOAD_FILES[1].modules))
OPERATOR_KEYS = KeySet(0x30, 3, bytes(range(16)), bytes(range(16, 32)), bytes(range(32, 48)))
LEVEL = Level.C_MAC | Level.C_DECRYPTION | Level.R_MAC | Level.R_ENCRYPTION


def session(aid: bytes, keys: KeySet, body: Callable[[gp.HostChannel], Flow[Any]],
            level: Level = LEVEL, seed: int = 1) -> Flow[Any]:
    """SELECT the domain, open a secure channel, run ``body`` in it."""
    yield from expect_ok(iso7816.select(aid))
    channel = yield from gp.open_channel(keys, level, random.Random(seed).randbytes)
    return (yield from body(channel))


def expect_ok(command: CommandAPDU) -> Flow[bytes]:
    response = yield command
    assert response.sw == SW.OK, f"{command!r} -> {response.sw:04X}"
    return response.data


def sender(command: CommandAPDU) -> Callable[[gp.HostChannel], Flow[Any]]:
    def send(channel: gp.HostChannel) -> Flow[Any]:
        return (yield from channel.send(command, f"{command!r}"))

    return send


def on(band: Band, flow: Flow[Any]) -> Any:
    with in_field(band) as link:
        return run(flow, link)
