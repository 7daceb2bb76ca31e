"""The phone: the band's companion app, on the untrusted side of the relay.

It orders from the issuer and carries APDUs between the issuer and the band,
and nothing it says is believed by either (``issuer.orders``, the band's
own secure channels). The band (``wallet``) never imports it.
"""
