"""Request parsing: exact numbers, field-level errors, and every malformed push shape."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

import pytest

from backend.execution.vocabulary import Reason
from backend.services.execution_service.parsing import (
    BadRequest,
    NotAnEnvelope,
    intent_from_push,
    loads_exact,
    parse_intent,
    parse_json_body,
    parse_push_envelope,
)

INTENT = {
    "client_intent_id": "p-1",
    "strategy_id": "s",
    "broker_account_id": "a",
    "symbol": "SPY",
    "side": "buy",
    "qty": 0.1,
    "order_type": "market",
}


def envelope(data: Any = INTENT, **message: Any) -> dict[str, Any]:
    encoded = base64.b64encode(json.dumps(data).encode()).decode() if data is not None else None
    body: dict[str, Any] = {"messageId": "m-1", "publishTime": "2026-01-02T15:00:00.123Z"}
    if encoded is not None:
        body["data"] = encoded
    return {"message": body | message, "subscription": "projects/p/subscriptions/s"}


def test_json_numbers_with_fractions_become_exact_decimals() -> None:
    assert loads_exact('{"qty": 0.1}')["qty"] == Decimal("0.1")


def test_nan_is_not_a_number_we_accept() -> None:
    with pytest.raises(BadRequest):
        parse_json_body(b'{"qty": NaN}')


def test_a_body_that_is_not_json_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="not valid JSON"):
        parse_json_body(b"qty=1")


def test_a_missing_client_intent_id_has_its_own_reason() -> None:
    data = {k: v for k, v in INTENT.items() if k != "client_intent_id"}
    with pytest.raises(BadRequest) as caught:
        parse_intent(data)
    assert caught.value.reason is Reason.MISSING_IDEMPOTENCY_KEY


def test_field_errors_name_each_field() -> None:
    with pytest.raises(BadRequest) as caught:
        parse_intent(INTENT | {"qty": -1, "side": "up", "extra": 1})
    fields = {error["field"] for error in caught.value.errors}
    assert fields == {"qty", "side", "extra"}
    assert caught.value.client_intent_id == "p-1"


def test_a_json_array_is_not_an_intent() -> None:
    with pytest.raises(BadRequest, match="JSON object"):
        parse_intent([INTENT])


def test_a_push_envelope_yields_the_intent_and_the_message_facts() -> None:
    message = parse_push_envelope(envelope())
    assert message.message_id == "m-1"
    assert message.publish_time is not None and message.publish_time.microsecond == 123000
    assert intent_from_push(message).qty == Decimal("0.1")


def test_snake_case_envelope_fields_are_understood_too() -> None:
    body = envelope()
    body["message"] = {
        "data": body["message"]["data"],
        "message_id": "m-2",
        "publish_time": "2026-01-02T15:00:00Z",
    }
    assert parse_push_envelope(body).message_id == "m-2"


@pytest.mark.parametrize("body", [None, [], {}, {"message": "x"}, {"subscription": "s"}])
def test_a_request_that_is_not_an_envelope_is_refused(body: Any) -> None:
    with pytest.raises(NotAnEnvelope):
        parse_push_envelope(body)


@pytest.mark.parametrize(
    "message_override",
    [{"data": None}, {"data": "%%%not-base64"}, {"data": base64.b64encode(b"{nope").decode()}],
)
def test_a_message_without_a_usable_intent_is_a_poison_message(
    message_override: dict[str, Any],
) -> None:
    body = envelope()
    body["message"] |= message_override
    if body["message"]["data"] is None:
        del body["message"]["data"]
    with pytest.raises(BadRequest):
        intent_from_push(parse_push_envelope(body))


# -- bodies the parser cannot handle are bad requests, never 500s (issue 10, finding 1) -------


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 5000,
        b'{"metadata":' * 3000 + b"1" + b"}" * 3000,
        b'{"qty": 1e-99999999999999999999}',
        b'{"qty": ' + b"1" * 5000 + b"}",
        b"\xff\xfe{}",
        b'{"a": "\\ud800"}'[:-3],
    ],
    ids=["deep-array", "deep-object", "decimal-exponent", "huge-integer", "not-utf8", "cut"],
)
def test_a_body_the_json_parser_cannot_handle_is_a_bad_request(raw: bytes) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_json_body(raw)
    assert caught.value.reason is Reason.INVALID_INTENT


def test_a_deeply_nested_intent_inside_a_push_is_a_poison_message() -> None:
    body = envelope()
    body["message"]["data"] = base64.b64encode(b"[" * 5000).decode()
    with pytest.raises(BadRequest, match="nested too deeply"):
        intent_from_push(parse_push_envelope(body))


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_a_publish_time_outside_what_utc_can_hold_is_ignored(stamp: str) -> None:
    assert parse_push_envelope(envelope(publishTime=stamp)).publish_time is None
