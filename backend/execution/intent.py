"""The order intent: what a strategy asks the gateway to do, validated before anything else runs.

One pydantic model, strict about what it accepts: unknown fields are refused (a typo such as
``limt_price`` must not silently become a market order), quantities and prices are exact
``Decimal`` values, and every cross-field rule has its own precise message.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    field_validator,
    model_validator,
)

# Alpaca accepts up to 128 characters, older specs said 48: stay at 48 so the id is always a
# valid broker client_order_id (it is the broker-enforced idempotency key).
CLIENT_INTENT_ID_PATTERN = r"^[A-Za-z0-9\-_.:]{1,48}$"
_CLIENT_INTENT_ID_RE = re.compile(CLIENT_INTENT_ID_PATTERN)

Identifier = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
# Compared exactly with the deployment's bound account: never trimmed or case-folded, so
# "paper-1 " is a different (refused) account rather than a silent alias of "paper-1".
AccountId = Annotated[str, StringConstraints(strip_whitespace=False, min_length=1, max_length=128)]
Symbol = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, to_upper=True, pattern=r"^[A-Za-z][A-Za-z0-9./]{0,15}$"
    ),
]


def _canonical(value: Decimal) -> Decimal:
    # "1e2", "100" and "100.0" are the same quantity: keep one value, so fingerprints, records
    # and the broker agree.
    return value.normalize()


PositiveDecimal = Annotated[
    Decimal,
    Field(gt=0, allow_inf_nan=False, max_digits=20, decimal_places=9),
    AfterValidator(_canonical),
    # Plain digits on the wire and in records (str() would give "1E+2" or "1E-7").
    PlainSerializer(lambda value: format(value, "f"), return_type=str, when_used="json"),
]

# The fields that define the order: a reused client_intent_id must carry the same values.
_ORDER_FIELDS = (
    "strategy_id",
    "broker_account_id",
    "symbol",
    "side",
    "qty",
    "order_type",
    "time_in_force",
    "limit_price",
    "stop_price",
)


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"


class TimeInForce(StrEnum):
    DAY = "day"
    GTC = "gtc"
    OPG = "opg"
    CLS = "cls"
    IOC = "ioc"
    FOK = "fok"


_NEEDS_LIMIT_PRICE = {OrderType.LIMIT, OrderType.STOP_LIMIT}
_NEEDS_STOP_PRICE = {OrderType.STOP, OrderType.STOP_LIMIT}


class OrderIntent(BaseModel):
    """A request to place one order. ``client_intent_id`` is its idempotency key."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    client_intent_id: str
    strategy_id: Identifier
    broker_account_id: AccountId
    symbol: Symbol
    side: Side
    qty: PositiveDecimal
    order_type: OrderType
    time_in_force: TimeInForce = TimeInForce.DAY
    limit_price: PositiveDecimal | None = None
    stop_price: PositiveDecimal | None = None
    created_at: datetime | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("client_intent_id")
    @classmethod
    def _client_intent_id_is_a_broker_safe_key(cls, value: str) -> str:
        if not _CLIENT_INTENT_ID_RE.match(value):
            raise ValueError("must be 1-48 characters of letters, digits and - _ . :")
        return value

    @field_validator("created_at")
    @classmethod
    def _created_at_is_timezone_aware(cls, value: datetime | None) -> datetime | None:
        # A naive timestamp cannot be compared with the intent's max age without guessing a zone.
        if value is not None and value.utcoffset() is None:
            raise ValueError("must include a timezone offset, e.g. 2026-01-02T15:04:05Z")
        return value

    @model_validator(mode="after")
    def _prices_match_the_order_type(self) -> OrderIntent:
        problems = []
        if self.order_type in _NEEDS_LIMIT_PRICE and self.limit_price is None:
            problems.append(f"limit_price is required for order_type {self.order_type.value}")
        if self.order_type not in _NEEDS_LIMIT_PRICE and self.limit_price is not None:
            problems.append(f"limit_price is not allowed for order_type {self.order_type.value}")
        if self.order_type in _NEEDS_STOP_PRICE and self.stop_price is None:
            problems.append(f"stop_price is required for order_type {self.order_type.value}")
        if self.order_type not in _NEEDS_STOP_PRICE and self.stop_price is not None:
            problems.append(f"stop_price is not allowed for order_type {self.order_type.value}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def signed_qty(self) -> Decimal:
        """The position change this order would make if fully filled."""
        return self.qty if self.side is Side.BUY else -self.qty

    def fingerprint(self) -> str:
        """A digest of the order-defining fields, to catch one id reused for another order."""
        summary = self.summary()
        canonical = json.dumps({k: summary[k] for k in _ORDER_FIELDS}, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:32]

    def summary(self) -> dict[str, Any]:
        """The intent as JSON-safe primitives (decimals as exact strings), for logs and records."""
        return self.model_dump(mode="json")
