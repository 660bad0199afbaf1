"""The order book (Postgres) against the broker's orders: a pure comparison, no I/O.

The book says which of this gateway's orders may still fill; the limits count them as working.
If the book and the broker disagree, the limits are wrong in one direction or the other: an
order the book thinks working but the broker closed holds headroom for nothing (safe, but it
blocks trading), and an order open at the broker that the book does not count as working lets a
limit be exceeded. Both are reported; the fill sync (POST /sync-fills) repairs the first kind,
the second needs a person.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

from backend.execution.book import OPEN_STATES, BookRow
from backend.execution.fills import FINAL_STATUSES, decimal_or_none


class BookKind(StrEnum):
    CLOSED_AT_BROKER = "working in book, closed at broker"
    ABSENT_AT_BROKER = "working in book, unknown to broker"
    NOT_WORKING_IN_BOOK = "open at broker, not working in book"
    NOT_IN_BOOK = "open at broker, not in book"
    WORKING_QTY = "working qty mismatch"


@dataclass(frozen=True)
class BookDiscrepancy:
    kind: BookKind
    client_intent_id: str
    broker_order_id: str | None
    book: str
    broker: str

    def describe(self) -> str:
        return (
            f"{self.kind.value}: intent={self.client_intent_id} "
            f"order={self.broker_order_id or '?'} book={self.book} broker={self.broker}"
        )


def reconcile_book(
    rows: Sequence[BookRow], broker_orders: Mapping[str, Mapping[str, Any]]
) -> list[BookDiscrepancy]:
    """``rows``: the book's rows for every order involved (open in the book, or open at the
    broker), by client_intent_id. ``broker_orders``: the broker's order for each, keyed by
    client_order_id (absent when the broker has none)."""
    found: list[BookDiscrepancy] = []
    by_intent = {row.client_intent_id: row for row in rows}
    for intent_id, row in by_intent.items():
        order = broker_orders.get(intent_id)
        working_in_book = row.state in OPEN_STATES
        if order is None:
            if working_in_book and row.state == "working":
                found.append(_found(BookKind.ABSENT_AT_BROKER, row, "absent"))
            continue
        open_at_broker = str(order.get("status")) not in FINAL_STATUSES
        if working_in_book and not open_at_broker:
            found.append(_found(BookKind.CLOSED_AT_BROKER, row, _order(order)))
        elif open_at_broker and not working_in_book:
            found.append(_found(BookKind.NOT_WORKING_IN_BOOK, row, _order(order)))
        elif open_at_broker and row.working_qty != _working(order):
            found.append(_found(BookKind.WORKING_QTY, row, _order(order)))
    return found


def missing_from_book(orders: Mapping[str, Mapping[str, Any]]) -> list[BookDiscrepancy]:
    """Open orders of this gateway (by their decision records) that have no book row at all:
    exposure no limit counts."""
    return [
        BookDiscrepancy(
            BookKind.NOT_IN_BOOK, intent_id, str(order.get("id")), "absent", _order(order)
        )
        for intent_id, order in orders.items()
    ]


def _working(order: Mapping[str, Any]) -> Decimal:
    qty = decimal_or_none(order.get("qty")) or Decimal(0)
    return qty - (decimal_or_none(order.get("filled_qty")) or Decimal(0))


def _found(kind: BookKind, row: BookRow, broker: str) -> BookDiscrepancy:
    book = f"({row.state},{row.side} {row.qty},working {row.working_qty})"
    return BookDiscrepancy(kind, row.client_intent_id, row.broker_order_id, book, broker)


def _order(order: Mapping[str, Any]) -> str:
    return (
        f"({order.get('status')},{order.get('side')} {order.get('qty')},"
        f"filled {order.get('filled_qty')})"
    )
