"""Executable load files of the band: the applet code it carries and can instantiate.

The band cannot load code; INSTALL names one of these load files and one of
its modules. AIDs of the GlobalPlatform security domain package are those
JCOP-class cards report, so card management tools recognise them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LoadFile:
    aid: bytes
    version: bytes
    modules: dict[bytes, str]  # module AID -> applet class name in the runtime catalogue


SECURITY_DOMAIN = "security-domain"
PBOC_PURSE = "pboc-purse"
ACCESS_CARD = "access-card"
PBOC_ECASH = "pboc-ecash"
PPSE = "ppse"

LOAD_FILES = (
    LoadFile(bytes.fromhex("A0000001515350"), b"\x01\x00",
             {bytes.fromhex("A000000151535041"): SECURITY_DOMAIN}),
    LoadFile(bytes.fromhex("F04B4F414C4101"), b"\x01\x00",
             {bytes.fromhex("F04B4F414C410101"): PBOC_PURSE}),
    LoadFile(bytes.fromhex("F04B4F414C4102"), b"\x01\x00",
             {bytes.fromhex("F04B4F414C410201"): ACCESS_CARD}),
    LoadFile(bytes.fromhex("F04B4F414C4103"), b"\x01\x00",
             {bytes.fromhex("F04B4F414C410301"): PBOC_ECASH,
              bytes.fromhex("F04B4F414C410302"): PPSE}),
)


def module_class(load_file: bytes, module: bytes) -> str:
    """The applet class of ``module`` in ``load_file``; KeyError if the band has no such code."""
    for candidate in LOAD_FILES:
        if candidate.aid == load_file:
            return candidate.modules[module]
    raise KeyError(load_file)


def load_file_of(class_name: str) -> LoadFile:
    for candidate in LOAD_FILES:
        if class_name in candidate.modules.values():
            return candidate
    raise KeyError(class_name)
