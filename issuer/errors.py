"""The error every client of the issuer's API raises, apart from the client itself: the
command line catches it without importing an HTTP stack it may not need (a tap does not)."""


class IssuerUnavailable(Exception):
    """The issuer could not be reached or refused the request (the message says why)."""
