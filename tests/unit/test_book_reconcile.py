"""The order book against the broker's orders: each disagreement named, agreement silent."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from backend.audit.book_reconcile import BookKind, reconcile_book
from backend.execution.book import BookRow

AT = datetime(2026, 3, 10, 15, tzinfo=UTC)


def row(state: str = "working", qty: str = "10", filled: str = "0") -> BookRow:
    working = Decimal(qty) - Decimal(filled) if state in ("reserved", "working") else Decimal(0)
    return BookRow(
        "i-1", "acct", "SPY", "buy", Decimal(qty), state, "o-1", "new", Decimal(filled),
        working, AT, AT,
    )  # fmt: skip


def order(status: str = "new", qty: str = "10", filled: str = "0") -> dict[str, Any]:
    return {"id": "o-1", "client_order_id": "i-1", "status": status, "side": "buy",
            "qty": qty, "filled_qty": filled}  # fmt: skip


def kinds(rows: list[BookRow], orders: dict[str, Any]) -> list[BookKind]:
    return [d.kind for d in reconcile_book(rows, orders)]


def test_a_working_order_open_at_the_broker_with_the_same_rest_agrees() -> None:
    assert kinds([row(filled="4")], {"i-1": order("partially_filled", filled="4")}) == []


def test_an_order_the_book_counts_but_the_broker_closed_is_reported() -> None:
    assert kinds([row()], {"i-1": order("canceled")}) == [BookKind.CLOSED_AT_BROKER]


def test_an_order_open_at_the_broker_that_the_book_does_not_count_is_reported() -> None:
    assert kinds([row("final")], {"i-1": order("new")}) == [BookKind.NOT_WORKING_IN_BOOK]
    assert kinds([row("released")], {"i-1": order("new")}) == [BookKind.NOT_WORKING_IN_BOOK]


def test_a_working_rest_that_differs_from_the_brokers_is_reported() -> None:
    assert kinds([row()], {"i-1": order("partially_filled", filled="3")}) == [BookKind.WORKING_QTY]


def test_a_working_row_the_broker_does_not_know_is_reported_but_a_reservation_is_not() -> None:
    assert kinds([row()], {}) == [BookKind.ABSENT_AT_BROKER]
    assert kinds([row("reserved")], {}) == []


def test_a_discrepancy_line_shows_both_sides() -> None:
    (found,) = reconcile_book([row()], {"i-1": order("expired")})
    assert found.describe() == (
        "working in book, closed at broker: intent=i-1 order=o-1 book=(working,buy 10,working 10)"
        " broker=(expired,buy 10,filled 0)"
    )
