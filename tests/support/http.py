"""The issuer over real HTTP (uvicorn on loopback) in this process, and a band registered with
it through its companion; ``issuer_url`` is the fixture the conftest.py files take from here."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import httpx
import pytest
import uvicorn
from sqlalchemy import Engine

from applets.gp.cplc import cplc
from issuer.api import create_app
from issuer.db import session_factory
from issuer.keys import DemoKeys
from issuer.orders import Orders
from issuer.products import TRANSIT
from phone.companion import Companion, IssuerClient, LocalBand
from reader import places
from reader.clock import Clock
from tests.conftest import EXPIRY, START, seeded
from wallet.band import Band

OPERATOR = "operator-secret-token"


@pytest.fixture
def issuer_url(engine: Engine) -> Iterator[str]:
    with serving(engine, lambda: datetime(2026, 11, 23, 9, 0)) as url:
        yield url


@contextmanager
def serving(engine: Engine, clock: Clock, client_time: bool = False) -> Iterator[str]:
    """The issuer on ``engine`` over real HTTP on a free loopback port, on ``clock``."""
    service = Orders(session_factory(engine), DemoKeys(), places.load_id(9), clock)
    app = create_app(session_factory(engine), service, DemoKeys(), OPERATOR,
                     client_time=client_time)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(5)


_numbers = iter(range(500_000, 1_000_000))


def registered(url: str) -> tuple[Band, int, str, bytes]:
    number = next(_numbers)
    band = Band.new(f"api{number}", seeded(number))
    serial = TRANSIT.serial(number)
    band.add_purse(TRANSIT.personalisation(serial, START, EXPIRY), TRANSIT.aid)
    operator = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {OPERATOR}"})
    made = operator.post("/v1/bands", json={"cplc": cplc(band.uid).hex(), "uid": band.uid.hex()})
    assert made.status_code == 201, made.text
    band_id, token = made.json()["band_id"], made.json()["device_token"]
    assert operator.post(f"/v1/bands/{band_id}/cards",
                         json={"product": "transit", "app_serial": serial.hex()}).status_code == 201
    synced = Companion(LocalBand(band), band_id, IssuerClient(url, token)).sync()
    assert [(o["kind"], o["state"]) for o in synced] == [("rekey", "settled"), ("register", "settled")]
    funded = operator.post(f"/v1/bands/{band_id}/funding", json={"amount": 20_000},
                           headers={"Idempotency-Key": f"fund-{number}"})
    assert funded.status_code == 200, funded.text
    return band, band_id, token, serial
