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

(No ``from __future__ import annotations`` here: FastAPI reads the route
signatures at run time, and the dependencies are local to :func:`create_app`.)
"""


import hashlib
import hmac
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import MISSING
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Body, Depends, FastAPI, Header, HTTPException, Path, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, create_model
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from issuer import ledger
from issuer.accounts import SETTLEMENT, card_account, funding_account
from issuer.clearing import Cleared, clear, clear_ecash, clear_loads
from issuer.db import Band, Card, Order
from issuer.keys import IssuerKeys
from issuer.orders import UNRESOLVED, Caller, Orders, Relay
from issuer.procedure import Forbidden, OrderError, UnknownOrder
from issuer.products import PRODUCTS, SERIAL_NUMBERS, product
from reader import clock
from reader.record import (
    EcashPurchase,
    Hex,
    Int,
    LoadRecord,
    PurchaseRecord,
    Record,
    Tags,
    Text,
    from_json,
    spec,
)

HEX = r"^([0-9A-Fa-f]{2})*$"
#: Row ids as the databases store them (PostgreSQL integer): larger ones are simply absent.
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]


class StrictBody(BaseModel):
    """A request body, read strictly: JSON true is not the integer 1, "5" is not 5, and a
    field the API does not know is refused, not ignored."""

    model_config = ConfigDict(strict=True, extra="forbid")


class Problem(BaseModel):
    detail: str


class BandIn(StrictBody):
    cplc: str = Field(pattern=HEX, min_length=84, max_length=84, description="CPLC, 42 bytes hex")
    uid: str = Field(pattern=HEX, min_length=8, max_length=20)
    isd_key_set: str = Field("test", max_length=64, description=(
        "the key set of the band's card manager: 'test' (GP test keys, development bands) or "
        "the name of the band maker's masters in the issuer's key store (KDF3 per band)"))


class BandOut(BaseModel):
    band_id: int
    device_token: str
    order_id: int | None = Field(description=(
        "the order that gives the band's card manager the issuer's keys in place of the test "
        "keys (none when it has other keys)"))


class CardIn(StrictBody):
    product: str = Field(description="a product name from /v1/products, or ecash (the bank's)")
    app_serial: str = Field(pattern=HEX, min_length=20, max_length=20)


class RegisteredOut(BaseModel):
    order_id: int | None = Field(description=(
        "the order that takes the card over at the balance it proves when relayed (none for a "
        "card this issuer issued)"))
    product: str
    app_serial: str


class CardOut(BaseModel):
    product: str
    aid: str
    app_serial: str
    status: str
    balance: int = Field(description="the issuer's view, fen")


class FundingIn(StrictBody):
    amount: int = Field(gt=0, le=10_000_000, description="fen")


class TopupIn(StrictBody):
    app_serial: str = Field(pattern=HEX, min_length=20, max_length=20)
    amount: int = Field(gt=0, le=100_000, description="fen")


class IssueIn(StrictBody):
    product: str = Field(description="a product name from /v1/products")


class LostIn(StrictBody):
    new_band_id: int = Field(ge=1, le=2**31 - 1, description="the band the balances move to")


def record_body(kind: type[Record], name: str, doc: str) -> type[StrictBody]:
    """The request body of a record (:mod:`reader.record`), field for field, each bounded as
    the record declares it: hex strings for bytes, an object of hex tags for a tag map."""
    definitions: dict[str, Any] = {}
    for field in spec(kind):
        default = ... if field.default is MISSING else field.default
        bound = field.bound
        if isinstance(bound, Hex):
            definitions[field.name] = (str, Field(
                default, pattern=HEX, min_length=None if bound.size is None else 2 * bound.size,
                max_length=2 * (bound.size or bound.max_size or 0) or None,
                description=bound.description))
        elif isinstance(bound, Int):
            definitions[field.name] = (int, Field(default, ge=bound.low, le=bound.high,
                                                  description=bound.description))
        elif isinstance(bound, Text):
            definitions[field.name] = (str, Field(default, pattern=bound.pattern,
                                                  max_length=bound.max_length))
        elif isinstance(bound, Tags):
            definitions[field.name] = (
                dict[Tag, Annotated[str, Field(pattern=HEX, max_length=2 * bound.max_size)]],
                Field(default, max_length=bound.max_items, description=bound.description))
        else:
            raise TypeError(f"{kind.__name__}.{field.name} has no bound for the API")
    return create_model(name, __base__=StrictBody, __doc__=doc, **definitions)


Tag = Annotated[str, Field(pattern=r"^([0-9A-Fa-f]{2}){1,2}$")]

if TYPE_CHECKING:  # to mypy a record's body is any StrictBody: its fields are made at run time
    PurchaseIn = StrictBody
    LoadIn = StrictBody
    EcashPurchaseIn = StrictBody
else:
    PurchaseIn = record_body(PurchaseRecord, "PurchaseIn", (
        "A terminal's purchase record (as ``koala`` terminals keep them for clearing)."))
    EcashPurchaseIn = record_body(EcashPurchase, "EcashPurchaseIn", (
        "A QuickPass POS's record of an offline e-cash purchase, with the TC that proves it."))
    LoadIn = record_body(LoadRecord, "LoadIn", (
        "A station load machine's record of a cash load, with the TAC that proves it."))


class ClearedOut(BaseModel):
    booked: int
    duplicates: int
    free: int = Field(description="proven purchases of nothing (metro entries)")
    opening: int = Field(0, description=(
        "proven records from before the card came under the issuer: in its opening balance"))
    refused: list[str] = Field(description="records not booked, and why")


class RelayOut(BaseModel):
    session_id: uuid.UUID
    step: int
    commands: list[str] = Field(description=(
        "the next C-APDUs (hex) for the band, run in order until one answers other than 9000; "
        "empty: the order is over"))
    state: str


class OrderOut(BaseModel):
    order_id: int
    kind: str
    state: str
    amount: int = Field(description="fen: a top-up's amount, a cancelled card's refund")
    app_serial: str | None
    last_error: str | None = None
    relay: RelayOut | None = Field(default=None, description=(
        "a relay session opened with the order (the companion's ordering routes), as if by "
        "POST .../orders/{order_id}/relay"))


RApdu = Annotated[str, Field(pattern=HEX, min_length=4, max_length=1024)]


class FoundOut(BaseModel):
    device_token: str
    orders: list[OrderOut] = Field(description="the unlocks to relay to the band")


class RelayIn(StrictBody):
    step: int = Field(ge=0, le=1000)
    responses: list[RApdu] = Field(min_length=1, max_length=16, description=(
        "the band's answers to the step's commands, in order: all of them, or those up to the "
        "first other than 9000 or up to a broken link"))


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_app(  # noqa: PLR0915 - the routes are closures over one app's dependencies
        sessions: sessionmaker[Session], orders: Orders, keys: IssuerKeys, operator_token: str,
        isd_key_sets: frozenset[str] = frozenset({"test"}), client_time: bool = False) -> FastAPI:
    app = FastAPI(title="Koala band issuer", version="1",
                  description="Over-the-air issuance and top-up of Koala band cards.")
    problems: dict[int | str, dict[str, Any]] = {
        code: {"model": Problem} for code in (400, 401, 403, 404, 409, 503)}

    @app.exception_handler(OrderError)
    async def refused(request: Request, error: OrderError) -> JSONResponse:
        status = 404 if isinstance(error, UnknownOrder) else 403 if isinstance(error, Forbidden) \
            else 409
        return JSONResponse({"detail": str(error)}, status_code=status)

    @app.exception_handler(OperationalError)
    async def database_down(request: Request, error: OperationalError) -> JSONResponse:
        """A lost database connection is the issuer's trouble, not the client's, and passes: a
        problem in JSON (every transaction rolled back whole), never a bare 500."""
        return JSONResponse({"detail": "the issuer's database is unreachable: nothing was "
                                       "changed, try again"}, status_code=503,
                            headers={"Retry-After": "1"})

    def db() -> Iterator[Session]:
        with sessions() as session:
            yield session

    Db = Annotated[Session, Depends(db)]

    def token(authorization: Annotated[str | None, Header()] = None) -> str:
        if not authorization or not authorization.startswith("Bearer "):
            raise HTTPException(401, "a bearer token is required")
        return authorization.removeprefix("Bearer ")

    Token = Annotated[str, Depends(token)]

    async def request_time(koala_time: Annotated[str | None, Header(
            alias="Koala-Time", description=(
                "ISO 8601 time of a simulated world (an issuer started with client time only); "
                "without an offset it is Beijing time"))] = None) -> datetime:
        if koala_time is None:
            return orders.now()
        if not client_time:
            raise HTTPException(400, "this issuer keeps its own clock and takes no Koala-Time "
                                     "(start it with --client-time to replay a day)")
        try:
            return orders.now(clock.parse(koala_time))
        except clock.BadMoment as error:
            raise HTTPException(400, f"Koala-Time: {error}") from None

    Now = Annotated[datetime, Depends(request_time)]
    IdempotencyKey = Annotated[str, Header(min_length=8, max_length=100)]

    def operator(value: Token) -> None:
        if not hmac.compare_digest(value, operator_token):
            raise HTTPException(403, "this needs the operator's token")

    def caller(band_id: int, value: str) -> Caller:
        """The relay's caller: the operator, or a device whose token the order's band must hold
        (checked inside the relay's own transaction, saving a query per APDU batch)."""
        return Caller(band_id, None if hmac.compare_digest(value, operator_token) else _hash(value))

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
    def register_band(body: BandIn, session: Db, now: Now, response: Response) -> BandOut:
        """Register a band; registering it again (a retry, a new phone) keeps the band and
        gives it a new device token, revoking the old one. A band on the test keys gets an
        order that gives its card manager the issuer's keys: relay it (the band's next sync
        does)."""
        if body.isd_key_set not in isd_key_sets:
            raise HTTPException(404, f"no card manager key set {body.isd_key_set!r}; known: "
                                     f"{', '.join(sorted(isd_key_sets))}")
        device_token = secrets.token_urlsafe(24)
        band = session.scalar(select(Band).where(Band.cplc == body.cplc.upper()).with_for_update())
        if band is not None:
            if band.uid != body.uid.upper():
                raise HTTPException(409, "a band with this CPLC is registered already, with "
                                         "another UID")
            band.device_token_hash = _hash(device_token)
            response.status_code = 200
        else:
            band = Band(cplc=body.cplc.upper(), uid=body.uid.upper(), isd_key_set=body.isd_key_set,
                        device_token_hash=_hash(device_token), created_at=now)
            session.add(band)
        try:
            session.commit()
        except IntegrityError:
            raise HTTPException(409, "the band was registered at this very moment by another "
                                     "request: register again") from None
        session.close()
        return BandOut(band_id=band.id, device_token=device_token,
                       order_id=orders.take_over(band.id, now))

    @app.post("/v1/bands/{band_id}/cards", status_code=201, responses=problems,
              dependencies=[Depends(operator)])
    def register_card(band_id: Id, body: CardIn, session: Db, now: Now,
                      response: Response) -> RegisteredOut:
        """A card personalised elsewhere (a factory card, or the bank's under its PAN padded
        with F), to come under this issuer at the balance it proves: relay the order (the
        band's next sync does). Registering it again returns the same order."""
        session.close()
        order_id, new = orders.register(band_id, body.product, bytes.fromhex(body.app_serial), now)
        if not new:
            response.status_code = 200
        return RegisteredOut(order_id=order_id, product=body.product,
                             app_serial=body.app_serial.upper())

    @app.post("/v1/bands/{band_id}/funding", responses=problems, dependencies=[Depends(operator)])
    def fund(band_id: Id, body: FundingIn, session: Db, now: Now,
             idempotency_key: IdempotencyKey) -> dict[str, int]:
        if session.get(Band, band_id) is None:
            raise HTTPException(404, "no such band")
        try:
            ledger.post(session, "funding", [(SETTLEMENT, -body.amount),
                                             (funding_account(band_id), body.amount)],
                        f"funding:{idempotency_key}", at=now)
        except ledger.LedgerError as error:
            raise HTTPException(409, str(error)) from None
        session.commit()
        return {"balance": ledger.balance(session, funding_account(band_id))}

    @app.get("/v1/bands/{band_id}/cards", responses=problems)
    def cards(band_id: Id, value: Token, session: Db) -> list[CardOut]:
        band = device_band(band_id, value, session)
        if band.lost_at is not None and not hmac.compare_digest(value, operator_token):
            raise HTTPException(403, "the band is reported lost: its token can only sync")
        rows = session.scalars(select(Card).where(Card.band_id == band.id)).all()
        return [CardOut(product=c.product, aid=c.aid, app_serial=c.app_serial,
                        status=c.status.value,
                        balance=ledger.balance(session, card_account(c))) for c in rows]

    @app.post("/v1/clearing", responses=problems, dependencies=[Depends(operator)])
    def clearing(body: Annotated[list[PurchaseIn], Body(max_length=10_000)], session: Db,
                 now: Now) -> ClearedOut:
        """Book terminals' purchase records whose TAC verifies, each once."""
        records = [from_json(PurchaseRecord, r.model_dump()) for r in body]
        result = clear(session, keys, records, now)
        session.commit()
        return cleared_out(result)

    @app.post("/v1/clearing/loads", responses=problems, dependencies=[Depends(operator)])
    def clearing_loads(body: Annotated[list[LoadIn], Body(max_length=10_000)], session: Db,
                       now: Now) -> ClearedOut:
        """Book station load machines' cash loads whose TAC verifies, each once."""
        records = [from_json(LoadRecord, r.model_dump()) for r in body]
        result = clear_loads(session, keys, records, now, orders.terminal_id)
        session.commit()
        return cleared_out(result)

    @app.post("/v1/clearing/ecash", responses=problems, dependencies=[Depends(operator)])
    def clearing_ecash(body: Annotated[list[EcashPurchaseIn], Body(max_length=10_000)],
                       session: Db, now: Now) -> ClearedOut:
        """Book the bank card's offline purchases whose TC verifies, each once."""
        purchases = [from_json(EcashPurchase, r.model_dump()) for r in body]
        result = clear_ecash(session, keys, purchases, now)
        session.commit()
        return cleared_out(result)

    def order_out(order_id: int, session: Session) -> OrderOut:
        """The order as committed (routes that order close their session before ordering)."""
        found, serial = session.execute(select(Order, Card.app_serial)
                                        .outerjoin(Card, Order.card_id == Card.id)
                                        .where(Order.id == order_id)).one()
        return OrderOut(order_id=found.id, kind=found.kind.value, state=found.state.value,
                        amount=found.amount, app_serial=serial, last_error=found.last_error)

    def ordered(order_id: int, band_id: int, session: Session, now: datetime) -> OrderOut:
        """The companion's new order with a relay session opened for it: one round trip less."""
        relay = _relay(orders.open(order_id, Caller(band_id), now))  # the route checked the token
        return order_out(order_id, session).model_copy(update={"relay": relay})

    @app.post("/v1/bands/{band_id}/issues", status_code=201, responses=problems)
    def order_issue(band_id: Id, body: IssueIn, value: Token, session: Db, now: Now,
                    idempotency_key: IdempotencyKey) -> OrderOut:
        """Order a new card of a product on the band; relay the order to issue it."""
        device_band(band_id, value, session)  # a lost band's: refused by the order service
        if body.product not in PRODUCTS:
            raise HTTPException(404, f"no product {body.product!r}")
        serial = product(body.product).serial(secrets.randbelow(SERIAL_NUMBERS))
        session.close()  # SQLite: the order's own transaction must not wait for this one
        return ordered(orders.issue(band_id, body.product, serial, f"{band_id}:{idempotency_key}",
                                    now), band_id, session, now)

    @app.post("/v1/bands/{band_id}/topups", status_code=201, responses=problems)
    def order_topup(band_id: Id, body: TopupIn, value: Token, session: Db, now: Now,
                    idempotency_key: IdempotencyKey) -> OrderOut:
        device_band(band_id, value, session)  # a lost band's: refused by the order service
        session.close()
        return ordered(orders.topup(band_id, bytes.fromhex(body.app_serial), body.amount,
                                    f"{band_id}:{idempotency_key}", now), band_id, session, now)

    @app.post("/v1/bands/{band_id}/cards/{app_serial}/cancel", status_code=201, responses=problems,
              dependencies=[Depends(operator)])
    def order_cancel(band_id: Id, app_serial: Annotated[str, Path(pattern=HEX, min_length=20,
                                                                  max_length=20)],
                     session: Db, now: Now, idempotency_key: IdempotencyKey) -> OrderOut:
        """Cancel a card: relayed, it proves its balance, is deleted, and the balance is refunded."""
        return order_out(orders.cancel(band_id, bytes.fromhex(app_serial),
                                       f"{band_id}:{idempotency_key}", now), session)

    @app.post("/v1/bands/{band_id}/lost", status_code=201, responses=problems,
              dependencies=[Depends(operator)])
    def report_lost(band_id: Id, body: LostIn, session: Db, now: Now,
                    idempotency_key: IdempotencyKey) -> list[OrderOut]:
        """Lock the band's cards now and at its next contact; their balances go to the new band."""
        if session.get(Band, band_id) is None:
            raise HTTPException(404, "no such band")
        session.close()
        made = orders.report_lost(band_id, body.new_band_id, f"{band_id}:{idempotency_key}", now)
        return [order_out(order_id, session) for order_id in made]

    @app.post("/v1/bands/{band_id}/found", status_code=201, responses=problems,
              dependencies=[Depends(operator)])
    def found(band_id: Id, session: Db, now: Now, idempotency_key: IdempotencyKey) -> FoundOut:
        """The lost band is back with its owner: a new device token (the old one stays
        revoked), and an order to unlock each card whose balance stayed on it; relay them."""
        session.close()
        device_token = secrets.token_urlsafe(24)
        made = orders.found(band_id, f"{band_id}:{idempotency_key}", _hash(device_token), now)
        return FoundOut(device_token=device_token,
                        orders=[order_out(order_id, session) for order_id in made])

    @app.post("/v1/orders/{order_id}/resolve", responses=problems, dependencies=[Depends(operator)])
    def resolve(order_id: Id, session: Db, now: Now) -> OrderOut:
        """Close an order its card never proved, once the clearing window has passed without
        contact: held money goes back (a top-up, a cancellation's proven balance) or on (a lost
        card's balance), booked as the operator's decision."""
        session.close()
        orders.resolve(order_id, now)
        return order_out(order_id, session)

    @app.get("/v1/bands/{band_id}/orders", responses=problems)
    def band_orders(band_id: Id, value: Token, session: Db,
                    unresolved: bool = False) -> list[OrderOut]:
        """The band's orders, oldest first; ``unresolved``: those to relay at the next contact."""
        device_band(band_id, value, session)
        query = select(Order.id).where(Order.band_id == band_id).order_by(Order.id)
        if unresolved:
            query = query.where(Order.state.in_(UNRESOLVED))
        return [order_out(order_id, session) for order_id in session.scalars(query).all()]

    @app.get("/v1/bands/{band_id}/orders/{order_id}", responses=problems)
    def order(band_id: Id, order_id: Id, value: Token, session: Db) -> OrderOut:
        device_band(band_id, value, session)
        found = session.get(Order, order_id)
        if found is None or found.band_id != band_id:
            raise HTTPException(404, "no such order")
        return order_out(order_id, session)

    @app.post("/v1/bands/{band_id}/orders/{order_id}/relay", status_code=201, responses=problems)
    def open_relay(band_id: Id, order_id: Id, value: Token, now: Now) -> RelayOut:
        return _relay(orders.open(order_id, caller(band_id, value), now))

    @app.post("/v1/bands/{band_id}/relay/{session_id}", responses=problems)
    def answer(band_id: Id, session_id: uuid.UUID, body: RelayIn, value: Token,
               now: Now) -> RelayOut:
        return _relay(orders.answer(session_id, body.step,
                                    [bytes.fromhex(response) for response in body.responses],
                                    caller(band_id, value), now))

    return app


def cleared_out(result: Cleared) -> ClearedOut:
    return ClearedOut(booked=result.booked, duplicates=result.duplicates, free=result.free,
                      opening=result.opening, refused=result.refused)


def _relay(relay: Relay) -> RelayOut:
    return RelayOut(session_id=relay.session_id, step=relay.step,
                    commands=[command.hex().upper() for command in relay.commands],
                    state=relay.state.value)
