"""Clearing: the terminals' records, each booked once if the card's TAC (or TC) proves it.

The bodies are the records' own (:mod:`reader.record`), read with :func:`reader.record.from_json`.

(No ``from __future__ import annotations``: FastAPI reads the route signatures at run time.)
"""

from typing import Annotated

from fastapi import APIRouter, Body

from issuer.http.dependencies import Db, Now, Operator, Service
from issuer.http.models import PROBLEMS, ClearedOut, EcashPurchaseIn, LoadIn, PurchaseIn
from reader.record import EcashPurchase, LoadRecord, PurchaseRecord, from_json

router = APIRouter(responses=PROBLEMS, dependencies=[Operator])
MAX_RECORDS = 10_000  # per request


@router.post("/v1/clearing")
def clearing(body: Annotated[list[PurchaseIn], Body(max_length=MAX_RECORDS)], session: Db,
             now: Now, service: Service) -> ClearedOut:
    """Book terminals' purchase records whose TAC verifies, each once."""
    return ClearedOut.of(service.clear(
        session, [from_json(PurchaseRecord, r.model_dump()) for r in body], now))


@router.post("/v1/clearing/loads")
def clearing_loads(body: Annotated[list[LoadIn], Body(max_length=MAX_RECORDS)], session: Db,
                   now: Now, service: Service) -> ClearedOut:
    """Book station load machines' cash loads whose TAC verifies, each once."""
    return ClearedOut.of(service.clear_loads(
        session, [from_json(LoadRecord, r.model_dump()) for r in body], now))


@router.post("/v1/clearing/ecash")
def clearing_ecash(body: Annotated[list[EcashPurchaseIn], Body(max_length=MAX_RECORDS)],
                   session: Db, now: Now, service: Service) -> ClearedOut:
    """Book the bank card's offline purchases whose TC verifies, each once."""
    return ClearedOut.of(service.clear_ecash(
        session, [from_json(EcashPurchase, r.model_dump()) for r in body], now))
