"""The issuer's HTTP API as its clients call it: the operator's desk and the band's companion.

Every refusal becomes :class:`IssuerUnavailable` with the issuer's reason,
so a command line or an app shows one line, never a traceback. A client of a
simulated world (``at``) states its time in every request's ``Koala-Time``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import httpx

from issuer.errors import IssuerUnavailable
from reader.record import EcashPurchase, LoadRecord, PurchaseRecord, Record, to_json


class ApiClient:
    def __init__(self, base_url: str, token: str, transport: httpx.BaseTransport | None = None,
                 at: datetime | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if at is not None:
            headers["Koala-Time"] = at.isoformat()
        try:
            url = httpx.URL(base_url)
            url.port  # noqa: B018 - httpx checks the port only when asked
        except (httpx.InvalidURL, ValueError) as error:
            raise IssuerUnavailable(f"{base_url!r} is not an issuer's URL: {error}") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise IssuerUnavailable(f"{base_url!r} is not an issuer's URL: it needs http:// or "
                                    f"https:// and a host")
        self._http = httpx.Client(base_url=url, timeout=10.0, transport=transport,
                                  headers=headers)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
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
            raise IssuerUnavailable(f"the issuer refused: {detail}")
        return response.json()

    def cancel(self, band_id: int, app_serial: bytes, key: str) -> dict[str, Any]:
        """Order the card's cancellation (the band's phone, or the operator, may)."""
        result: dict[str, Any] = self.call(
            "POST", f"/v1/bands/{band_id}/cards/{app_serial.hex().upper()}/cancel",
            headers={"Idempotency-Key": key})
        return result

    def close(self) -> None:
        self._http.close()


class OperatorClient(ApiClient):
    """What the operator's staff and systems do: register, fund, cancel, report lost, clear."""

    def register_band(self, cplc: bytes, uid: bytes) -> dict[str, Any]:
        result: dict[str, Any] = self.call("POST", "/v1/bands",
                                           json={"cplc": cplc.hex(), "uid": uid.hex()})
        return result

    def register_card(self, band_id: int, product: str, app_serial: bytes) -> dict[str, Any]:
        """The card comes under the issuer at the balance it proves when the returned order is
        relayed (the band's next sync)."""
        result: dict[str, Any] = self.call("POST", f"/v1/bands/{band_id}/cards",
                                           json={"product": product, "app_serial": app_serial.hex()})
        return result

    def fund(self, band_id: int, amount: int, key: str) -> int:
        result = self.call("POST", f"/v1/bands/{band_id}/funding", json={"amount": amount},
                           headers={"Idempotency-Key": key})
        return int(result["balance"])

    def report_lost(self, band_id: int, new_band_id: int, key: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.call(
            "POST", f"/v1/bands/{band_id}/lost", json={"new_band_id": new_band_id},
            headers={"Idempotency-Key": key})
        return result

    def found(self, band_id: int, key: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call("POST", f"/v1/bands/{band_id}/found",
                                           headers={"Idempotency-Key": key})
        return result

    def resolve(self, order_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self.call("POST", f"/v1/orders/{order_id}/resolve")
        return result

    def clear(self, records: Sequence[PurchaseRecord]) -> dict[str, Any]:
        """Terminals' purchase records (without the terminals' notes) for clearing."""
        return self._clear("/v1/clearing", PurchaseRecord, records)

    def clear_loads(self, records: Sequence[LoadRecord]) -> dict[str, Any]:
        return self._clear("/v1/clearing/loads", LoadRecord, records)

    def clear_ecash(self, records: Sequence[EcashPurchase]) -> dict[str, Any]:
        return self._clear("/v1/clearing/ecash", EcashPurchase, records)

    def _clear(self, path: str, kind: type[Record], records: Sequence[Record]) -> dict[str, Any]:
        result: dict[str, Any] = self.call("POST", path, json=[to_json(r, kind) for r in records])
        return result
