"""The band's built-in applet classes: the only code it can instantiate."""

from __future__ import annotations

from applets.access.card import AccessCard
from applets.emv.ecash import EcashCard
from applets.emv.ppse import Ppse
from applets.gp.domain import SecurityDomain
from applets.gp.loadfiles import ACCESS_CARD, PBOC_ECASH, PBOC_PURSE, PPSE, SECURITY_DOMAIN
from applets.pboc.purse import PbocPurse
from applets.runtime import Catalogue

__all__ = ["CATALOGUE", "PBOC_PURSE", "SECURITY_DOMAIN"]

CATALOGUE: Catalogue = {
    PBOC_PURSE: PbocPurse,
    ACCESS_CARD: AccessCard,
    PBOC_ECASH: EcashCard,
    PPSE: Ppse,
    SECURITY_DOMAIN: SecurityDomain,
}
