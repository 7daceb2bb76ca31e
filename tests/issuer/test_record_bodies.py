"""The API's clearing bodies are the records' (reader.record): a record's JSON is admitted and
reads back to the same record, and a value outside a field's declared bound is refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from issuer.http.models import EcashPurchaseIn, LoadIn, PurchaseIn
from reader.record import EcashPurchase, Hex, Int, LoadRecord, PurchaseRecord, from_json, spec, to_json
from tests.support.records import records

BODIES = ((PurchaseRecord, PurchaseIn), (LoadRecord, LoadIn), (EcashPurchase, EcashPurchaseIn))


@pytest.mark.parametrize(("kind", "body"), BODIES, ids=lambda kind: kind.__name__)
@given(data=st.data())
def test_a_records_json_is_its_body(kind, body, data):
    record = data.draw(records(kind))
    admitted = body.model_validate(to_json(record))
    assert from_json(kind, admitted.model_dump()) == record
    assert list(body.model_fields) == [field.name for field in spec(kind)]


@pytest.mark.parametrize(("kind", "body"), BODIES, ids=lambda kind: kind.__name__)
@given(data=st.data())
def test_a_value_outside_its_bound_is_refused(kind, body, data):
    sample = to_json(data.draw(records(kind)))
    for field in spec(kind):
        outside: list[object]
        if isinstance(field.bound, Int):
            outside = [field.bound.low - 1, field.bound.high + 1]
        elif isinstance(field.bound, Hex):
            outside = ["0" * (2 * (field.bound.size or field.bound.max_size or 0) + 2), "0"]
        else:
            continue
        for value in outside:
            with pytest.raises(ValidationError, match=field.name):
                body.model_validate({**sample, field.name: value})
    with pytest.raises(ValidationError, match="extra"):
        body.model_validate({**sample, "balance_after_tap": 1})
