"""The Proximity Payment System Environment (2PAY.SYS.DDF01): the band's list of payment cards.

A QuickPass reader selects the PPSE first and picks an application from its
FCI: one directory entry (61) per payment application with its AID, label
and priority (87, 1 is first). The PPSE learns the entries from the
payment applications themselves (only the label and priority they choose
to publish, never their data), so a card issued or deleted over the air
appears or disappears with no change here.
"""

from __future__ import annotations

from applets import tlv
from applets.apdu import CommandAPDU
from applets.emv.ecash import EcashCard
from applets.emv.records import PPSE_AID
from applets.errors import CardError
from applets.runtime import Applet
from applets.selection import fci
from applets.sw import SW


class Ppse(Applet):
    def select(self, apdu: CommandAPDU) -> bytes:
        entries = []
        selectable = self.context.card.selectable()
        for applet in self.context.card.applets:
            if not isinstance(applet, EcashCard) or applet.aid not in selectable:
                continue
            try:
                label, priority = applet.directory_entry()
            except CardError:  # not personalised yet
                continue
            entries.append((priority, tlv.constructed(
                0x61, tlv.encode(0x4F, applet.aid), tlv.encode(0x50, label.encode()),
                tlv.encode(0x87, bytes((priority,))))))
        directory = b"".join(entry for _, entry in sorted(entries, key=lambda item: item[0]))
        return fci(PPSE_AID, tlv.constructed(0xBF0C, directory))

    def process(self, apdu: CommandAPDU) -> bytes:
        raise CardError(SW.INS_NOT_SUPPORTED, "the PPSE only answers SELECT")
