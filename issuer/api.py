"""The issuer's HTTP API (FastAPI; OpenAPI at /openapi.json).

Operators register bands and their cards; a band's companion (the phone)
orders top-ups and relays APDUs between the issuer and the band. Every
request carries a bearer token: the operator's, or the device token issued
when the band was registered, which sees only that band. Refusals are 4xx
with a ``detail`` saying why; nothing the client sends can cause a 500.

(No ``from __future__ import annotations`` here: FastAPI reads the route
signatures at run time, and the dependencies are local to :func:`create_app`.)
"""


import hashlib
import hmac
import secrets
import uuid
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from issuer import ledger
from issuer.db import Band, Card, CardStatus, Order
from issuer.orders import OrderError, Relay, Topups, funding_account
from issuer.products import PRODUCTS

HEX = r"^([0-9A-Fa-f]{2})*$"
#: Row ids as the databases store them (PostgreSQL integer): larger ones are simply absent.
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]


class Problem(BaseModel):
    detail: str


class BandIn(BaseModel):
    cplc: str = Field(pattern=HEX, min_length=84, max_length=84, description="CPLC, 42 bytes hex")
    uid: str = Field(pattern=HEX, min_length=8, max_length=20)


class BandOut(BaseModel):
    band_id: int
    device_token: str


class CardIn(BaseModel):
    product: str = Field(description="a product name from /v1/products")
    app_serial: str = Field(pattern=HEX, min_length=20, max_length=20)


class CardOut(BaseModel):
    product: str
    aid: str
    app_serial: str
    status: str
    balance: int = Field(description="the issuer's view, fen")


class FundingIn(BaseModel):
    amount: int = Field(gt=0, le=10_000_000, description="fen")


class TopupIn(BaseModel):
    app_serial: str = Field(pattern=HEX, min_length=20, max_length=20)
    amount: int = Field(gt=0, le=100_000, description="fen")


class OrderOut(BaseModel):
    order_id: int
    state: str
    amount: int
    last_error: str | None = None


class RelayOut(BaseModel):
    session_id: uuid.UUID
    step: int
    command: str | None = Field(description="the next C-APDU (hex) for the band; null: done")
    state: str


class RelayIn(BaseModel):
    step: int = Field(ge=0, le=1000)
    response: str = Field(pattern=HEX, min_length=4, max_length=1024)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_app(  # noqa: PLR0915 - the routes are closures over one app's dependencies
        sessions: sessionmaker[Session], topups: Topups, operator_token: str) -> FastAPI:
    app = FastAPI(title="Koala band issuer", version="1",
                  description="Over-the-air issuance and top-up of Koala band cards.")
    problems: dict[int | str, dict[str, Any]] = {
        code: {"model": Problem} for code in (400, 401, 403, 404, 409)}

    @app.exception_handler(OrderError)
    async def refused(request: Request, error: OrderError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=409)

    def db() -> Iterator[Session]:
        with sessions() as session:
            yield session

    Db = Annotated[Session, Depends(db)]

    def token(authorization: Annotated[str | None, Header()] = None) -> str:
        if not authorization or not authorization.startswith("Bearer "):
            raise HTTPException(401, "a bearer token is required")
        return authorization.removeprefix("Bearer ")

    Token = Annotated[str, Depends(token)]

    def operator(value: Token) -> None:
        if not hmac.compare_digest(value, operator_token):
            raise HTTPException(403, "this needs the operator's token")

    def device_band(band_id: Id, value: Token, session: Session) -> Band:
        band = session.get(Band, band_id)
        if band is None:
            raise HTTPException(404, "no such band")
        if not (hmac.compare_digest(band.device_token_hash, _hash(value))
                or hmac.compare_digest(value, operator_token)):
            raise HTTPException(403, "this token is not this band's")
        return band

    @app.get("/v1/products")
    def products() -> list[dict[str, str]]:
        return [{"name": p.name, "label": p.label, "aid": p.aid.hex().upper()}
                for p in PRODUCTS.values()]

    @app.post("/v1/bands", status_code=201, responses=problems, dependencies=[Depends(operator)])
    def register_band(body: BandIn, session: Db) -> BandOut:
        device_token = secrets.token_urlsafe(24)
        band = Band(cplc=body.cplc.upper(), uid=body.uid.upper(), device_token_hash=_hash(device_token))
        session.add(band)
        try:
            session.commit()
        except IntegrityError:
            raise HTTPException(409, "a band with this CPLC is registered already") from None
        return BandOut(band_id=band.id, device_token=device_token)

    @app.post("/v1/bands/{band_id}/cards", status_code=201, responses=problems,
              dependencies=[Depends(operator)])
    def register_card(band_id: Id, body: CardIn, session: Db) -> CardOut:
        product = PRODUCTS.get(body.product)
        if product is None:
            raise HTTPException(404, f"no product {body.product!r}")
        if session.get(Band, band_id) is None:
            raise HTTPException(404, "no such band")
        card = Card(band_id=band_id, product=product.name, aid=product.aid.hex().upper(),
                    app_serial=body.app_serial.upper(), status=CardStatus.ACTIVE)
        session.add(card)
        try:
            session.commit()
        except IntegrityError:
            raise HTTPException(409, "this application serial is registered already") from None
        return CardOut(product=card.product, aid=card.aid, app_serial=card.app_serial,
                       status=card.status.value, balance=0)

    @app.post("/v1/bands/{band_id}/funding", responses=problems, dependencies=[Depends(operator)])
    def fund(band_id: Id, body: FundingIn, session: Db,
             idempotency_key: Annotated[str, Header(min_length=8, max_length=100)]) -> dict[str, int]:
        if session.get(Band, band_id) is None:
            raise HTTPException(404, "no such band")
        try:
            ledger.post(session, "funding", [("bank:settlement", -body.amount),
                                             (funding_account(band_id), body.amount)],
                        f"funding:{idempotency_key}")
        except ledger.LedgerError as error:
            raise HTTPException(409, str(error)) from None
        session.commit()
        return {"balance": ledger.balance(session, funding_account(band_id))}

    @app.get("/v1/bands/{band_id}/cards", responses=problems)
    def cards(band_id: Id, value: Token, session: Db) -> list[CardOut]:
        band = device_band(band_id, value, session)
        rows = session.scalars(select(Card).where(Card.band_id == band.id)).all()
        return [CardOut(product=c.product, aid=c.aid, app_serial=c.app_serial,
                        status=c.status.value,
                        balance=ledger.balance(session, f"card:{c.app_serial}")) for c in rows]

    @app.post("/v1/bands/{band_id}/topups", status_code=201, responses=problems)
    def order_topup(band_id: Id, body: TopupIn, value: Token, session: Db,
                    idempotency_key: Annotated[str, Header(min_length=8, max_length=100)]) -> OrderOut:
        device_band(band_id, value, session)
        session.close()
        order_id = topups.order(band_id, bytes.fromhex(body.app_serial), body.amount,
                                f"{band_id}:{idempotency_key}")
        return _order_out(session.get_one(Order, order_id))

    @app.get("/v1/bands/{band_id}/orders/{order_id}", responses=problems)
    def order(band_id: Id, order_id: Id, value: Token, session: Db) -> OrderOut:
        device_band(band_id, value, session)
        found = session.get(Order, order_id)
        if found is None or found.band_id != band_id:
            raise HTTPException(404, "no such order")
        return _order_out(found)

    @app.post("/v1/bands/{band_id}/orders/{order_id}/relay", status_code=201, responses=problems)
    def open_relay(band_id: Id, order_id: Id, value: Token, session: Db) -> RelayOut:
        device_band(band_id, value, session)
        found = session.get(Order, order_id)
        if found is None or found.band_id != band_id:
            raise HTTPException(404, "no such order")
        session.close()
        return _relay(topups.open(order_id))

    @app.post("/v1/bands/{band_id}/relay/{session_id}", responses=problems)
    def answer(band_id: Id, session_id: uuid.UUID, body: RelayIn, value: Token,
               session: Db) -> RelayOut:
        device_band(band_id, value, session)
        session.close()
        return _relay(topups.answer(session_id, body.step, bytes.fromhex(body.response),
                                    band_id=band_id))

    return app


def _order_out(found: Order) -> OrderOut:
    return OrderOut(order_id=found.id, state=found.state.value, amount=found.amount,
                    last_error=found.last_error)


def _relay(relay: Relay) -> RelayOut:
    return RelayOut(session_id=relay.session_id, step=relay.step,
                    command=relay.command.hex().upper() if relay.command else None,
                    state=relay.state.value)
