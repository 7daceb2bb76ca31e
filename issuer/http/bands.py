"""Bands: registration (and registering again), lost and found.

(No ``from __future__ import annotations``: FastAPI reads the route signatures at run time.)
"""

from fastapi import APIRouter, Response

from issuer.http.dependencies import Db, Id, IdempotencyKey, Now, Operator, Service
from issuer.http.models import PROBLEMS, BandIn, BandOut, FoundOut, LostIn, OrderOut

router = APIRouter()


@router.post("/v1/bands", status_code=201, responses=PROBLEMS, dependencies=[Operator])
def register_band(body: BandIn, session: Db, now: Now, response: Response,
                  service: Service) -> BandOut:
    """Register a band; registering it again (a retry, a new phone) keeps the band and
    gives it a new device token, revoking the old one. A band on the test keys gets an
    order that gives its card manager the issuer's keys: relay it (the band's next sync
    does)."""
    made = service.register_band(session, bytes.fromhex(body.cplc), bytes.fromhex(body.uid),
                                 body.isd_key_set, now)
    if not made.new:
        response.status_code = 200
    return BandOut(band_id=made.band_id, device_token=made.device_token, order_id=made.order_id)


@router.post("/v1/bands/{band_id}/lost", status_code=201, responses=PROBLEMS,
             dependencies=[Operator])
def report_lost(band_id: Id, body: LostIn, session: Db, now: Now,
                idempotency_key: IdempotencyKey, service: Service) -> list[OrderOut]:
    """Lock the band's cards now and at its next contact; their balances go to the new band."""
    return [OrderOut.of(order) for order in service.report_lost(
        session, band_id, body.new_band_id, idempotency_key, now)]


@router.post("/v1/bands/{band_id}/found", status_code=201, responses=PROBLEMS,
             dependencies=[Operator])
def found(band_id: Id, session: Db, now: Now, idempotency_key: IdempotencyKey,
          service: Service) -> FoundOut:
    """The lost band is back with its owner: a new device token (the old one stays
    revoked), and an order to unlock each card whose balance stayed on it; relay them."""
    device_token, unlocks = service.found(session, band_id, idempotency_key, now)
    return FoundOut(device_token=device_token, orders=[OrderOut.of(order) for order in unlocks])
