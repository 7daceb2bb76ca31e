"""The issuer over real HTTP (uvicorn on loopback), driven by the band's companion."""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest

from applets.gp.cplc import cplc
from issuer.errors import IssuerUnavailable
from issuer.products import TRANSIT
from phone.companion import Companion, IssuerClient, LocalBand
from reader import clock, pboc
from reader.flow import run
from reader.transport import in_field
from tests.support.http import OPERATOR, registered, serving


def test_a_companion_tops_up_over_http_and_everyone_agrees(issuer_url):
    band, band_id, token, serial = registered(issuer_url)
    client = IssuerClient(issuer_url, token)
    companion = Companion(LocalBand(band), band_id, client)
    final = companion.topup(serial, 5000, key="first-topup")
    assert final["state"] == "settled"
    again = client.order_topup(band_id, serial, 5000, "first-topup")
    assert again["state"] == "settled", "the same idempotency key is the same order"
    assert band.card("transit").balance == 5000
    assert client.cards(band_id)[0]["balance"] == 5000


def test_bad_requests_get_a_4xx_with_a_reason(issuer_url):
    _, band_id, token, serial = registered(issuer_url)
    http = httpx.Client(base_url=issuer_url)
    assert http.get(f"/v1/bands/{band_id}/cards").status_code == 401
    other = registered(issuer_url)
    stranger = {"Authorization": f"Bearer {other[2]}"}
    assert http.get(f"/v1/bands/{band_id}/cards", headers=stranger).status_code == 403
    mine = {"Authorization": f"Bearer {token}", "Idempotency-Key": "abcdefgh"}
    bad = http.post(f"/v1/bands/{band_id}/topups", headers=mine,
                    json={"app_serial": "zz", "amount": -5})
    assert bad.status_code == 422 and "detail" in bad.json()
    unknown = http.post(f"/v1/bands/{band_id}/topups", headers=mine,
                        json={"app_serial": "00" * 10, "amount": 100})
    assert unknown.status_code == 409 and "no such card" in unknown.json()["detail"]
    with pytest.raises(IssuerUnavailable, match="not this band's"):
        IssuerClient(issuer_url, other[2]).order_topup(band_id, serial, 100, "k" * 10)


def test_only_the_bands_device_relays_its_orders(issuer_url):
    band, band_id, token, serial = registered(issuer_url)
    other_band, other_id, other_token, _ = registered(issuer_url)
    order = IssuerClient(issuer_url, token).order_topup(band_id, serial, 100, "relay-auth-1")
    session, step = order["relay"]["session_id"], order["relay"]["step"]
    http = httpx.Client(base_url=issuer_url)
    answer = {"step": step, "responses": ["9000"]}
    stranger = {"Authorization": f"Bearer {other_token}"}
    assert http.post(f"/v1/bands/{band_id}/relay/{session}", json=answer,
                     headers=stranger).status_code == 403
    assert http.post(f"/v1/bands/{other_id}/relay/{session}", json=answer,
                     headers=stranger).status_code == 404, "another band's session is not found"
    assert http.post(f"/v1/bands/{band_id}/orders/{order['order_id']}/relay",
                     headers=stranger).status_code == 403
    band.power_on()
    finished = Companion(LocalBand(band), band_id,
                         IssuerClient(issuer_url, token)).relay(order["order_id"])
    assert finished["state"] == "settled" and band.card("transit").balance == 100
    assert other_band.card("transit").balance == 0


def test_an_issuer_on_its_own_clock_refuses_a_stated_time(issuer_url):
    http = httpx.Client(base_url=issuer_url, headers={"Authorization": f"Bearer {OPERATOR}",
                                                      "Koala-Time": "2026-11-23T07:00"})
    refused = http.post("/v1/bands", json={"cplc": "00" * 42, "uid": "01020304"})
    assert refused.status_code == 400 and "keeps its own clock" in refused.json()["detail"]


def test_a_simulated_worlds_issuer_dates_the_card_from_the_stated_time(engine):
    own_clock = clock.fixed(datetime(2031, 7, 1, 12, 0))  # what the stated time overrides
    with serving(engine, own_clock, client_time=True) as url:
        band, band_id, token, serial = registered(url)
        bad = httpx.post(f"{url}/v1/bands/{band_id}/topups", json={"app_serial": serial.hex(),
                                                                   "amount": 100},
                         headers={"Authorization": f"Bearer {token}", "Koala-Time": "noon",
                                  "Idempotency-Key": "bad-time-1"})
        assert bad.status_code == 400 and "Koala-Time" in bad.json()["detail"]
        client = IssuerClient(url, token, at=clock.parse("2026-11-23T07:05"))
        assert Companion(LocalBand(band), band_id, client).topup(serial, 500)["state"] == "settled"
    band.power_on()
    with in_field(band) as link:
        run(pboc.select_purse(TRANSIT.aid), link)
        (load,) = run(pboc.read_log(), link)
    assert (load.date.hex(), load.time.hex()) == ("20261123", "070500")


def test_registering_again_keeps_the_band_and_rotates_its_token(issuer_url):
    band, band_id, token, serial = registered(issuer_url)
    operator = httpx.Client(base_url=issuer_url, headers={"Authorization": f"Bearer {OPERATOR}"})
    again = operator.post("/v1/bands", json={"cplc": cplc(band.uid).hex(), "uid": band.uid.hex()})
    assert again.status_code == 200 and again.json()["band_id"] == band_id
    fresh = again.json()["device_token"]
    assert IssuerClient(issuer_url, fresh).cards(band_id)[0]["app_serial"] == serial.hex().upper()
    with pytest.raises(IssuerUnavailable, match="not this band's"):
        IssuerClient(issuer_url, token).cards(band_id)
    card = {"product": "transit", "app_serial": serial.hex()}
    first = operator.post(f"/v1/bands/{band_id}/cards", json=card)
    assert first.status_code == 200 and first.json()["order_id"] is not None
    claimed = operator.post(f"/v1/bands/{band_id}/cards", json={**card, "balance": 5})
    assert claimed.status_code == 422, "an opening balance is the card's to prove, not ours to say"


def test_a_database_out_of_reach_is_a_503_problem_and_booleans_are_not_integers(issuer_url):
    from issuer.db import make_engine  # noqa: PLC0415

    down = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/test")  # nothing listens there
    with serving(down, clock.system_clock) as url:
        answer = httpx.post(f"{url}/v1/bands/1/funding", json={"amount": 5},
                            headers={"Authorization": f"Bearer {OPERATOR}",
                                     "Idempotency-Key": "down-1234"})
    assert answer.status_code == 503 and "database is unreachable" in answer.json()["detail"]
    _, band_id, _, _ = registered(issuer_url)
    boolean = httpx.post(f"{issuer_url}/v1/bands/{band_id}/funding", json={"amount": True},
                         headers={"Authorization": f"Bearer {OPERATOR}",
                                  "Idempotency-Key": "bool-1234"})
    assert boolean.status_code == 422


def test_a_lost_bands_token_only_syncs(issuer_url):
    band, band_id, token, serial = registered(issuer_url)
    _, spare_id, _, _ = registered(issuer_url)
    operator = httpx.Client(base_url=issuer_url, headers={"Authorization": f"Bearer {OPERATOR}"})
    lost = operator.post(f"/v1/bands/{band_id}/lost", json={"new_band_id": spare_id},
                         headers={"Idempotency-Key": f"lost-band-{band_id}"})
    assert lost.status_code == 201, lost.text
    device = httpx.Client(base_url=issuer_url, headers={"Authorization": f"Bearer {token}",
                                                        "Idempotency-Key": f"after-lost-{band_id}"})
    for method, path, body in (("POST", "topups", {"app_serial": serial.hex(), "amount": 100}),
                               ("POST", "issues", {"product": "canteen"}), ("GET", "cards", None)):
        refused = device.request(method, f"/v1/bands/{band_id}/{path}", json=body)
        assert refused.status_code == 403 and "lost" in refused.json()["detail"], (path, refused.text)
    waiting = device.get(f"/v1/bands/{band_id}/orders", params={"unresolved": True})
    assert waiting.status_code == 200 and [o["kind"] for o in waiting.json()] == ["lost"]
    synced = Companion(LocalBand(band), band_id, IssuerClient(issuer_url, token)).sync()
    assert [o["state"] for o in synced] == ["settled"], "the lock still reaches the band"


def test_a_found_band_gets_a_new_token_and_its_cards_back(issuer_url):
    band, band_id, token, _ = registered(issuer_url)
    _, new_id, _, _ = registered(issuer_url)
    operator = httpx.Client(base_url=issuer_url, headers={"Authorization": f"Bearer {OPERATOR}"})

    def found() -> httpx.Response:
        return operator.post(f"/v1/bands/{band_id}/found", headers={"Idempotency-Key": "found-0001"})

    not_lost = found()
    assert not_lost.status_code == 409 and "not reported lost" in not_lost.json()["detail"]
    assert operator.post(f"/v1/bands/{band_id}/lost", json={"new_band_id": new_id},
                         headers={"Idempotency-Key": "lost-0001"}).status_code == 201
    back = found()
    assert back.status_code == 201 and [o["kind"] for o in back.json()["orders"]] == ["unlock"]
    assert [o["order_id"] for o in found().json()["orders"]] == \
        [o["order_id"] for o in back.json()["orders"]], "the same key, the same unlocks"
    with pytest.raises(IssuerUnavailable, match="not this band's"):
        IssuerClient(issuer_url, token).cards(band_id)  # the token the thief may hold
    fresh = IssuerClient(issuer_url, found().json()["device_token"])
    synced = Companion(LocalBand(band), band_id, fresh).sync()
    assert [(o["kind"], o["state"]) for o in synced] == [("unlock", "settled")]
    assert fresh.cards(band_id)[0]["status"] == "active"
