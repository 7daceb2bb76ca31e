"""What the issuer's routes depend on, defined once: the service, a database session, the
bearer token and who holds it (the operator, or a band's device), the request's time and its
idempotency key.

:func:`issuer.api.create_app` wires an app to its service (:class:`Wiring`, in the app's
state); every dependency here reads it from the request, so the routers are plain modules.

Every request carries a bearer token: the operator's, or the device token issued when the
band was registered, which sees only that band. Every request happens at the issuer's own
time (its service's clock); an issuer started for a simulated world (``client_time``) takes
the time a request states in its ``Koala-Time`` header instead, and any other issuer refuses
that header rather than ignore it.

(No ``from __future__ import annotations``: FastAPI reads these signatures at run time.)
"""

import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Path, Request
from sqlalchemy.orm import Session

from issuer.db import Band
from issuer.http.models import hex_bounds
from issuer.orders import Caller
from issuer.service import Issuer, token_hash
from reader import clock
from reader.record import SERIAL


@dataclass(frozen=True, slots=True)
class Wiring:
    """One app's service and its settings."""

    service: Issuer
    operator_token: str
    client_time: bool = False

    def is_operator(self, token: str) -> bool:
        return hmac.compare_digest(token, self.operator_token)


async def wiring(request: Request) -> Wiring:
    wired: Wiring = request.app.state.wiring
    return wired


Wired = Annotated[Wiring, Depends(wiring)]


async def service(wired: Wired) -> Issuer:
    return wired.service


Service = Annotated[Issuer, Depends(service)]


def db(wired: Wired) -> Iterator[Session]:
    with wired.service.sessions() as session:
        yield session


Db = Annotated[Session, Depends(db)]

#: Row ids as the databases store them (PostgreSQL integer): larger ones are simply absent.
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]
AppSerial = Annotated[str, Path(**hex_bounds(SERIAL))]
IdempotencyKey = Annotated[str, Header(min_length=8, max_length=100)]


Authorization = Annotated[str | None, Header()]
KoalaTime = Annotated[str | None, Header(alias="Koala-Time", description=(
    "ISO 8601 time of a simulated world (an issuer started with client time only); without an "
    "offset it is Beijing time"))]


async def token(authorization: Authorization = None) -> str:
    return _bearer(authorization)


def _bearer(authorization: str | None) -> str:
    if not authorization or not authorization.startswith("Bearer "):
        raise HTTPException(401, "a bearer token is required")
    return authorization.removeprefix("Bearer ")


Token = Annotated[str, Depends(token)]


async def request_time(wired: Wired, koala_time: KoalaTime = None) -> datetime:
    return _moment(wired, koala_time)


def _moment(wired: Wiring, koala_time: str | None) -> datetime:
    if koala_time is None:
        return wired.service.now()
    if not wired.client_time:
        raise HTTPException(400, "this issuer keeps its own clock and takes no Koala-Time "
                                 "(start it with --client-time to replay a day)")
    try:
        return wired.service.now(clock.parse(koala_time))
    except clock.BadMoment as error:
        raise HTTPException(400, f"Koala-Time: {error}") from None


Now = Annotated[datetime, Depends(request_time)]


async def operator(value: Token, wired: Wired) -> None:
    """Only the operator's token passes."""
    if not wired.is_operator(value):
        raise HTTPException(403, "this needs the operator's token")


Operator = Depends(operator)


async def by_operator(value: Token, wired: Wired) -> bool:
    """Whether the token is the operator's (a route a device may call too)."""
    return wired.is_operator(value)


ByOperator = Annotated[bool, Depends(by_operator)]


def _caller(band_id: int, value: str, wired: Wiring) -> Caller:
    """The relay's caller: the operator, or a device whose token the order's band must hold
    (checked inside the relay's own transaction, saving a query per APDU batch)."""
    return Caller(band_id, None if wired.is_operator(value) else token_hash(value))


@dataclass(frozen=True, slots=True)
class Relaying:
    """What a top-up or relay route needs: the service, the caller and the request's time."""

    service: Issuer
    caller: Caller
    now: datetime


async def relaying(request: Request, band_id: Id, authorization: Authorization = None,
                   koala_time: KoalaTime = None) -> Relaying:
    """:data:`Service`, the caller and :data:`Now` in one: the hot path's routes, where each
    dependency FastAPI resolves costs a request some 20 µs of CPU."""
    wired = await wiring(request)
    return Relaying(wired.service, _caller(band_id, _bearer(authorization), wired),
                    _moment(wired, koala_time))


Relayed = Annotated[Relaying, Depends(relaying)]


def device_band(band_id: Id, value: Token, session: Db, wired: Wired) -> Band:
    """The band of the path, for its own device's token or the operator's."""
    band = wired.service.band(session, band_id)
    if not (hmac.compare_digest(band.device_token_hash, token_hash(value))
            or wired.is_operator(value)):
        raise HTTPException(403, "this token is not this band's")
    return band


DeviceBand = Annotated[Band, Depends(device_band)]
Device = Depends(device_band)
