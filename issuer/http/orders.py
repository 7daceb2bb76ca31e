"""A band's orders: placing them (issue, top up, cancel: the companion's or the operator's;
resolve: the operator's), reading them, and relaying them to the band.

The relay routes name the path's ``band_id`` though only their caller (:data:`BandCaller`)
reads it: so the OpenAPI description lists the path's parameters in the path's order.

The top-up and relay routes are the hot path: ``async``, with only ``async`` dependencies,
so that on PostgreSQL a request runs on the event loop with no hand-off to a thread
(:meth:`issuer.service.Issuer.run`). Its database work is one short transaction on the bare
driver (:mod:`issuer.sql`), a fraction of a millisecond, less than a hand-off would cost.

(No ``from __future__ import annotations``: FastAPI reads the route signatures at run time.)
"""

import uuid

from fastapi import APIRouter

from issuer.http.dependencies import (
    AppSerial,
    BandCaller,
    Db,
    Device,
    Id,
    IdempotencyKey,
    Now,
    Operator,
    Service,
)
from issuer.http.models import PROBLEMS, IssueIn, OrderOut, RelayIn, RelayOut, TopupIn

router = APIRouter()


@router.post("/v1/bands/{band_id}/issues", status_code=201, responses=PROBLEMS,
             dependencies=[Device])
def order_issue(band_id: Id, body: IssueIn, session: Db, now: Now,
                idempotency_key: IdempotencyKey, service: Service) -> OrderOut:
    """Order a new card of a product on the band; relay the order to issue it."""
    # a lost band's token passes the device check: the order service refuses it
    return OrderOut.of(service.issue(session, band_id, body.product, idempotency_key, now))


@router.post("/v1/bands/{band_id}/topups", status_code=201, responses=PROBLEMS)
async def order_topup(band_id: Id, body: TopupIn, caller: BandCaller, now: Now,
                      idempotency_key: IdempotencyKey, service: Service) -> OrderOut:
    """Order a top-up of a card on the band, with a relay session opened for it."""
    return OrderOut.of(await service.run(service.topup, caller, bytes.fromhex(body.app_serial),
                                         body.amount, idempotency_key, now))


@router.post("/v1/bands/{band_id}/cards/{app_serial}/cancel", status_code=201,
             responses=PROBLEMS, dependencies=[Device])
def order_cancel(band_id: Id, app_serial: AppSerial, session: Db, now: Now,
                 idempotency_key: IdempotencyKey, service: Service) -> OrderOut:
    """Cancel a card: relayed, it proves its balance, is deleted, and the balance is refunded."""
    return OrderOut.of(service.cancel(session, band_id, bytes.fromhex(app_serial),
                                      idempotency_key, now))


@router.post("/v1/orders/{order_id}/resolve", responses=PROBLEMS, dependencies=[Operator])
def resolve(order_id: Id, session: Db, now: Now, service: Service) -> OrderOut:
    """Close an order its card never proved, once the clearing window has passed without
    contact: held money goes back (a top-up, a cancellation's proven balance) or on (a lost
    card's balance), booked as the operator's decision."""
    return OrderOut.of(service.resolve(session, order_id, now))


@router.get("/v1/bands/{band_id}/orders", responses=PROBLEMS, dependencies=[Device])
def band_orders(band_id: Id, session: Db, service: Service,
                unresolved: bool = False) -> list[OrderOut]:
    """The band's orders, oldest first; ``unresolved``: those to relay at the next contact."""
    return [OrderOut.of(order) for order in service.band_orders(session, band_id, unresolved)]


@router.get("/v1/bands/{band_id}/orders/{order_id}", responses=PROBLEMS, dependencies=[Device])
def order(band_id: Id, order_id: Id, session: Db, service: Service) -> OrderOut:
    return OrderOut.of(service.band_order(session, band_id, order_id))


@router.post("/v1/bands/{band_id}/orders/{order_id}/relay", status_code=201, responses=PROBLEMS)
async def open_relay(band_id: Id, order_id: Id, caller: BandCaller, now: Now,
               service: Service) -> RelayOut:
    return RelayOut.of(await service.run(service.open_relay, order_id, caller, now))


@router.post("/v1/bands/{band_id}/relay/{session_id}", responses=PROBLEMS)
async def answer(band_id: Id, session_id: uuid.UUID, body: RelayIn, caller: BandCaller, now: Now,
           service: Service) -> RelayOut:
    return RelayOut.of(await service.run(
        service.answer, session_id, body.step,
        [bytes.fromhex(response) for response in body.responses], caller, now))
