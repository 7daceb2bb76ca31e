"""Bad input to the koala command: one line that names the limit, never a traceback, and a world
left as it was (every file under ``$KOALA_HOME`` hashed before and after)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli import main

BIG = "99999999999"  # yuan: more than a 4-byte amount in fen


def world_hash(home: Path) -> str:
    """Every file's path and content; a band's lock file is made on first use and says nothing."""
    digest = hashlib.sha256()
    for path in sorted(p for p in home.rglob("*") if p.is_file() and p.suffix != ".lock"):
        digest.update(str(path.relative_to(home)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("world")
    runner = CliRunner()
    for args in (("band", "create", "dave"), ("band", "create", "amy", "--cards", "transit,ecash")):
        assert runner.invoke(main, ["--home", str(home), *args]).exit_code == 0
    return home


def refused(home: Path, *args: str, error: bool = True) -> Result:
    """Run a command that must fail; ``error``: with click's one-line ``Error:`` (else it is a
    tap the card refused, which says so its own way)."""
    before = world_hash(home)
    result = CliRunner().invoke(main, ["--home", str(home), *args])
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    if error:
        assert result.output.strip().splitlines()[-1].startswith("Error: "), result.output
    assert world_hash(home) == before, "a refused command changed the world"
    return result


@pytest.mark.parametrize(("args", "message"), [
    (("tap", "load", "--band", "nobody", "--amount", "5"), "no band named 'nobody'"),
    (("tap", "load", "--band", "dave", "--amount", "-5"), "must be positive"),
    (("tap", "load", "--band", "dave", "--amount", "1.234"), "at most two decimals"),
    (("tap", "load", "--band", "dave", "--amount", "lots"), "is not an amount"),
    (("tap", "load", "--band", "dave", "--amount", BIG), "at most ¥42,949,672.95"),
    (("tap", "load", "--band", "dave", "--amount", "1e30"), "at most ¥42,949,672.95"),
    (("tap", "load", "--band", "dave", "--amount", "1e-30"), "at most two decimals"),
    (("tap", "load", "--band", "dave", "--amount", "nan"), "must be positive"),
    (("tap", "pos", "--band", "amy", "--amount", "1e40"), "at most ¥42,949,672.95"),
    (("band", "create", "zed", "--cards", "transit,ecash", "--ecash-balance", BIG),
     "at most ¥42,949,672.95"),
    (("tap", "gate", "--band", "dave", "--station", "Xidna", "--direction", "in"), "Xidan"),
    (("tap", "gate", "--band", "dave", "--station", "Xidan", "--direction", "in",
      "--at", "0001-01-01"), "outside the years cards can record (2000-2099)"),
    (("tap", "bus", "--band", "dave", "--route", "A1"), "digits"),
    (("tap", "bus", "--band", "dave", "--route", "1", "--at", "noon"), "not a date"),
    (("band", "create", "dave"), "exists already"),
    (("band", "create", "../evil"), "band name"),
    (("band", "create", "erin", "--cards", "metro"),
     "no card kind 'metro'; the factory makes transit, canteen, ecash, access"),
    (("band", "create", "erin", "--cards", "transit,transit"), "names a card twice"),
    (("band", "register", "dave", "--issuer", "http://[::1", "--operator-token", "t"),
     "is not an issuer's URL"),
    (("band", "register", "dave", "--issuer", "localhost:8700", "--operator-token", "t"),
     "needs http:// or https://"),
    (("issuer", "serve", "--database", "bogus://", "--operator-token", "t"),
     "cannot open the issuer's database bogus://"),
    (("issuer", "serve", "--database", "postgresql+psycopg://u:secret@127.0.0.1:1/x",
      "--operator-token", "t"), "postgresql+psycopg://u:***@127.0.0.1:1/x"),
    (("companion", "pair", "--band", "dave"), "run it in a terminal, or pass --yes"),
    (("companion", "unlock", "--band", "dave"), "not paired with dave"),
    (("card", "history", "--band", "dave", "--card", "access"), "has no access card"),
    (("city", "replay", "--riders", "0"), "0 is not in the range 1<=x<=1000000"),
    (("city", "replay", "--from", "7am"), "'7am' is not a time of day HH:MM"),
    (("city", "replay", "--to", "24:00"), "'24:00' is not a time of day HH:MM"),
    (("city", "replay", "--from", "09:00", "--to", "07:00"), "07:00 is not after --from 09:00"),
    (("city", "replay", "--day", "2026-13-01"), "'2026-13-01' is not a day YYYY-MM-DD"),
    (("city", "replay", "--riders", "1", "--nats", "nats://127.0.0.1:1"),
     "no NATS server at nats://127.0.0.1:1"),
    (("city", "replay", "--riders", "1", "--save", "/nonexistent/day.jsonl"),
     "cannot write /nonexistent/day.jsonl"),
    (("clearing", "run", "--file", "/nonexistent/day.jsonl"), "does not exist"),
    (("clearing", "run", "--file", "/dev/null", "--nats", "nats://127.0.0.1:1"),
     "--file and --nats are two sources"),
    (("clearing", "settle", "--day", "23/11/2026"), "'23/11/2026' is not YYYY-MM-DD"),
    (("clearing", "blacklist", "1234"), "is not an application serial"),
    (("clearing", "upload"), "upload needs a stream"),
])
def test_bad_input_gets_one_line_and_changes_nothing(world, args, message):
    assert message in refused(world, *args).output


def test_a_damaged_issuer_link_is_named_with_its_remedy(world):
    link = world / "bands" / "dave.issuer.json"
    link.write_text("{bad")
    try:
        output = refused(world, "companion", "sync", "--band", "dave").output
    finally:
        link.unlink()
    assert "dave.issuer.json is damaged" in output and "koala band register dave" in output


def test_a_load_the_card_refuses_says_why_and_changes_nothing(world):
    output = refused(world, "tap", "load", "--band", "dave", "--amount", "2000", error=False).output
    assert "maximum balance" in output


def test_a_card_not_yet_valid_names_the_day_it_starts(tmp_path):
    CliRunner().invoke(main, ["--home", str(tmp_path), "band", "create", "eve", "--at",
                              "2030-01-01T08:00"])
    output = refused(tmp_path, "tap", "bus", "--band", "eve", "--route", "1", "--at",
                     "2029-12-31T23:00", error=False).output
    assert "card not yet valid: valid from 2030-01-01" in " ".join(output.split())
