"""The broker's side of a reconciliation: Alpaca's orders for one New York trading day.

Read-only, through AlpacaReader (GET requests only). Alpaca's own record wins over ours here,
so numbers and timestamps are passed on exactly as Alpaca sent them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol

from backend.audit.timestamps import floor_datetime
from backend.execution.book import BookRow
from backend.execution.clock import TRADING_TIMEZONE
from backend.execution.errors import BrokerUnavailable

Order = dict[str, Any]
Progress = Callable[[str], None]

# Alpaca's largest page for GET /v2/orders.
PAGE_LIMIT = 500


class OrderHistory(Protocol):
    """The part of AlpacaReader a reconciliation needs."""

    def list_orders(
        self, *, after: datetime | None, until: datetime | None = None, limit: int = 500
    ) -> list[Order]: ...

    def get_order(self, broker_order_id: str) -> Order | None: ...

    def get_order_by_client_id(self, client_order_id: str) -> Order | None: ...

    def list_open_orders(
        self, *, after: datetime | None = None, limit: int = 500
    ) -> list[Order]: ...


class BookReader(Protocol):
    """The part of the Postgres order book a reconciliation reads (PostgresOrderBook)."""

    def open_rows(self, broker_account_id: str | None = None) -> list[BookRow]: ...

    def rows_for(self, client_intent_ids: Iterable[str]) -> list[BookRow]: ...


def trading_day_bounds(day: date) -> tuple[datetime, datetime]:
    """New York midnight to the next New York midnight, in UTC (23, 24 or 25 hours)."""
    start = datetime.combine(day, time(0), TRADING_TIMEZONE)
    end = datetime.combine(day + timedelta(days=1), time(0), TRADING_TIMEZONE)
    return start.astimezone(UTC), end.astimezone(UTC)


def orders_submitted_on(
    history: OrderHistory,
    day: date,
    *,
    limit: int = PAGE_LIMIT,
    progress: Progress = lambda _: None,
) -> list[Order]:
    """Every order Alpaca has with submitted_at in the New York day, oldest first, once each.

    Alpaca's ``after`` is exclusive and compares submitted_at, which carries nanoseconds; a
    ``datetime`` holds microseconds, so each page starts a little before the last order seen
    and the orders it repeats are dropped by id. The first bound is a microsecond before
    midnight for the same reason: an order from that last microsecond of the day before may be
    included, which is harmless, since any order of ours missing from the ledger is worth
    reporting whatever its day.
    """
    start, end = trading_day_bounds(day)
    after = start - timedelta(microseconds=1)
    orders: dict[str, Order] = {}
    while True:
        page = history.list_orders(after=after, until=end, limit=limit)
        fresh = [o for o in page if o.get("id") not in orders]
        orders |= {str(o["id"]): o for o in fresh if o.get("id")}
        progress(f"fetched {len(orders)} broker orders…")
        if len(page) < limit:
            return list(orders.values())
        next_after = floor_datetime(page[-1].get("submitted_at"))
        if not fresh or next_after is None or next_after <= after:
            # Only possible with a full page inside one microsecond, or an unreadable
            # submitted_at: stop loudly rather than loop or silently truncate the day.
            raise BrokerUnavailable(
                f"cannot page past submitted_at {page[-1].get('submitted_at')!r} "
                f"({limit} orders per page)",
                outcome_unknown=False,
            )
        after = next_after


def look_up_orders(
    history: OrderHistory, broker_order_ids: Iterable[str], *, progress: Progress = lambda _: None
) -> dict[str, Order]:
    """The orders Alpaca has among these ids; an id it does not know is simply absent."""
    found: dict[str, Order] = {}
    ids = list(dict.fromkeys(broker_order_ids))
    for count, broker_order_id in enumerate(ids, start=1):
        order = history.get_order(broker_order_id)
        if order is not None:
            found[broker_order_id] = order
        if count % 50 == 0 or count == len(ids):
            progress(f"looked up {count} of {len(ids)} ledger orders at the broker…")
    return found


def open_orders_of(
    history: OrderHistory, *, limit: int = PAGE_LIMIT, progress: Progress = lambda _: None
) -> list[Order]:
    """Every order the broker still has open, oldest first, paged by submitted_at."""
    orders: dict[str, Order] = {}
    after: datetime | None = None
    while True:
        page = history.list_open_orders(after=after, limit=limit)
        fresh = [o for o in page if o.get("id") and o.get("id") not in orders]
        orders |= {str(o["id"]): o for o in fresh}
        progress(f"fetched {len(orders)} open broker orders…")
        next_after = floor_datetime(page[-1].get("submitted_at")) if page else None
        if len(page) < limit or not fresh or next_after is None:
            return list(orders.values())
        after = next_after - timedelta(microseconds=1)


def look_up_book_row(history: OrderHistory, row: BookRow) -> Order | None:
    """The broker's order behind a book row: by its id when the book has it, else by intent."""
    if row.broker_order_id:
        return history.get_order(row.broker_order_id)
    return history.get_order_by_client_id(row.client_intent_id)
