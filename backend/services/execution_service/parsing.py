"""Request bodies to intents: JSON with exact decimals, Pub/Sub envelopes, field-level errors.

Everything here is about input shape; nothing decides whether to trade.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from backend.execution.intent import OrderIntent
from backend.execution.vocabulary import Reason


class BadRequest(Exception):
    """The request is unusable as sent. Carries the reason code and field-level errors."""

    def __init__(
        self,
        message: str,
        *,
        reason: Reason = Reason.INVALID_INTENT,
        errors: list[dict[str, Any]] | None = None,
        client_intent_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.errors = errors or []
        self.client_intent_id = client_intent_id


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid JSON number here")


def loads_exact(raw: bytes | str) -> Any:
    """json.loads, but numbers with a fraction become Decimal (never float) and NaN is refused."""
    return json.loads(raw, parse_float=Decimal, parse_constant=_reject_constant)


def parse_json_body(raw: bytes) -> Any:
    try:
        return loads_exact(raw)
    except RecursionError:
        # "[" * 5000 is 5 KB of valid-looking JSON that the parser cannot descend into.
        raise BadRequest("body is not usable JSON: it is nested too deeply") from None
    except Exception as exc:
        # Every parser failure is a fact about the input: ValueError (syntax, NaN, a 5000-digit
        # integer), decimal.InvalidOperation (1e-99999999999999999999), UnicodeDecodeError. The
        # body can never be read, so it is 400 (or an acked poison message), never a 500 that
        # Pub/Sub would redeliver forever.
        raise BadRequest(f"body is not valid JSON: {type(exc).__name__}: {exc}"[:300]) from None


def parse_intent(data: Any) -> OrderIntent:
    if not isinstance(data, dict):
        raise BadRequest("the intent must be a JSON object")
    intent_id = data.get("client_intent_id")
    shown_id = intent_id if isinstance(intent_id, str) else None
    if intent_id is None or (isinstance(intent_id, str) and not intent_id.strip()):
        raise BadRequest(
            "client_intent_id is required: it is the idempotency key",
            reason=Reason.MISSING_IDEMPOTENCY_KEY,
            errors=[{"field": "client_intent_id", "message": "field required"}],
        )
    try:
        return OrderIntent.model_validate(data)
    except RecursionError:
        raise BadRequest("the intent is nested too deeply", client_intent_id=shown_id) from None
    except ValidationError as exc:
        errors = [
            {
                "field": ".".join(str(part) for part in error["loc"]) or "(intent)",
                "message": str(error["msg"]).removeprefix("Value error, "),
            }
            for error in exc.errors(include_url=False, include_input=False)
        ]
        raise BadRequest(
            "the intent is invalid", errors=errors, client_intent_id=shown_id
        ) from None


@dataclass(frozen=True)
class PushMessage:
    data: bytes | None
    message_id: str | None
    publish_time: datetime | None
    attributes: dict[str, str]
    subscription: str | None


class NotAnEnvelope(Exception):
    """The request is not a Pub/Sub push at all (400); as opposed to a bad message inside one."""


def parse_push_envelope(body: Any) -> PushMessage:
    if not isinstance(body, dict) or not isinstance(body.get("message"), dict):
        raise NotAnEnvelope('expected a Pub/Sub push envelope: {"message": {...}}')
    message = body["message"]
    attributes = message.get("attributes") or {}
    return PushMessage(
        data=_decode_data(message.get("data")),
        message_id=_first_str(message, "messageId", "message_id"),
        publish_time=_parse_time(_first_str(message, "publishTime", "publish_time")),
        attributes=attributes if isinstance(attributes, dict) else {},
        subscription=body.get("subscription")
        if isinstance(body.get("subscription"), str)
        else None,
    )


def intent_from_push(message: PushMessage) -> OrderIntent:
    """Raises BadRequest for a poison message (acked by the caller, never redelivered)."""
    if message.data is None:
        raise BadRequest("the Pub/Sub message has no data (or it is not valid base64)")
    return parse_intent(parse_json_body(message.data))


def _decode_data(value: Any) -> bytes | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def _first_str(message: dict[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = message.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _parse_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        # An instant outside years 1-9999 in UTC cannot be aged or stored: ignore it like any
        # other unusable publishTime.
        return parsed.astimezone(UTC) if parsed.tzinfo else None
    except (ValueError, OverflowError):
        return None
