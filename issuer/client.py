"""The issuer's HTTP API as its clients call it: the operator's desk and the band's companion.

Every refusal becomes :class:`IssuerUnavailable` with the issuer's reason,
so a command line or an app shows one line, never a traceback. A client of a
simulated world (``at``) states its time in every request's ``Koala-Time``.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from issuer.errors import IssuerUnavailable
from reader.record import EcashPurchase, LoadRecord, PurchaseRecord, Record, to_json

TIMEOUT_S = 10.0
#: How a kept connection the issuer closed while it was idle shows at the next request.
_DROPPED = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


class ApiClient:
    """One keep-alive connection to the issuer, on the standard library's ``http.client``:
    a companion's top-up is three requests, and a general-purpose client costs the phone
    about a millisecond of CPU each (``bench.ota``); this one a tenth of that."""

    def __init__(self, base_url: str, token: str, at: datetime | None = None) -> None:
        self._headers = {"Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        if at is not None:
            self._headers["Koala-Time"] = at.isoformat()
        try:
            url = urlsplit(base_url)
            port = url.port
        except ValueError as error:
            raise IssuerUnavailable(f"{base_url!r} is not an issuer's URL: {error}") from None
        if url.scheme not in ("http", "https") or not url.hostname:
            raise IssuerUnavailable(f"{base_url!r} is not an issuer's URL: it needs http:// or "
                                    f"https:// and a host")
        self.base_url = base_url.rstrip("/")
        self._prefix = url.path.rstrip("/")
        self._target = (url.scheme, url.hostname, port)
        self._connection: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        scheme, host, port = self._target
        if scheme == "https":
            return http.client.HTTPSConnection(host, port, timeout=TIMEOUT_S,
                                               context=ssl.create_default_context())
        return http.client.HTTPConnection(host, port, timeout=TIMEOUT_S)

    def call(self, method: str, path: str, json: Any = None, headers: Mapping[str, str] | None = None,
             params: Mapping[str, Any] | None = None) -> Any:
        """The issuer's JSON answer to ``method path``; :class:`IssuerUnavailable` with its
        reason if it refuses, or if it cannot be reached."""
        target = self._prefix + path + (f"?{urlencode(_query(params))}" if params else "")
        body = None if json is None else _dumps(json).encode()
        sent = {**self._headers, **(headers or {})}
        if body is not None:
            sent["Content-Type"] = "application/json"
        status, data = self._exchange(method, target, body, sent)
        try:
            answer = _loads(data) if data else None
        except ValueError:
            answer = None
        if status >= 400:
            detail = answer.get("detail", data.decode(errors="replace")) if isinstance(answer, dict) \
                else data.decode(errors="replace")
            raise IssuerUnavailable(f"the issuer refused: {detail}")
        if answer is None:
            raise IssuerUnavailable(f"the issuer at {self.base_url} answered {status} without JSON")
        return answer

    def _exchange(self, method: str, target: str, body: bytes | None,
                  headers: dict[str, str]) -> tuple[int, bytes]:
        """One request on the kept connection. A connection the issuer closed while idle is
        found out by the first request after; that one goes again on a new connection (every
        request the companion repeats is idempotent: keys, relay steps)."""
        kept = self._connection is not None
        try:
            return self._request(method, target, body, headers)
        except _DROPPED as error:
            if not kept:
                raise self._unreachable(error) from error
        try:
            return self._request(method, target, body, headers)
        except _DROPPED as error:
            raise self._unreachable(error) from error

    def _request(self, method: str, target: str, body: bytes | None,
                 headers: dict[str, str]) -> tuple[int, bytes]:
        connection = self._connection = self._connection or self._connect()
        try:
            connection.request(method, target, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
        except _DROPPED:
            self.close()
            raise
        except (OSError, http.client.HTTPException) as error:
            self.close()
            raise self._unreachable(error) from error
        if response.will_close:
            self.close()
        return response.status, data

    def _unreachable(self, error: Exception) -> IssuerUnavailable:
        reason = "timed out" if isinstance(error, socket.timeout) else str(error) or type(error).__name__
        return IssuerUnavailable(f"the issuer at {self.base_url} is unreachable: {reason}")

    def cancel(self, band_id: int, app_serial: bytes, key: str) -> dict[str, Any]:
        """Order the card's cancellation (the band's phone, or the operator, may)."""
        result: dict[str, Any] = self.call(
            "POST", f"/v1/bands/{band_id}/cards/{app_serial.hex().upper()}/cancel",
            headers={"Idempotency-Key": key})
        return result

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _query(params: Mapping[str, Any]) -> dict[str, str]:
    return {k: ("true" if v else "false") if isinstance(v, bool) else str(v) for k, v in params.items()}


# ``call`` takes a ``json`` argument, as HTTP clients do, which hides the module there.
_dumps = json.JSONEncoder(separators=(",", ":")).encode
_loads = json.loads


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
