"""Errors of the band's BLE link and the app layer above it, on either side of it.

They live apart from the Bumble code so that code above the link (framing,
the app-layer secure channel, the CLI) can catch them without importing a
Bluetooth stack. :class:`BleError` is the root of every error of this package,
the app layer's (:class:`ble.secure.SecurityError`) and the relay's
(:class:`ble.relay.RelayError`) included.
"""

from __future__ import annotations


class BleError(Exception):
    """The BLE link between band and companion failed; the message says what to do."""


class NotConnected(BleError):
    """There is no link (never connected, or the peer went away)."""


class LinkPairingFailed(BleError):
    """The link's own pairing (SMP, LE Secure Connections) did not complete; it stays unencrypted.

    Not :class:`ble.secure.PairingFailed`, which is the app layer's
    pairing above the link.

    ``reason`` is the SMP failure's name (``CONFIRM_VALUE_FAILED`` when a person
    said the numbers differ, ``AUTHENTICATION_REQUIREMENTS`` when the peer
    cannot do numeric comparison), or ``TIMEOUT``.
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class CharacteristicRefused(BleError):
    """The band answered a read or write of a characteristic with an ATT error."""

    def __init__(self, message: str, characteristic: str, att_error: int) -> None:
        super().__init__(message)
        self.characteristic = characteristic
        self.att_error = att_error  # the ATT error code (Core spec Vol 3 Part F 3.4.1.1)


class EncryptionRequired(CharacteristicRefused):
    """The characteristic needs an encrypted link and this one is not: pair first."""


class NotAuthorized(BleError):
    """The band's own refusal of a read: the phone has not opened an app-layer session."""
