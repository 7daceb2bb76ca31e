"""A batch of the terminals' lines checked as the clearing centre believes them: each
record's TAC under its issuer's key, its card's blacklisting, its day.

Pure: lines in, rows to book and findings out (:func:`verify`). The TAC rules are
:mod:`reader.record`'s, the one the issuer checks by; the keys the members'.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from applets.pboc.layouts import TxType
from backoffice.books import GOOD, LISTED, Anomaly
from backoffice.members import CardKeys
from reader.outbox import OutboxError, document, message_id, record
from reader.record import LoadRecord, PurchaseRecord, load_proven, purchase_proven


@dataclass(slots=True)
class Checked:
    """A batch after the checks: rows for the books (good or paid after a blacklisting) and
    what was found wrong."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    origins: list[int] = field(default_factory=list)  # each row's line in the batch
    findings: list[Anomaly] = field(default_factory=list)
    forged: int = 0
    listed: int = 0


def verify(lines: Iterable[bytes], keys: CardKeys, blacklist: Mapping[str, str]) -> Checked:
    """Check every line; ``blacklist`` maps serials to the local time (YYYYMMDDhhmmss) from
    which their records are no good money."""
    checked = Checked()
    for number, data in enumerate(lines):
        try:
            parsed = document(data)
            kept = record(parsed)
        except OutboxError as error:
            checked.findings.append(Anomaly(f"malformed:{message_id(data)}", "malformed", "", "",
                                            str(error)))
            continue
        if kept is not None and _check(kept, parsed, data, keys, blacklist, checked):
            checked.origins.append(number)
    return checked


def _check(kept: PurchaseRecord | LoadRecord, parsed: dict[str, Any], data: bytes,
           keys: CardKeys, blacklist: Mapping[str, str], checked: Checked) -> bool:
    """Add the record's row (True) or what is wrong with it (False) to ``checked``."""
    serial = kept.app_serial.hex().upper()
    at = kept.date.hex() + kept.time.hex()
    day = f"{at[:4]}-{at[4:6]}-{at[6:8]}"
    dtk = keys.tac_key(kept.app_serial)
    member = keys.member(kept.app_serial)
    if dtk is None or member is None:
        checked.findings.append(Anomaly(f"unknown:{message_id(data)}", "unknown issuer", serial,
                                        day, f"no member issues cards {serial[:4]}…"))
        return False
    load = isinstance(kept, LoadRecord)
    proven = load_proven(kept, dtk) if isinstance(kept, LoadRecord) else purchase_proven(kept, dtk)
    if not proven:
        checked.forged += 1
        checked.findings.append(Anomaly(f"forged:{message_id(data)}", "forged TAC", serial, day,
                                        f"{'load' if load else 'debit'} {kept.card_counter} of "
                                        f"{kept.amount} fen from terminal "
                                        f"{kept.terminal_id.hex().upper()}: the TAC is wrong"))
        return False
    since = blacklist.get(serial)
    status = GOOD if since is None or at < since else LISTED
    if status == LISTED:
        checked.listed += 1
        checked.findings.append(Anomaly(
            f"listed:{serial}:{kept.card_counter}:{'load' if load else 'debit'}",
            "blacklisted card paid", serial, day,
            f"{kept.amount} fen at terminal {kept.terminal_id.hex().upper()} at {at}, after its "
            f"blacklisting at {since}: held, not booked as good money"))
    checked.rows.append({
        "serial": serial, "kind": "load" if load else "debit", "counter": kept.card_counter,
        "issuer": member.name, "terminal": kept.terminal_id.hex().upper(),
        "seq": 0 if isinstance(kept, LoadRecord) else kept.terminal_seq,
        "tx_type": TxType.EP_LOAD if isinstance(kept, LoadRecord) else kept.tx_type,
        "amount": kept.amount, "at": at, "day": day, "tac": kept.tac.hex().upper(),
        "balance": parsed.get("balance_after") if isinstance(parsed.get("balance_after"), int)
        else None, "status": status})
    return True
