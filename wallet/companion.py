"""The companion (the phone): orders top-ups from the issuer and relays its APDUs to the band.

The phone is not trusted with anything: it passes C-APDUs from the issuer to
the band and R-APDUs back, step by step, and the MACs inside them are
between the issuer and the card. A link that breaks (HTTP or the band) ends
the session; the next call of :meth:`Companion.relay` resumes the order
where the issuer's records say it stands.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from wallet.band import Band
from wallet.errors import WalletError


class IssuerUnavailable(WalletError):
    """The issuer could not be reached or refused the request (the message says why)."""


class IssuerClient:
    """The issuer's HTTP API, as the band's companion uses it."""

    def __init__(self, base_url: str, token: str, transport: httpx.BaseTransport | None = None) -> None:
        self._http = httpx.Client(base_url=base_url, timeout=10.0, transport=transport,
                                  headers={"Authorization": f"Bearer {token}"})

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise IssuerUnavailable(f"the issuer at {self._http.base_url} is unreachable: {error}") \
                from error
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise IssuerUnavailable(f"the issuer refused ({response.status_code}): {detail}")
        return response.json()

    def order_topup(self, band_id: int, app_serial: bytes, amount: int, key: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "POST", f"/v1/bands/{band_id}/topups", headers={"Idempotency-Key": key},
            json={"app_serial": app_serial.hex().upper(), "amount": amount})
        return result

    def open_relay(self, band_id: int, order_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", f"/v1/bands/{band_id}/orders/{order_id}/relay")
        return result

    def answer(self, band_id: int, session_id: str, step: int, response: bytes) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "POST", f"/v1/bands/{band_id}/relay/{session_id}",
            json={"step": step, "response": response.hex().upper()})
        return result

    def cards(self, band_id: int) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", f"/v1/bands/{band_id}/cards")
        return result

    def close(self) -> None:
        self._http.close()


class Companion:
    def __init__(self, band: Band, band_id: int, issuer: IssuerClient) -> None:
        self.band = band
        self.band_id = band_id
        self.issuer = issuer

    def topup(self, app_serial: bytes, amount: int, key: str | None = None) -> dict[str, Any]:
        """Order a top-up (once per ``key``) and relay it to the band until it ends."""
        order = self.issuer.order_topup(self.band_id, app_serial, amount, key or uuid.uuid4().hex)
        return self.relay(int(order["order_id"]))

    def relay(self, order_id: int) -> dict[str, Any]:
        """One relay session for the order; the issuer's last word on it."""
        self.band.power_on()
        step = self.issuer.open_relay(self.band_id, order_id)
        while step["command"] is not None:
            response = self.band.transmit(bytes.fromhex(step["command"]))
            step = self.issuer.answer(self.band_id, step["session_id"], step["step"], response)
        return step
