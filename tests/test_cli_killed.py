"""A `koala` companion killed at every relay step loses nothing and credits nothing twice.

A real `koala issuer serve` runs in its own process; the band's registration
points at a proxy in front of it. For every request of an honest run that
carries the band's answers (or places the order), the proxy kills the
companion's process with SIGKILL, either before the issuer hears the
request or after the issuer acted on it but before the companion hears back.
Then `koala companion sync` relays honestly once, and the band's card, the
issuer's books and the funding account agree to the fen.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from cli import main
from issuer import ledger
from issuer.accounts import funding_account
from issuer.db import make_engine, session_factory
from tests.support.processes import issuer_serve

REPO = Path(__file__).resolve().parent.parent
FORWARDED = ("Authorization", "Idempotency-Key", "Content-Type", "Koala-Time")


class KillingProxy:
    """Forwards to the issuer; kills ``victim`` at the ``kill_at``-th POST, ``before`` the
    issuer sees it or after."""

    def __init__(self, upstream: str) -> None:
        self.upstream = httpx.Client(base_url=upstream, timeout=30)
        self.victim: subprocess.Popen[bytes] | None = None
        self.kill_at: int | None = None
        self.before = False
        self.posts = 0
        self.killed = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                proxy.forward(self)

            def do_POST(self) -> None:
                proxy.forward(self)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def arm(self, victim: subprocess.Popen[bytes], kill_at: int, before: bool) -> None:
        self.victim, self.kill_at, self.before, self.posts = victim, kill_at, before, 0
        self.killed.clear()

    def forward(self, request: BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        doomed = False
        if request.command == "POST" and self.victim is not None:
            self.posts += 1
            doomed = self.posts == self.kill_at
        if doomed and self.before:
            self._kill()
            return
        headers = {name: request.headers[name] for name in FORWARDED if name in request.headers}
        answer = self.upstream.request(request.command, request.path, headers=headers, content=body)
        if doomed:
            self._kill()
            return
        request.send_response(answer.status_code)
        request.send_header("Content-Type", answer.headers.get("content-type", "application/json"))
        request.send_header("Content-Length", str(len(answer.content)))
        request.end_headers()
        request.wfile.write(answer.content)

    def _kill(self) -> None:
        victim, self.victim = self.victim, None
        assert victim is not None
        self.killed.set()
        os.kill(victim.pid, signal.SIGKILL)

    def close(self) -> None:
        self.server.shutdown()
        self.upstream.close()


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, KillingProxy]]:
    home = tmp_path_factory.mktemp("killed")
    with issuer_serve(home) as url:
        proxy = KillingProxy(url)
        try:
            yield home, proxy
        finally:
            proxy.close()


def koala(home: Path, *args: str, issuer: str = "") -> str:
    env = {"KOALA_OPERATOR_TOKEN": "op-token", **({"KOALA_ISSUER": issuer} if issuer else {})}
    result = CliRunner(env=env).invoke(main, ["--home", str(home), *args])
    assert result.exit_code == 0, result.output
    return result.output


_names = iter(range(1_000_000))


def registered(home: Path, proxy: KillingProxy, cards: str, fund: str = "100",
               cash: str = "") -> str:
    """A band registered through the proxy, its funding account paid ``fund`` yuan, its
    factory transit card loaded with ``cash`` at a station first."""
    name = f"k{next(_names)}"
    koala(home, "band", "create", name, "--cards", cards)
    if cash:
        koala(home, "tap", "load", "--band", name, "--amount", cash)
    koala(home, "band", "register", name, issuer=proxy.url)
    koala(home, "band", "fund", name, "--amount", fund, issuer=proxy.url)
    return name


def killed(home: Path, proxy: KillingProxy, kill_at: int, before: bool, *args: str) -> bool:
    """Run ``koala ARGS`` in its own process, killed at the ``kill_at``-th POST; whether the
    kill came (False: the command ended before that step)."""
    victim = subprocess.Popen([sys.executable, "-m", "cli", "--home", str(home), *args], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    proxy.arm(victim, kill_at, before)
    out, _ = victim.communicate(timeout=60)
    proxy.victim = None  # disarmed: the command is over either way
    if proxy.killed.is_set():
        return True
    assert victim.returncode == 0, out.decode()
    return False


def listed(home: Path, name: str) -> dict[str, dict[str, object]]:
    return {c["card"]: c for c in json.loads(koala(home, "card", "list", "--band", name, "--json"))}


def funding(home: Path, name: str) -> int:
    """The band's funding account, as the issuer's books hold it."""
    band_id = json.loads((home / "bands" / f"{name}.issuer.json").read_text())["band_id"]
    engine = make_engine(f"sqlite:///{home / 'issuer' / 'issuer.db'}")
    try:
        with session_factory(engine)() as session:
            return ledger.balance(session, funding_account(band_id))
    finally:
        engine.dispose()


@pytest.mark.parametrize("before", [True, False], ids=["before the issuer", "after the issuer"])
def test_a_killed_top_up_loses_nothing_and_credits_once(issuer, before):
    home, proxy = issuer
    for step in range(1, 10):
        name = registered(home, proxy, "transit")
        if not killed(home, proxy, step, before, "card", "topup", "--band", name, "--amount", "20"):
            break
        koala(home, "companion", "sync", "--band", name)
        card = listed(home, name)["transit"]
        issuer_view = card["issuer"]
        assert isinstance(issuer_view, dict)
        assert card["balance_fen"] == issuer_view["balance"] in (0, 2000), (step, card)
        assert funding(home, name) + int(issuer_view["balance"]) == 10_000
    assert step > 2, "the top-up was killed at each of its steps"


@pytest.mark.parametrize("before", [True, False], ids=["before the issuer", "after the issuer"])
def test_a_killed_issuance_is_finished_once_by_the_next_contact(issuer, before):
    home, proxy = issuer
    for step in range(1, 40):
        name = registered(home, proxy, "")
        if not killed(home, proxy, step, before, "card", "issue", "--band", name, "--product",
                      "canteen"):
            break
        koala(home, "companion", "sync", "--band", name)
        cards = listed(home, name)
        if "canteen" in cards:  # issued: the band and the issuer agree on the one card
            issuer_view = cards["canteen"]["issuer"]
            assert isinstance(issuer_view, dict) and issuer_view["status"] == "active", (step, cards)
        else:  # never issued: the product may be ordered again, and it works
            koala(home, "card", "issue", "--band", name, "--product", "canteen")
            assert "canteen" in listed(home, name)
    assert step > 5, "the issuance was killed at each of its steps"


@pytest.mark.parametrize("before", [True, False], ids=["before the issuer", "after the issuer"])
def test_a_killed_sync_of_a_lost_band_moves_its_money_once(issuer, before):
    home, proxy = issuer
    for step in range(1, 20):
        name = registered(home, proxy, "transit", cash="30")
        spare = registered(home, proxy, "", fund="1")
        koala(home, "band", "lost", name, "--to", spare, issuer=proxy.url)
        if not killed(home, proxy, step, before, "companion", "sync", "--band", name):
            break
        koala(home, "companion", "sync", "--band", name)
        assert "refused" in CliRunner().invoke(main, ["--home", str(home), "tap", "bus", "--band",
                                                       name, "--route", "1"]).output
        assert funding(home, spare) == 100 + 3000, step
    assert step > 3, "the sync was killed at each of its steps"
