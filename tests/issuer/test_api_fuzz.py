"""Schemathesis against the issuer's own OpenAPI description: no input is a server error.

Runs in process over ASGI (``from_asgi``) with the operator's token, so every
route is reached past authentication; the example count follows the suite's
hypothesis profile (``KOALA_FUZZ_EXAMPLES`` for longer runs).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import schemathesis
from hypothesis import given, settings
from sqlalchemy import Engine

from issuer.api import create_app
from issuer.db import session_factory
from issuer.keys import DemoKeys
from issuer.orders import Orders
from reader import places

OPERATOR = "operator-fuzz-token"


def test_no_request_makes_the_issuer_fail(engine: Engine) -> None:
    service = Orders(session_factory(engine), DemoKeys(), places.load_id(9),
                     lambda: datetime(2026, 11, 23, 9, 0))
    app = create_app(session_factory(engine), service, DemoKeys(), OPERATOR)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    for result in schema.get_all_operations():
        strategy = result.ok().as_strategy()  # type: ignore[union-attr]

        @settings(max_examples=max(10, settings().max_examples // 5), deadline=None)
        @given(case=strategy)
        def check(case: Any) -> None:
            response = case.call(headers={"Authorization": f"Bearer {OPERATOR}"})
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path}: {response.status_code}")
            else:
                assert response.status_code < 500

        check()
    assert not failures, failures
