"""`koala issuer serve` as its own process, and the CLI's issuer commands against it."""

from __future__ import annotations

import json

import httpx
from click.testing import CliRunner

from cli import main
from tests.support.processes import issuer_serve


def test_cards_issued_topped_up_ridden_cleared_cancelled_and_a_band_lost(tmp_path, monkeypatch):
    """The issue's end-to-end check, over real HTTP to `koala issuer serve` in its own process."""
    runner = CliRunner()
    home = ["--home", str(tmp_path)]

    def koala(*args: str, ok: bool = True) -> str:
        result = runner.invoke(main, [*home, *args])
        assert (result.exit_code == 0) == ok, result.output
        assert "Traceback" not in result.output
        return result.output

    with issuer_serve(tmp_path) as url:
        monkeypatch.setenv("KOALA_ISSUER", url)
        monkeypatch.setenv("KOALA_OPERATOR_TOKEN", "op-token")
        koala("band", "create", "ota", "--cards", "ecash", "--ecash-balance", "10")
        koala("band", "create", "spare", "--cards", "")
        for name in ("ota", "spare"):
            koala("band", "register", name)
        koala("band", "fund", "ota", "--amount", "100")
        koala("card", "issue", "--band", "ota", "--product", "transit")
        koala("card", "issue", "--band", "ota", "--product", "canteen")
        assert "already holds" in koala("card", "issue", "--band", "ota", "--product", "canteen",
                                        ok=False)
        koala("card", "topup", "--band", "ota", "--card", "transit", "--amount", "40")
        koala("card", "topup", "--band", "ota", "--card", "canteen", "--amount", "25")
        assert "ecash balance ¥25.00" in koala("card", "topup", "--band", "ota", "--card", "ecash",
                                               "--amount", "15")
        assert "offline (fDDA)" in koala("tap", "pos", "--band", "ota", "--amount", "5")
        assert "not enough" in koala("card", "topup", "--band", "ota", "--amount", "30", ok=False)
        koala("tap", "gate", "--band", "ota", "--station", "Xizhimen", "--direction", "in")
        koala("tap", "gate", "--band", "ota", "--station", "Guomao", "--direction", "out")
        koala("tap", "bus", "--band", "ota", "--route", "1")
        first = koala("issuer", "clear")
        assert "2 booked, 0 already booked, 1 free" in first
        assert "cleared 1 e-cash purchases: 1 booked" in first
        again = koala("issuer", "clear")
        assert "0 booked, 2 already booked" in again and "0 booked, 1 already booked" in again
        assert "¥25.00 refunded" in koala("card", "cancel", "--band", "ota", "--card", "canteen")
        cards = {c["card"]: c for c in json.loads(koala("card", "list", "--band", "ota", "--json"))}
        assert set(cards) == {"transit", "ecash"}
        assert cards["transit"]["balance_fen"] == cards["transit"]["issuer"]["balance"] == 4000 - 700
        assert cards["ecash"]["balance_fen"] == cards["ecash"]["issuer"]["balance"] == 2000, \
            "the bank's opening load, the OTA top-up and the cleared purchase: card and books agree"
        assert "locked" in koala("band", "lost", "ota", "--to", "spare")
        assert "reported lost" in koala("tap", "gate", "--band", "ota", "--station", "Xizhimen",
                                        "--direction", "in", ok=False), \
            "the band stops at its first gate before its phone syncs (the books' blacklist)"
        assert "relayed waiting order" in koala("companion", "sync", "--band", "ota")
        assert "not a card this terminal accepts" in koala(
            "tap", "bus", "--band", "ota", "--route", "1", ok=False)
        operator = httpx.Client(base_url=url, headers={"Authorization": "Bearer op-token"})
        spare = json.loads((tmp_path / "bands" / "spare.issuer.json").read_text())
        funding = operator.post(f"/v1/bands/{spare['band_id']}/funding", json={"amount": 1},
                                headers={"Idempotency-Key": "one-more-fen"}).json()
        assert funding["balance"] == 3300 + 1, "the lost card's balance moved to the spare band"
        koala("band", "create", "offline", "--cards", "")
        assert "not registered" in koala("card", "topup", "--band", "offline", "--amount", "1",
                                         ok=False)
    assert (tmp_path / "issuer" / "issuer.db").exists() and (tmp_path / "issuer" / "kek").exists()
