"""The issuer's HTTP API in parts: the bodies (:mod:`~issuer.http.models`), what routes depend
on (:mod:`~issuer.http.dependencies`) and one router per resource: bands
(:mod:`~issuer.http.bands`), cards and funding (:mod:`~issuer.http.cards`), orders and their
relay (:mod:`~issuer.http.orders`), clearing (:mod:`~issuer.http.clearing`). Routes only
translate between HTTP and :class:`issuer.service.Issuer`; :func:`issuer.api.create_app`
puts them together."""
