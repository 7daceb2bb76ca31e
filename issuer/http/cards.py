"""The products, a band's cards (registered from elsewhere, listed with the issuer's
balances) and its funding account.

(No ``from __future__ import annotations``: FastAPI reads the route signatures at run time.)
"""

from fastapi import APIRouter, Response

from issuer.http.dependencies import (
    ByOperator,
    Db,
    DeviceBand,
    Id,
    IdempotencyKey,
    Now,
    Operator,
    Service,
)
from issuer.http.models import PROBLEMS, CardIn, CardOut, FundingIn, RegisteredOut

router = APIRouter()


@router.get("/v1/products")
def products(service: Service) -> list[dict[str, str]]:
    return service.products()


@router.post("/v1/bands/{band_id}/cards", status_code=201, responses=PROBLEMS,
             dependencies=[Operator])
def register_card(band_id: Id, body: CardIn, session: Db, now: Now, response: Response,
                  service: Service) -> RegisteredOut:
    """A card personalised elsewhere (a factory card, or the bank's under its PAN padded
    with F), to come under this issuer at the balance it proves: relay the order (the
    band's next sync does). Registering it again returns the same order."""
    order_id, new = service.register_card(session, band_id, body.product,
                                          bytes.fromhex(body.app_serial), now)
    if not new:
        response.status_code = 200
    return RegisteredOut(order_id=order_id, product=body.product,
                         app_serial=body.app_serial.upper())


@router.post("/v1/bands/{band_id}/funding", responses=PROBLEMS, dependencies=[Operator])
def fund(band_id: Id, body: FundingIn, session: Db, now: Now,
         idempotency_key: IdempotencyKey, service: Service) -> dict[str, int]:
    return {"balance": service.fund(session, band_id, body.amount, idempotency_key, now)}


@router.get("/v1/bands/{band_id}/funding", responses=PROBLEMS)
def funding(band: DeviceBand, operator: ByOperator, session: Db,
            service: Service) -> dict[str, int]:
    """The band's funding account: what its top-ups draw on (fen)."""
    return {"balance": service.funding(session, band, operator)}


@router.get("/v1/bands/{band_id}/cards", responses=PROBLEMS)
def cards(band: DeviceBand, operator: ByOperator, session: Db, service: Service) -> list[CardOut]:
    return [CardOut.of(card) for card in service.cards(session, band, operator)]
