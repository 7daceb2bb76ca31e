"""The issuer's HTTP API (FastAPI; OpenAPI at /openapi.json).

Operators register bands (and cards issued elsewhere), fund bands, cancel
cards and report bands lost; a band's companion (the phone) orders
issuance and top-ups and relays APDUs between the issuer and the band. Every
request carries a bearer token: the operator's, or the device token issued
when the band was registered, which sees only that band. Refusals are 4xx
with a ``detail`` saying why; nothing the client sends can cause a 500.

Every request happens at the issuer's own time (the clock it was given).
An issuer started for a simulated world (``client_time``: ``koala demo``,
tests, ``koala issuer serve --client-time``) takes the time a request states
in its ``Koala-Time`` header instead, so a whole day can be replayed; any
other issuer refuses that header rather than ignore it.

The routes live in :mod:`issuer.http`, one router per resource, over the
service (:class:`issuer.service.Issuer`); here they are put together.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from issuer.http import bands, cards, clearing
from issuer.http import orders as ordering
from issuer.http.dependencies import Wiring
from issuer.keys import IssuerKeys
from issuer.orders import Orders
from issuer.procedure import Forbidden, OrderError, UnknownOrder
from issuer.service import Issuer


def create_app(sessions: sessionmaker[Session], orders: Orders, keys: IssuerKeys,
               operator_token: str, isd_key_sets: frozenset[str] = frozenset({"test"}),
               client_time: bool = False) -> FastAPI:
    """The API over ``sessions``, running orders with ``orders``, clearing with ``keys``;
    ``isd_key_sets``: the card-manager key sets a band may register with."""
    app = FastAPI(title="Koala band issuer", version="1",
                  description="Over-the-air issuance and top-up of Koala band cards.")
    app.state.wiring = Wiring(Issuer(sessions, orders, keys, isd_key_sets), operator_token,
                              client_time)
    app.exception_handler(OrderError)(refused)
    app.exception_handler(OperationalError)(database_down)
    # The routers' routes go straight into the app's, the hot path's (top-ups and the relay)
    # first: a request is matched against the routes in order, and an included router costs
    # every request some 50 µs more than its routes listed in the app (FastAPI 0.165).
    for resource in (ordering, cards, bands, clearing):
        app.router.routes.extend(resource.router.routes)
    return app


async def refused(request: Request, error: OrderError) -> JSONResponse:
    """The service's refusals: 404 for what is not there, 403 for who may not, else 409."""
    status = 404 if isinstance(error, UnknownOrder) else 403 if isinstance(error, Forbidden) \
        else 409
    return JSONResponse({"detail": str(error)}, status_code=status)


async def database_down(request: Request, error: OperationalError) -> JSONResponse:
    """A lost database connection is the issuer's trouble, not the client's, and passes: a
    problem in JSON (every transaction rolled back whole), never a bare 500."""
    return JSONResponse({"detail": "the issuer's database is unreachable: nothing was "
                                   "changed, try again"}, status_code=503,
                        headers={"Retry-After": "1"})
