"""Rules for merging broker order snapshots and fills into the ledger. Pure: no I/O.

The broker's data may arrive stale, twice, or out of order (an overlap window, a retried page,
two listings). The ledger must still only ever move forward: ``filled_qty`` never decreases, a
final status never reverts, and a snapshot older than the one recorded is ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

FINAL_STATUSES = frozenset({"filled", "canceled", "expired", "replaced", "rejected"})
# Status changes worth an entry in the order's event history (fills have their own events).
EVENTFUL_STATUSES = FINAL_STATUSES | {"done_for_day", "suspended", "stopped"}

_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$")


def broker_time_ns(value: object) -> int | None:
    """Alpaca's RFC 3339 timestamps (nanoseconds, 'Z' or an offset) as epoch nanoseconds.

    datetime keeps only microseconds; two updates within one microsecond must still order.
    """
    if not isinstance(value, str):
        return None
    match = _TIME.match(value.strip())
    if not match:
        return None
    seconds, fraction, zone = match.groups()
    stamp = datetime.fromisoformat(seconds + ("+00:00" if zone == "Z" else zone))
    nanos = int((fraction or "0").ljust(9, "0"))
    return int(stamp.timestamp()) * 1_000_000_000 + nanos


def broker_time(value: object) -> datetime | None:
    nanos = broker_time_ns(value)
    if nanos is None:
        return None
    seconds, rest = divmod(nanos, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=rest // 1000)


def decimal_or_none(value: object) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


@dataclass(frozen=True)
class RecordedOrder:
    """What the ledger says about an order's progress."""

    status: str
    filled_qty: Decimal
    filled_avg_price: Decimal | None
    broker_updated_at: str | None

    @classmethod
    def from_ledger(cls, data: dict[str, Any]) -> RecordedOrder:
        return cls(
            status=str(data.get("status") or ""),
            filled_qty=decimal_or_none(data.get("filled_qty")) or Decimal(0),
            filled_avg_price=decimal_or_none(data.get("filled_avg_price")),
            broker_updated_at=data.get("broker_updated_at"),
        )


@dataclass(frozen=True)
class OrderUpdate:
    fields: dict[str, Any]
    # A status change worth an event (e.g. "canceled"), or None.
    new_status_event: str | None


def merge_order(recorded: RecordedOrder, broker_order: dict[str, Any]) -> OrderUpdate | None:
    """The ledger fields to write for this snapshot, or None if it is stale or changes nothing."""
    status = str(broker_order.get("status") or "")
    filled = decimal_or_none(broker_order.get("filled_qty")) or Decimal(0)
    if filled < recorded.filled_qty:
        return None  # older than what we have: quantities only grow
    if recorded.status in FINAL_STATUSES and status != recorded.status:
        return None  # a final status never reverts
    seen, ours = (
        broker_time_ns(broker_order.get("updated_at")),
        broker_time_ns(recorded.broker_updated_at),
    )
    if seen is not None and ours is not None and seen < ours:
        return None
    price = decimal_or_none(broker_order.get("filled_avg_price"))
    unchanged = (
        status == recorded.status
        and filled == recorded.filled_qty
        and price == recorded.filled_avg_price
        and broker_order.get("updated_at") == recorded.broker_updated_at
    )
    if unchanged:
        return None
    fields = {
        "status": status,
        "filled_qty": format(filled, "f"),
        "filled_avg_price": None if price is None else format(price, "f"),
        "filled_at": broker_order.get("filled_at"),
        "broker_updated_at": broker_order.get("updated_at"),
        "raw_broker_order": broker_order,
    }
    event = status if status != recorded.status and status in EVENTFUL_STATUSES else None
    return OrderUpdate(fields, event)


def fill_event_id(activity: dict[str, Any]) -> str:
    # Activity ids look like "20220419174505024::8c4f..."; '/' would split a document path.
    return "fill-" + str(activity.get("id", "")).replace("/", "_")


def fill_event(activity: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": str(activity.get("type") or "fill"),
        "at": activity.get("transaction_time"),
        "qty": activity.get("qty"),
        "price": activity.get("price"),
        "cum_qty": activity.get("cum_qty"),
        "leaves_qty": activity.get("leaves_qty"),
        "activity_id": activity.get("id"),
        "source": "fill_sync",
        "raw": activity,
    }


def status_event(status: str, broker_order: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": status,
        "at": broker_order.get("updated_at"),
        "status": status,
        "cum_qty": broker_order.get("filled_qty"),
        "source": "fill_sync",
    }


@dataclass
class SyncCursor:
    """Where the fill sync stands. Orders are listed by submission time from a low-water mark:
    the submission time of the oldest order that could still change (not final). So an order
    submitted long ago but filled just now is never skipped."""

    orders_low_water: datetime | None = None
    # Set while a listing pass was cut short by the time budget: where to resume.
    orders_resume_after: datetime | None = None
    orders_next_low_water: datetime | None = None
    # transaction_time of the newest FILL activity seen: a new fills pass starts there (minus
    # the overlap).
    fills_after: datetime | None = None
    # Set while a fills pass is under way: the id of the last activity read. Activities are
    # paged by id (Alpaca's page_token), never by time: many fills can share one
    # transaction_time, and a time cursor would skip those past a page boundary. The next call
    # resumes right after this id.
    fills_resume_after_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "orders_low_water": self.orders_low_water,
            "orders_resume_after": self.orders_resume_after,
            "orders_next_low_water": self.orders_next_low_water,
            "fills_after": self.fills_after,
            "fills_resume_after_id": self.fills_resume_after_id,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> SyncCursor:
        data = data or {}

        def stamp(key: str) -> datetime | None:
            value = data.get(key)
            return value if isinstance(value, datetime) else None

        resume_id = data.get("fills_resume_after_id")
        return cls(
            stamp("orders_low_water"),
            stamp("orders_resume_after"),
            stamp("orders_next_low_water"),
            stamp("fills_after"),
            resume_id if isinstance(resume_id, str) and resume_id else None,
        )


def earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)
