"""Errors of the band as a device (its image on disk, its cards)."""


class WalletError(Exception):
    """Something about a band the user can act on; the message says what."""


class ImageError(WalletError):
    """A band image that cannot be read back."""


class UnknownCard(WalletError):
    """The band holds no card of that name or AID."""


class BandBusy(WalletError):
    """Another koala process is changing the band (serving it to a reader, advertising it)."""


class BandLocked(WalletError):
    """The band is locked, or off the wrist, for what was asked."""


class VpcdBusy(WalletError):
    """A vpcd slot already serves another card: vpcd takes one card per port and lets any
    other wait, silently, until that one leaves."""
