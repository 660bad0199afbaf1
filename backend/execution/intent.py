"""The order intent: what a strategy asks the gateway to do, validated before anything else runs.

One pydantic model, strict about what it accepts: unknown fields are refused (a typo such as
``limt_price`` must not silently become a market order), quantities and prices are exact
``Decimal`` values, and every cross-field rule has its own precise message.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime
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
# The id is also a Firestore document id, and real Firestore (not the emulator) refuses "."
# "..", and any id that both starts and ends with "__". Refused here, or such an intent would
# fail at the ledger on every delivery and be answered "retryable" forever.
_FIRESTORE_RESERVED_ID = re.compile(r"^(\.|\.\.|__.*__)$")

# What metadata may carry. It is free-form (never sent to the broker, stored as JSON text), but
# bounded: a deep or huge value must be refused here, not fail later while it is fingerprinted,
# logged or stored (where every delivery would fail the same way).
MAX_METADATA_DEPTH = 8  # the metadata object itself is level 1
MAX_METADATA_BYTES = 8192  # compact JSON, UTF-8
MAX_METADATA_KEY_CHARS = 128
MAX_METADATA_STRING_CHARS = 1024
# Every string of the intent (fields, metadata keys and values) is refused if it holds one of
# these. Postgres refuses NUL in text, and an unpaired surrogate cannot be encoded as UTF-8 for
# Firestore or Postgres: both would fail on every delivery. Other control characters have no
# business in an id or a note, and make logs ambiguous.
_UNSTORABLE_CATEGORIES = frozenset({"Cc", "Cs"})
NO_CONTROL_CHARACTERS = "must not contain control characters (NUL included) or unpaired surrogates"

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

    @field_validator("client_intent_id", "strategy_id", "broker_account_id", "symbol")
    @classmethod
    def _storable_text(cls, value: str) -> str:
        if not is_storable_text(value):
            raise ValueError(NO_CONTROL_CHARACTERS)
        return value

    @field_validator("client_intent_id")
    @classmethod
    def _client_intent_id_is_a_broker_safe_key(cls, value: str) -> str:
        if not _CLIENT_INTENT_ID_RE.match(value):
            raise ValueError("must be 1-48 characters of letters, digits and - _ . :")
        if _FIRESTORE_RESERVED_ID.match(value):
            raise ValueError(
                'must not be "." or "..", nor start and end with "__" (Firestore refuses such ids)'
            )
        return value

    @field_validator("created_at")
    @classmethod
    def _created_at_is_timezone_aware(cls, value: datetime | None) -> datetime | None:
        # A naive timestamp cannot be compared with the intent's max age without guessing a zone.
        if value is not None and value.utcoffset() is None:
            raise ValueError("must include a timezone offset, e.g. 2026-01-02T15:04:05Z")
        if value is not None:
            # 0001-01-01T00:00:00+01:00 is a valid ISO string but no instant Python (or
            # Firestore) can hold in UTC.
            try:
                value.astimezone(UTC)
            except OverflowError:
                raise ValueError("must lie between years 1 and 9999 in UTC") from None
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata_is_bounded_json(cls, value: dict[str, Any]) -> dict[str, Any]:
        problem = metadata_problem(value)
        if problem is not None:
            raise ValueError(problem)
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


def is_storable_text(value: str) -> bool:
    """No control character and no unpaired surrogate: text Postgres and Firestore can store."""
    return not any(unicodedata.category(char) in _UNSTORABLE_CATEGORIES for char in value)


def metadata_problem(metadata: dict[str, Any]) -> str | None:
    """Why ``metadata`` cannot be accepted, or None. Walks without recursion, so a value nested
    far deeper than the limit costs one pass up to the limit, never a RecursionError."""
    for path, depth, node in _walk(metadata):
        where = (path or "metadata")[:80]
        if depth > MAX_METADATA_DEPTH and isinstance(node, dict | list):
            return f"is nested deeper than {MAX_METADATA_DEPTH} levels (at {where})"
        if isinstance(node, str):
            if len(node) > MAX_METADATA_STRING_CHARS:
                return (
                    f"strings must be at most {MAX_METADATA_STRING_CHARS} characters (at {where})"
                )
            if not is_storable_text(node):
                return f"strings {NO_CONTROL_CHARACTERS} (at {where})"
        elif isinstance(node, dict):
            for key in node:
                if not isinstance(key, str):
                    return f"keys must be strings (at {where})"
                if len(key) > MAX_METADATA_KEY_CHARS:
                    return f"keys must be at most {MAX_METADATA_KEY_CHARS} characters (at {where})"
                if not is_storable_text(key):
                    return f"keys {NO_CONTROL_CHARACTERS} (at {where})"
        elif not isinstance(node, list | int | float | Decimal | bool | type(None)):
            return f"must hold only JSON values, not {type(node).__name__} (at {where})"
        elif isinstance(node, float | Decimal) and not math.isfinite(node):
            return f"numbers must be finite (at {where})"
    size = len(
        json.dumps(metadata, separators=(",", ":"), ensure_ascii=False, default=str).encode()
    )
    if size > MAX_METADATA_BYTES:
        return f"must be at most {MAX_METADATA_BYTES} bytes as JSON, not {size}"
    return None


def _walk(root: dict[str, Any]) -> Iterator[tuple[str, int, Any]]:
    """(path, depth, value) for every value under ``root``, depth first, root at depth 1. A
    container deeper than the limit is yielded but not entered; only containers are levels."""
    stack: list[tuple[str, int, Any]] = [("", 1, root)]
    while stack:
        path, depth, node = stack.pop()
        yield path, depth, node
        if depth > MAX_METADATA_DEPTH:
            continue
        if isinstance(node, dict):
            children = [(f"{path}.{key}" if path else str(key), v) for key, v in node.items()]
        elif isinstance(node, list):
            children = [(f"{path}[{index}]", v) for index, v in enumerate(node)]
        else:
            continue
        stack.extend((child_path, depth + 1, child) for child_path, child in reversed(children))
