"""The issuer's HTTP client keeps one connection: one the server dropped while idle is found
out by the next request, which goes again on a new connection; an issuer that cannot be
reached, or refuses, is one IssuerUnavailable with the reason."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from issuer.client import ApiClient
from issuer.errors import IssuerUnavailable


class DropsIdle(BaseHTTPRequestHandler):
    """Answers on HTTP/1.1 with no ``Connection: close``, then closes the connection anyway,
    as a server does with one that stayed idle past its keep-alive."""

    protocol_version = "HTTP/1.1"
    requests: list[str] = []

    def do_GET(self) -> None:
        self.requests.append(self.path)
        status, body = (200, {"path": self.path}) if self.path != "/refused" else \
            (409, {"detail": "not now"})
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = HTTPServer(("127.0.0.1", 0), DropsIdle)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    DropsIdle.requests.clear()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_connection_dropped_while_idle_is_replaced_once(server: str) -> None:
    client = ApiClient(server, "token")
    assert client.call("GET", "/one") == {"path": "/one"}
    assert client.call("GET", "/two", params={"unresolved": True}) == {"path": "/two?unresolved=true"}
    assert DropsIdle.requests == ["/one", "/two?unresolved=true"]  # each sent once, answered once


def test_a_refusal_is_the_issuers_reason(server: str) -> None:
    with pytest.raises(IssuerUnavailable, match="the issuer refused: not now"):
        ApiClient(server, "").call("GET", "/refused")


def test_an_issuer_that_is_not_there_is_unreachable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(IssuerUnavailable, match="is unreachable"):
        ApiClient(f"http://127.0.0.1:{port}", "").call("GET", "/v1/products")
