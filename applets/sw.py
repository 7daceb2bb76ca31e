"""Status words used by the band (ISO/IEC 7816-4 and JR/T 0025 / PBOC 2.0)."""

from __future__ import annotations

from enum import IntEnum


class SW(IntEnum):
    """SW1 SW2 as one integer; names follow the standards' wording."""

    OK = 0x9000
    BYTES_REMAINING = 0x6100  # 61xx: xx more bytes for GET RESPONSE (00: 256 or more)
    WARNING_NO_INFORMATION = 0x6200
    WARNING_SELECTED_FILE_INVALIDATED = 0x6283
    WARNING_END_OF_FILE = 0x6282
    VERIFY_FAILED = 0x6300
    MORE_DATA_AVAILABLE = 0x6310  # GlobalPlatform GET STATUS: ask for the next occurrences
    MEMORY_FAILURE = 0x6581
    WRONG_LENGTH = 0x6700
    LOGICAL_CHANNEL_NOT_SUPPORTED = 0x6881
    SECURE_MESSAGING_NOT_SUPPORTED = 0x6882
    COMMAND_INCOMPATIBLE_WITH_FILE = 0x6981
    SECURITY_STATUS_NOT_SATISFIED = 0x6982
    AUTHENTICATION_METHOD_BLOCKED = 0x6983
    REFERENCE_DATA_NOT_USABLE = 0x6984
    CONDITIONS_NOT_SATISFIED = 0x6985
    COMMAND_NOT_ALLOWED_NO_EF = 0x6986
    SM_DATA_MISSING = 0x6987
    SM_DATA_INCORRECT = 0x6988
    APPLET_SELECT_FAILED = 0x6999  # Java Card: the application refused its selection
    WRONG_DATA = 0x6A80
    FUNCTION_NOT_SUPPORTED = 0x6A81
    FILE_NOT_FOUND = 0x6A82
    RECORD_NOT_FOUND = 0x6A83
    NOT_ENOUGH_MEMORY = 0x6A84
    INCORRECT_P1_P2 = 0x6A86
    LC_INCONSISTENT_WITH_P1_P2 = 0x6A87
    REFERENCED_DATA_NOT_FOUND = 0x6A88
    FILE_ALREADY_EXISTS = 0x6A89
    WRONG_P1_P2 = 0x6B00
    INS_NOT_SUPPORTED = 0x6D00
    CLA_NOT_SUPPORTED = 0x6E00
    UNKNOWN = 0x6F00
    # JR/T 0025 (PBOC 2.0) electronic purse / deposit
    MAC_INVALID = 0x9302
    APPLICATION_PERMANENTLY_LOCKED = 0x9303
    INSUFFICIENT_FUNDS = 0x9401
    TRANSACTION_COUNTER_AT_LIMIT = 0x9402
    KEY_INDEX_NOT_SUPPORTED = 0x9403
    MAC_NOT_AVAILABLE = 0x9406


def wrong_le(exact: int) -> int:
    """``6Cxx``: the terminal asked for the wrong length; xx is the right one."""
    return 0x6C00 | (exact & 0xFF)


def tries_left(tries: int) -> int:
    """``63Cx``: verification failed (or, asked, not yet done); x more tries are allowed, 0:
    the reference data is now blocked (ISO/IEC 7816-4 table 6)."""
    if not 0 <= tries <= 0x0F:
        raise ValueError(f"63Cx counts 0 to 15 tries, got {tries}")
    return 0x63C0 | tries


def bytes_remaining(n: int) -> int:
    """``61xx``: the answer goes on for ``n`` more bytes, which GET RESPONSE fetches; xx is
    ``n`` up to 255, 00 for 256 or more (ISO/IEC 7816-4 5.1.3)."""
    if n < 1:
        raise ValueError("61xx announces at least one more byte")
    return SW.BYTES_REMAINING | (min(n, 256) & 0xFF)


def is_warning(sw: int) -> bool:
    """Whether ``sw`` says the command completed with a warning (62xx, 63xx): its data and
    its effects stand, as with 9000 (ISO/IEC 7816-4 5.1.3)."""
    return sw >> 8 in (0x62, 0x63)


def is_valid(sw: int) -> bool:
    """Whether ``sw`` is a well-formed ISO 7816-4 status word (SW1 is 61..6F or 90..9F)."""
    sw1 = sw >> 8
    return 0 <= sw <= 0xFFFF and (0x61 <= sw1 <= 0x6F or 0x90 <= sw1 <= 0x9F)


def describe(sw: int) -> str:
    """A status word as an engineer reads it: ``6A88 (referenced data not found)``,
    ``63C2 (verification failed, 2 tries left)``, ``6110 (16 more bytes)``; just the hex for
    one no standard here names."""
    if sw >> 4 == 0x63C:
        return f"{sw:04X} (verification failed, {sw & 0x0F} tries left)"
    if sw >> 8 == 0x61:
        return f"{sw:04X} ({sw & 0xFF or 256} more bytes)"
    if sw >> 8 == 0x6C:
        return f"{sw:04X} (wrong Le: {sw & 0xFF or 256} bytes)"
    try:
        name = SW(sw).name
    except ValueError:
        return f"{sw:04X}"
    return f"{sw:04X} ({name.lower().replace('_', ' ')})"
