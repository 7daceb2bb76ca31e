"""The companion (the phone): orders cards and top-ups from the issuer and relays its APDUs to the band.

The phone is not trusted with anything: it passes C-APDUs from the issuer to
the band and R-APDUs back, step by step, and the MACs inside them are
between the issuer and the card. A link that breaks (HTTP or the band) ends
the session; the next call of :meth:`Companion.relay` resumes the order
where the issuer's records say it stands.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from common.relay import run_batch
from issuer.client import ApiClient
from wallet.band import Band


class IssuerClient(ApiClient):
    """The issuer's HTTP API, as the band's companion uses it (with the band's device token)."""

    def order_topup(self, band_id: int, app_serial: bytes, amount: int, key: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call(
            "POST", f"/v1/bands/{band_id}/topups", headers={"Idempotency-Key": key},
            json={"app_serial": app_serial.hex().upper(), "amount": amount})
        return result

    def order_issue(self, band_id: int, product: str, key: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call("POST", f"/v1/bands/{band_id}/issues",
                                            headers={"Idempotency-Key": key},
                                            json={"product": product})
        return result

    def orders(self, band_id: int, unresolved: bool = False) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.call(
            "GET", f"/v1/bands/{band_id}/orders", params={"unresolved": unresolved})
        return result

    def order(self, band_id: int, order_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self.call("GET", f"/v1/bands/{band_id}/orders/{order_id}")
        return result

    def open_relay(self, band_id: int, order_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self.call("POST", f"/v1/bands/{band_id}/orders/{order_id}/relay")
        return result

    def answer(self, band_id: int, session_id: str, step: int,
               responses: list[bytes]) -> dict[str, Any]:
        result: dict[str, Any] = self.call(
            "POST", f"/v1/bands/{band_id}/relay/{session_id}",
            json={"step": step, "responses": [response.hex().upper() for response in responses]})
        return result

    def cards(self, band_id: int) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.call("GET", f"/v1/bands/{band_id}/cards")
        return result

    def funding(self, band_id: int) -> int:
        """The band's funding account at the issuer, in fen."""
        return int(self.call("GET", f"/v1/bands/{band_id}/funding")["balance"])


class BandLink(Protocol):
    """How the phone reaches its band: in the same process, or over BLE (``phone.ble``)."""

    def reset(self) -> None:
        """Start the secure element over, as a new tap would."""

    def run(self, commands: list[bytes]) -> list[bytes]:
        """Run a relay batch on the band (:func:`common.relay.run_batch`); its answers."""


@dataclass(frozen=True, slots=True)
class LocalBand:
    """A band in this process."""

    band: Band

    def reset(self) -> None:
        self.band.power_on()

    def run(self, commands: list[bytes]) -> list[bytes]:
        return run_batch(self.band.transmit, commands)


class Companion:
    def __init__(self, band: BandLink, band_id: int, issuer: IssuerClient) -> None:
        self.band = band
        self.band_id = band_id
        self.issuer = issuer

    def issue(self, product: str, key: str | None = None) -> dict[str, Any]:
        """Order a new card of ``product`` (once per ``key``) and relay its issuance to the band."""
        order = self.issuer.order_issue(self.band_id, product, key or uuid.uuid4().hex)
        self.band.reset()
        self._run(order["relay"])
        return self.issuer.order(self.band_id, int(order["order_id"]))

    def topup(self, app_serial: bytes, amount: int, key: str | None = None) -> dict[str, Any]:
        """Order a top-up (once per ``key``) and relay it to the band until it ends."""
        order = self.issuer.order_topup(self.band_id, app_serial, amount, key or uuid.uuid4().hex)
        self.band.reset()
        return self._run(order["relay"])

    def cancel(self, app_serial: bytes, key: str | None = None) -> dict[str, Any]:
        """Order the card's cancellation (once per ``key``) and relay it: the card proves its
        balance and is deleted; the order as the issuer then has it."""
        order = self.issuer.cancel(self.band_id, app_serial, key or uuid.uuid4().hex)
        self.relay(int(order["order_id"]))
        return self.issuer.order(self.band_id, int(order["order_id"]))

    def sync(self) -> list[dict[str, Any]]:
        """At contact with the band: relay every order the issuer has waiting (a lock, a
        cancellation, one an earlier contact left unfinished); the orders as they ended."""
        waiting = self.issuer.orders(self.band_id, unresolved=True)
        for order in waiting:
            self.relay(int(order["order_id"]))
        return [self.issuer.order(self.band_id, int(order["order_id"])) for order in waiting]

    def relay(self, order_id: int) -> dict[str, Any]:
        """One relay session for the order; the issuer's last word on it (its state)."""
        self.band.reset()
        return self._run(self.issuer.open_relay(self.band_id, order_id))

    def _run(self, step: dict[str, Any]) -> dict[str, Any]:
        while step["commands"]:
            answers = self.band.run([bytes.fromhex(c) for c in step["commands"]])
            step = self.issuer.answer(self.band_id, step["session_id"], step["step"], answers)
        return step
