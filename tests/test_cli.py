"""The koala command, run as a user would (click's runner, a world per test)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from applets.gp import status
from backoffice.books import Books, engine_for
from cli import main
from tests.support.command import koala_in

VIRTUAL = ("--transport", "virtual")  # the band beside the phone on Bumble's virtual radio


@pytest.fixture
def koala(tmp_path):
    runner = CliRunner()

    def invoke(*args: str, ok: bool = True):
        result = runner.invoke(main, ["--home", str(tmp_path), *args])
        if ok:
            assert result.exit_code == 0, result.output
        return result

    return invoke


def test_a_day_from_the_command_line(koala, tmp_path):
    koala("band", "create", "alice", "--holder", "Alice", "--at", "2026-11-23T07:00")
    assert (tmp_path / "bands" / "alice.band").exists()
    koala("tap", "load", "--band", "alice", "--amount", "50", "--at", "2026-11-23T07:30")
    koala("tap", "gate", "--band", "alice", "--station", "Xizhimen", "--direction", "in",
          "--at", "2026-11-23T08:00")
    out = koala("tap", "gate", "--band", "alice", "--station", "Guomao", "--direction", "out",
                "--at", "2026-11-23T08:40", "--json")
    document = json.loads(out.output)
    assert document["accepted"] and document["fare_fen"] in range(300, 700)
    assert document["timing"]["modelled_ms"] < document["timing"]["deadline_ms"]
    bus = koala("tap", "bus", "--band", "alice", "--route", "332", "--at", "2026-11-23T09:00")
    assert "bus 332" in bus.output
    cards = json.loads(koala("card", "list", "--band", "alice", "--json").output)
    transit = next(c for c in cards if c["card"] == "transit")
    assert transit["balance_fen"] == 5000 - document["fare_fen"] - 200
    history = json.loads(koala("card", "history", "--band", "alice", "--json").output)
    assert [row["type"] for row in history["log"]] == ["bus", "exit", "entry", "load"]
    assert history["log"][0]["when"] == "2026-11-23T09:00:00+08:00"
    assert [row["balance_after_fen"] for row in history["log"]] == [
        transit["balance_fen"], transit["balance_fen"] + 200, 5000, 5000]
    assert history["log"][1]["where"] == "metro Guomao"
    # the gates' PSAM sequence numbers and records survive the process
    records = [json.loads(line) for p in (tmp_path / "terminals").glob("*.jsonl")
               for line in p.read_text().splitlines()]
    purchases = [r for r in records if r["record"] == "debit"]
    assert sum(r["amount"] for r in purchases) == document["fare_fen"] + 200
    assert [r["amount"] for r in records if r["record"] == "load"] == [5000]


def test_trace_prints_every_apdu(koala):
    koala("band", "create", "bob")
    koala("tap", "load", "--band", "bob", "--amount", "10")
    out = koala("tap", "bus", "--band", "bob", "--route", "1", "--trace").output
    assert "APDU trace" in out and "805401000F" in out and "modelled" in out


def test_a_refused_tap_says_why_and_exits_1(koala):
    koala("band", "create", "carol")
    result = koala("tap", "gate", "--band", "carol", "--station", "Xidan", "--direction", "out",
                   ok=False)
    assert result.exit_code == 1
    assert "refused" in result.output and "no entry" in result.output


def test_the_demo_runs_a_whole_day(koala, tmp_path):
    out = koala("demo", "--keep").output
    assert "Xizhimen" in out and "Guomao" in out and "bus 1" in out
    assert "every tap of the day" in out and "refused" in out
    # the day runs on the demo's own clock: over-the-air loads, rides and buses in order
    history = CliRunner().invoke(main, ["--home", str(tmp_path / "demo"), "card", "history",
                                        "--band", "demo", "--json"])
    log = json.loads(history.output)["log"]
    assert [(row["type"], row["when"][11:19]) for row in log] == [
        ("exit", "18:58:00"), ("entry", "18:06:00"), ("bus", "13:05:00"),
        ("exit", "08:37:00"), ("entry", "08:02:00"), ("top-up", "07:05:00")]
    journeys = json.loads(CliRunner().invoke(main, ["--home", str(tmp_path / "demo"), "card",
                                                    "journeys", "--band", "demo", "--json"]).output)
    assert [(j["from"], j["to"], j["minutes"]) for j in journeys] == [
        ("Guomao", "Bagou", 52), ("Xizhimen", "Guomao", 35)]
    assert len({row["when"][:10] for row in log}) == 1


def test_gp_commands_manage_a_band_by_hand(koala):
    koala("band", "create", "gina")
    koala("tap", "load", "--band", "gina", "--amount", "20")
    rows = json.loads(koala("gp", "list", "--band", "gina", "--json").output)
    assert [(r["kind"], r["aid"]) for r in rows if r["kind"] != "load file"] == [
        ("card manager", "A000000151000000"), ("application", "A000000632010105"),
        ("application", "F04B4F414C4143414E54")]
    koala("gp", "lock", "--band", "gina", "--aid", "A000000632010105")
    refused = koala("tap", "bus", "--band", "gina", "--route", "5", ok=False)
    assert refused.exit_code == 1 and "not a card this terminal accepts" in refused.output
    listing = koala("gp", "list", "--band", "gina").output
    assert "LOCKED" in listing
    koala("gp", "lock", "--band", "gina", "--aid", "A000000632010105", "--unlock")
    koala("tap", "bus", "--band", "gina", "--route", "5")
    koala("gp", "install", "--band", "gina", "--package", "A0000001515350",
          "--module", "A000000151535041", "--aid", "A00000015153504B4F414C4102",
          "--privileges", "804000")
    koala("gp", "delete", "--band", "gina", "--aid", "A00000015153504B4F414C4102")
    rows = json.loads(koala("gp", "list", "--band", "gina", "--json").output)
    assert len([r for r in rows if r["kind"] != "load file"]) == 3


def test_gp_list_names_each_life_cycle_by_its_own_table_and_lists_the_load_files(koala):
    koala("band", "create", "jo")
    rows = json.loads(koala("gp", "list", "--band", "jo", "--json").output)
    states = {(r["kind"], r["aid"]): (r["lifecycle"], r["state"]) for r in rows}
    assert states[("card manager", "A000000151000000")] == (0x0F, "SECURED")  # GPCS Table 11-5
    assert states[("application", "A000000632010105")] == (0x0F, "SELECTABLE (0F)")
    files = [r for r in rows if r["kind"] == "load file"]
    assert (files[0]["aid"], files[0]["state"]) == ("A0000001515350", "LOADED")
    assert files[0]["modules"] == ["A000000151535041"]
    assert ["F04B4F414C410301", "F04B4F414C410302"] in [f["modules"] for f in files]
    koala("gp", "install", "--band", "jo", "--package", "A0000001515350",
          "--module", "A000000151535041", "--aid", "A00000015153504B4F414C4109",
          "--privileges", "804000")
    koala("gp", "lock", "--band", "jo", "--aid", "A000000632010105")
    listing = koala("gp", "list", "--band", "jo").output
    assert "SECURED" in listing and "PERSONALIZED" not in listing and "LOADED" in listing
    rows = json.loads(koala("gp", "list", "--band", "jo", "--json").output)
    now = {r["aid"]: (r["kind"], r["state"]) for r in rows}
    assert now["A00000015153504B4F414C4109"] == ("security domain", "SELECTABLE")
    assert now["A000000632010105"] == ("application", "LOCKED (SELECTABLE (0F))")


DEMO_ISD_KEYS = ("--key", "505152535455565758595A5B5C5D5E5F", "--kvn", "1", "--diversify", "kdf3")


def _registry(rows):
    return {kind: [r["aid"] for r in rows if r["kind"] == kind]
            for kind in ("card manager", "security domain", "application", "load file")}


def test_gp_list_pages_through_the_whole_registry_of_the_demo_band(koala, tmp_path):
    koala("demo", "--keep")
    demo = koala_in(tmp_path / "demo")
    listed = _registry(json.loads(demo("gp", "list", "--band", "demo", "--json", *DEMO_ISD_KEYS)))
    assert listed["card manager"] == ["A000000151000000"]
    assert listed["security domain"] == ["A00000015153504B4F414C4101", "A00000015153504B4F414C4102"]
    assert sorted(listed["application"]) == sorted([
        "325041592E5359532E4444463031", "A000000333010101", "F04B4F414C410201",
        "A000000632010105"])  # the canteen card was cancelled at the end of the day
    assert len(listed["load file"]) == 4


def test_gp_list_shows_both_operator_domains_and_all_five_applications(tmp_path):
    from commands.home import Home  # noqa: PLC0415
    from commands.local_issuer import local_issuer  # noqa: PLC0415 - the demo's issuer, in this process

    koala = koala_in(tmp_path)
    with local_issuer(Home(tmp_path)):
        koala("band", "create", "kim", "--cards", "ecash,access", "--ecash-balance", "200")
        koala("band", "register", "kim")
        koala("band", "fund", "kim", "--amount", "100")
        koala("card", "issue", "--band", "kim", "--product", "transit")
        koala("card", "issue", "--band", "kim", "--product", "canteen")
    rows = json.loads(koala("gp", "list", "--band", "kim", "--json", *DEMO_ISD_KEYS))
    listed = _registry(rows)
    assert listed["security domain"] == ["A00000015153504B4F414C4101", "A00000015153504B4F414C4102"]
    assert len(listed["application"]) == 5  # PPSE, e-cash, door access, transit, canteen
    assert {"A000000632010105", "F04B4F414C4143414E54"} <= set(listed["application"])
    domains = {r["aid"]: r["domain"] for r in rows if r["kind"] == "application"}
    assert domains["A000000632010105"] == "A00000015153504B4F414C4101"  # under its operator
    # more than one answer's worth: the listing only holds together through 6310 paging
    answer = b"".join(status.Record(bytes.fromhex(r["aid"]), r["lifecycle"],
                                    bytes.fromhex(r["privileges"]), bytes.fromhex(r["load_file"]),
                                    bytes.fromhex(r["domain"])).tagged()
                      for r in rows if r["kind"] in ("security domain", "application"))
    assert len(answer) > 256


def test_gp_with_the_wrong_key_is_one_line(koala):
    koala("band", "create", "hal")
    result = koala("gp", "list", "--band", "hal", "--key", "00" * 16, ok=False)
    assert result.exit_code == 1 and "wrong card cryptogram" in result.output
    assert "Traceback" not in result.output
    result = koala("gp", "list", "--band", "hal", "--key", "zz", ok=False)
    assert result.exit_code == 2 and "not hexadecimal" in result.output


def test_registration_gives_the_card_manager_to_the_issuer(tmp_path):
    from commands.home import Home  # noqa: PLC0415
    from commands.local_issuer import local_issuer  # noqa: PLC0415 - the demo's issuer, in this process
    from issuer.keystore import CARD_MANAGER_DEMO_MASTER  # noqa: PLC0415

    koala = koala_in(tmp_path)
    with local_issuer(Home(tmp_path)):
        koala("band", "create", "ivy")
        assert koala("gp", "list", "--band", "ivy", "--json")  # a development band: test keys
        registered = koala("band", "register", "ivy")
        assert "(rekey): settled" in registered and "(register): settled" in registered
    refused = koala("gp", "list", "--band", "ivy", ok=False)
    assert "wrong card cryptogram" in refused
    issuers = ("--key", CARD_MANAGER_DEMO_MASTER.hex(), "--kvn", "1", "--diversify", "kdf3")
    rows = json.loads(koala("gp", "list", "--band", "ivy", "--json", *issuers))
    assert rows[0]["aid"] == "A000000151000000"


def test_paying_at_a_pos_offline_then_online(koala):
    koala("band", "create", "amy", "--cards", "transit,ecash", "--ecash-balance", "20")
    paid = json.loads(koala("tap", "pos", "--band", "amy", "--amount", "12.50", "--json").output)
    assert paid["accepted"] and paid["offline"] and paid["balance_fen"] == 750
    assert paid["timing"]["deadline_ms"] == 500 and paid["timing"]["modelled_ms"] < 250
    refused = koala("tap", "pos", "--band", "amy", "--amount", "30", "--offline", ok=False)
    assert refused.exit_code == 1 and "online authorisation" in refused.output
    online = koala("tap", "pos", "--band", "amy", "--amount", "30")
    assert "online (issuer" in online.output
    listed = koala("band", "list")
    assert "ecash ¥7.50" in listed.output


def test_every_card_has_a_history(koala):
    koala("band", "create", "hal", "--cards", "ecash,access", "--ecash-balance", "20",
          "--at", "2026-11-23T07:00")
    koala("tap", "pos", "--band", "hal", "--amount", "3", "--merchant", "Tea House",
          "--at", "2026-11-23T10:00")
    koala("tap", "door", "--band", "hal", "--door", "front", "--at", "2026-11-23T19:00")
    assert "no access" in koala("tap", "door", "--band", "hal", "--door", "gym",
                                "--at", "2026-11-23T19:05", ok=False).output
    ecash = json.loads(koala("card", "history", "--band", "hal", "--card", "ecash",
                             "--json").output)
    assert ecash["balance_fen"] == 1700
    assert ecash["log"] == [{"when": "2026-11-23T10:00:00+08:00", "merchant": "Tea House",
                             "amount_fen": -300, "atc": 1}]
    doors = json.loads(koala("card", "history", "--band", "hal", "--card", "access",
                             "--json").output)
    assert doors == [{"when": "2026-11-23T19:00:00+08:00", "door": "front"}]


def test_off_the_wrist_only_the_express_card_pays(koala):
    koala("band", "create", "ivy", "--cards", "transit,canteen,ecash")
    koala("tap", "load", "--band", "ivy", "--card", "canteen", "--amount", "10")
    assert "locked" in koala("band", "wrist", "ivy", "off").output
    refused = koala("tap", "canteen", "--band", "ivy", "--amount", "5", ok=False).output
    assert "refused" in refused and "ivy is off the wrist and locked" in " ".join(refused.split())
    assert "only canteen answers" in koala("card", "default", "--band", "ivy", "--card",
                                           "canteen").output
    assert "paid ¥5.00" in koala("tap", "canteen", "--band", "ivy", "--amount", "5").output
    assert "not paired" in koala("companion", "unlock", "--band", "ivy", ok=False).output
    koala("companion", "pair", "--band", "ivy", "--yes", *VIRTUAL)
    assert "put the band on" in koala("companion", "unlock", "--band", "ivy", *VIRTUAL,
                                      ok=False).output
    koala("band", "wrist", "ivy", "on")
    assert "unlocked" in koala("companion", "unlock", "--band", "ivy", *VIRTUAL).output
    assert "offline" in koala("tap", "pos", "--band", "ivy", "--amount", "1").output


def test_the_phone_pairs_over_ble_and_relays_issuance_and_top_up(koala, tmp_path):
    from commands.home import Home  # noqa: PLC0415
    from commands.local_issuer import local_issuer  # noqa: PLC0415 - the demo's issuer, in this process

    koala("band", "create", "joy", "--cards", "")
    assert "not paired" in koala("companion", "cards", "--band", "joy", ok=False).output
    paired = koala("companion", "pair", "--band", "joy", "--yes", *VIRTUAL).output
    assert paired.count("the phone shows") == 2 and "paired with joy" in paired
    assert paired.count("the band shows") == 2  # in process, both displays are on screen
    with local_issuer(Home(tmp_path)):
        koala("band", "register", "joy")
        koala("band", "fund", "joy", "--amount", "20")
        assert "issued transit" in koala("companion", "issue", "--band", "joy", "--product",
                                         "transit", *VIRTUAL).output
        assert "balance ¥5.00" in koala("companion", "topup", "--band", "joy", "--amount",
                                        "5", *VIRTUAL).output
        assert json.loads(koala("band", "funding", "joy", "--json").output) == {
            "band": "joy", "funding_fen": 1500}
        refused = koala("companion", "topup", "--band", "joy", "--amount", "16", *VIRTUAL,
                        ok=False).output
        assert "holds ¥15.00, not enough for a top-up of ¥16.00" in refused
        assert "(409)" not in refused
    cards = koala("companion", "cards", "--band", "joy", "--json", *VIRTUAL).output
    assert "shows" not in cards, "the link is encrypted with the bond: no digits to compare"
    assert [(c["card"], c["balance_fen"], c["answers_readers"]) for c in json.loads(cards)] == [
        ("transit", 500, True)]
    (tmp_path / "bands" / "joy.ble-keys.json").unlink()  # the band forgets the phone's bond
    assert "pairing" in koala("companion", "cards", "--band", "joy", *VIRTUAL, ok=False).output


def test_a_band_made_on_a_leap_day_runs_until_28_february(koala):
    koala("band", "create", "leap", "--cards", "transit,ecash,access", "--at", "2028-02-29T10:00")
    cards = {c["card"]: c["valid_until"] for c in json.loads(koala("card", "list", "--band", "leap",
                                                               "--json").output)}
    assert cards == {"transit": "20380228", "ecash": "20330228", "access": "20300228"}
    assert "open" in koala("tap", "door", "--band", "leap", "--door", "front",
                           "--at", "2030-02-28T23:59").output
    assert "ended on 2030-02-28" in koala("tap", "door", "--band", "leap", "--door", "front",
                                          "--at", "2030-03-01T00:00", ok=False).output


def test_the_network_keeps_beijing_time_whatever_the_offset_given(koala):
    koala("band", "create", "tz", "--at", "2026-11-23T07:00")
    koala("tap", "load", "--band", "tz", "--amount", "10", "--at", "2026-11-23T07:30")
    koala("tap", "bus", "--band", "tz", "--route", "1", "--at", "2026-11-22T16:45-08:00")
    history = json.loads(koala("card", "history", "--band", "tz", "--json").output)
    assert history["log"][0]["when"] == "2026-11-23T08:45:00+08:00"
    assert "(Asia/Shanghai)" in koala("card", "history", "--band", "tz").output


def test_bands_made_in_two_homes_register_at_one_issuer(tmp_path):
    from commands.home import Home  # noqa: PLC0415
    from commands.local_issuer import local_issuer  # noqa: PLC0415 - the demo's issuer, in this process

    runner = CliRunner()
    homes = [tmp_path / "first", tmp_path / "second"]
    with local_issuer(Home(homes[0])) as url:
        for home in homes:
            for args in (("band", "create", "same", "--cards", "transit,canteen,ecash"),
                         ("band", "register", "same", "--issuer", url),
                         ("band", "register", "same", "--issuer", url)):  # a retry is harmless
                result = runner.invoke(main, ["--home", str(home), *args])
                assert result.exit_code == 0, result.output
        numbers = [json.loads(runner.invoke(main, ["--home", str(home), "card", "list", "--band",
                                                   "same", "--json"]).output) for home in homes]
    assert all(card["issuer"] is not None for cards in numbers for card in cards)
    assert not {c["number"] for c in numbers[0]} & {c["number"] for c in numbers[1]}


def test_the_books_follow_a_card_through_cash_over_the_air_rides_and_registration(tmp_path):
    from commands.home import Home  # noqa: PLC0415
    from commands.local_issuer import local_issuer  # noqa: PLC0415 - the demo's issuer, in this process

    koala = koala_in(tmp_path)

    def at(time: str) -> tuple[str, str]:
        return "--at", f"2026-11-23T{time}"

    with local_issuer(Home(tmp_path)):
        koala("band", "create", "mix", "--cards", "transit", *at("07:00"))
        koala("tap", "load", "--band", "mix", "--amount", "50", *at("07:10"))  # before registration
        koala("tap", "bus", "--band", "mix", "--route", "1", *at("07:20"))
        koala("band", "register", "mix", *at("07:30"))  # opening balance ¥48
        koala("band", "fund", "mix", "--amount", "100", *at("07:31"))
        koala("card", "topup", "--band", "mix", "--amount", "20", *at("07:40"))  # over the air
        koala("tap", "load", "--band", "mix", "--amount", "10", *at("08:00"))  # cash, registered
        koala("tap", "bus", "--band", "mix", "--route", "2", *at("08:10"))
        cleared = koala("issuer", "clear", *at("21:00"))
        assert "1 booked" in cleared and "1 in opening balances" in cleared
        assert "cleared 2 cash loads: 1 booked" in cleared
        again = koala("issuer", "clear", *at("21:05"))
        assert "0 booked" in again and "cleared 2 cash loads: 0 booked, 1 already booked" in again
        (card,) = json.loads(koala("card", "list", "--band", "mix", "--json"))
    assert card["balance_fen"] == card["issuer"]["balance"] == 5000 - 200 + 2000 + 1000 - 200


def test_the_operator_closes_an_unproven_order_only_after_the_window(tmp_path):
    from commands.home import Home  # noqa: PLC0415
    from commands.local_issuer import local_issuer  # noqa: PLC0415 - the demo's issuer, in this process

    koala = koala_in(tmp_path)
    with local_issuer(Home(tmp_path)):
        koala("band", "create", "gone", "--cards", "", "--at", "2026-11-23T07:00")
        koala("band", "create", "new", "--cards", "", "--at", "2026-11-23T07:00")
        for name in ("gone", "new"):
            koala("band", "register", name, "--at", "2026-11-23T07:01")
        koala("band", "fund", "gone", "--amount", "10", "--at", "2026-11-23T07:02")
        koala("card", "issue", "--band", "gone", "--product", "transit", "--at", "2026-11-23T07:03")
        koala("card", "topup", "--band", "gone", "--amount", "10", "--at", "2026-11-23T07:04")
        out = koala("band", "lost", "gone", "--to", "new", "--at", "2026-11-23T09:00")
        assert "moves once the band proves the lock" in " ".join(out.split())
        order = out.split("order ", 1)[1].split(",", 1)[0]
        early = koala("issuer", "resolve", order, "--at", "2026-12-01T09:00", ok=False)
        assert "waits for its card's proof until 2026-12-23" in " ".join(early.split())
        late = " ".join(koala("issuer", "resolve", order, "--at", "2026-12-24T09:00").split())
        assert "settled, ¥10.00" in late and "closed by the operator" in late
        assert "no such order" in koala("issuer", "resolve", "99", ok=False)


def test_a_found_band_gets_back_the_cards_whose_money_stayed_on_them(tmp_path):
    from commands.home import Home  # noqa: PLC0415
    from commands.local_issuer import local_issuer  # noqa: PLC0415 - the demo's issuer, in this process

    koala = koala_in(tmp_path)

    def cards(name: str) -> dict[str, tuple[int, int | None, str | None]]:
        return {c["card"]: (c["balance_fen"], c["issuer"] and c["issuer"]["balance"],
                            c["issuer"] and c["issuer"]["status"])
                for c in json.loads(koala("card", "list", "--band", name, "--json"))}

    def answers(name: str) -> dict[str, bool]:
        return {c["card"]: c["answers_readers"]
                for c in json.loads(koala("card", "list", "--band", name, "--json"))}

    def serials(name: str) -> dict[str, str]:
        return {c["card"]: c["issuer"]["app_serial"]
                for c in json.loads(koala("card", "list", "--band", name, "--json"))}

    def listed() -> set[str]:
        return set(Books(engine_for(f"sqlite:///{tmp_path}/clearing/books.db")).listed())

    with local_issuer(Home(tmp_path)):
        for name in ("lou", "neo", "ada"):
            koala("band", "create", name, "--cards", "transit,canteen")
        koala("tap", "load", "--band", "lou", "--amount", "20")  # ¥20 on transit, ¥0 on canteen
        for name in ("lou", "neo", "ada"):
            koala("band", "register", name)
        # lost, then found before it ever came back: nothing moved, everything unlocked
        koala("band", "lost", "ada", "--to", "neo")
        assert len(listed()) == 2
        found = koala("band", "found", "ada")
        assert "2 card(s) to unlock and off the blacklist" in found
        assert found.count("(unlock): settled") == 2
        assert answers("ada") == {"transit": True, "canteen": True}
        assert listed() == set()
        # lost, locked at its next contact (¥20 moved to neo), then found
        koala("band", "lost", "lou", "--to", "neo")
        koala("companion", "sync", "--band", "lou")
        found = koala("band", "found", "lou")
        assert "1 card(s) to unlock" in found and "(unlock): settled" in found
        after = cards("lou")
        assert answers("lou") == {"transit": False, "canteen": True}
        assert listed() == {serials("lou")["transit"]}, "its money is neo's: it stays listed"
    assert after["canteen"] == (0, 0, "active")
    assert after["transit"][2] == "locked", "its money is neo's now: it stays locked"
    refused = koala("tap", "bus", "--band", "lou", "--route", "1", ok=False)
    assert "not a card this terminal accepts" in refused


def test_the_network_lists_its_stations_lines_and_fares(koala):
    stations = json.loads(koala("network", "stations", "--line", "2", "--json").output)
    assert stations[0] == {"code": "0201", "name": "Xizhimen", "name_zh": "西直门", "lines": ["2", "4"]}
    lines = json.loads(koala("network", "lines", "--json").output)
    assert lines["2"][0] == "Xizhimen" and set(lines) == {"1", "2", "4", "10"}
    fare = json.loads(koala("network", "fare", "Xizhimen", "Guomao", "--json").output)
    assert (fare["fare_fen"], round(fare["km"], 2)) == (500, 12.27)
    # the same fare a gate charges for the ride
    koala("band", "create", "kim")
    koala("tap", "load", "--band", "kim", "--amount", "20")
    koala("tap", "gate", "--band", "kim", "--station", "Xizhimen", "--direction", "in")
    ride = json.loads(koala("tap", "gate", "--band", "kim", "--station", "Guomao", "--direction",
                            "out", "--json").output)
    assert ride["fare_fen"] == fare["fare_fen"]
    assert "unknown station" in koala("network", "fare", "Xizhimen", "Nowhere", ok=False).output


def test_the_root_names_each_group_by_its_own_help():
    """cli.py lists the groups without importing them; what it says of each is the group's own
    first paragraph."""
    import importlib  # noqa: PLC0415
    import inspect  # noqa: PLC0415

    from cli import GROUPS  # noqa: PLC0415

    for name, (where, short_help) in GROUPS.items():
        module, _, attribute = where.partition(":")
        command = getattr(importlib.import_module(module), attribute)
        assert command.name == name
        assert " ".join(inspect.cleandoc(command.help).split("\n\n")[0].split()) == short_help


def test_history_draws_the_balance_over_the_day(koala, tmp_path):
    koala("band", "create", "pia", "--at", "2026-11-23T07:00")
    koala("tap", "load", "--band", "pia", "--amount", "20", "--at", "2026-11-23T07:30")
    koala("tap", "gate", "--band", "pia", "--station", "Xizhimen", "--direction", "in",
          "--at", "2026-11-23T08:00")
    koala("tap", "gate", "--band", "pia", "--station", "Guomao", "--direction", "out",
          "--at", "2026-11-23T08:40")
    picture = tmp_path / "pia.png"
    table = koala("card", "history", "--band", "pia", "--plot", str(picture)).output
    assert "exit" in table and picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert picture.stat().st_size > 10_000  # axes, a step line, three marked taps


def test_a_tap_draws_its_timeline_against_the_deadline(koala, tmp_path):
    koala("band", "create", "quin")
    koala("tap", "load", "--band", "quin", "--amount", "10")
    picture = tmp_path / "tap.png"
    out = koala("tap", "bus", "--band", "quin", "--route", "1", "--timing-plot", str(picture),
                "--json").stdout
    assert json.loads(out)["accepted"]  # the picture's note goes to stderr, not into the JSON
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and picture.stat().st_size > 10_000


def test_factory_and_over_the_air_cards_have_bcd_card_numbers(tmp_path):
    """The application serial in file 0015 is the issuer's prefix then 16 decimal digits, for
    the transit card the factory makes and the canteen card issued over the air alike."""
    import re  # noqa: PLC0415

    from commands.home import Home  # noqa: PLC0415
    from commands.local_issuer import local_issuer  # noqa: PLC0415 - the demo's issuer, in this process

    koala = koala_in(tmp_path)
    with local_issuer(Home(tmp_path)):
        koala("band", "create", "bcd", "--cards", "transit", "--at", "2026-11-23T07:00")
        koala("band", "register", "bcd", "--at", "2026-11-23T07:01")
        koala("band", "fund", "bcd", "--amount", "10", "--at", "2026-11-23T07:02")
        koala("card", "issue", "--band", "bcd", "--product", "canteen", "--at", "2026-11-23T07:03")
        numbers = {c["card"]: c["number"] for c in json.loads(koala("card", "list", "--band", "bcd",
                                                                    "--json"))}
    assert re.fullmatch(r"1000\d{16}", numbers["transit"]), numbers
    assert re.fullmatch(r"4B4F\d{16}", numbers["canteen"]), numbers
