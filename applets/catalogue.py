"""The band's built-in applet classes: the only code it can instantiate."""

from __future__ import annotations

from applets.pboc.purse import PbocPurse
from applets.runtime import Catalogue

PBOC_PURSE = "pboc-purse"

CATALOGUE: Catalogue = {
    PBOC_PURSE: PbocPurse,
}
