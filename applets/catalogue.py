"""The band's built-in applet classes: the only code it can instantiate."""

from __future__ import annotations

from applets.gp.domain import SecurityDomain
from applets.gp.loadfiles import PBOC_PURSE, SECURITY_DOMAIN
from applets.pboc.purse import PbocPurse
from applets.runtime import Catalogue

__all__ = ["CATALOGUE", "PBOC_PURSE", "SECURITY_DOMAIN"]

CATALOGUE: Catalogue = {
    PBOC_PURSE: PbocPurse,
    SECURITY_DOMAIN: SecurityDomain,
}
