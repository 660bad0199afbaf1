"""What the Orders page shows: the book's working orders first, each joined with its ledger
entry, fills and events; ledger orders the book lacks are shown too, never dropped."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from backend.execution.adapters.postgres_console_reads import ConsoleBookRow
from backend.services.execution_service.console.orders import NOT_IN_BOOK, orders_view

T0 = datetime(2026, 3, 10, 14, 30, tzinfo=UTC)


def book_row(intent: str, state: str, minutes: int, order: str | None = None) -> ConsoleBookRow:
    return ConsoleBookRow(
        client_intent_id=intent, strategy_id="s", symbol="SPY", side="buy", qty=Decimal(10),
        order_type="market", limit_price=None, state=state, broker_order_id=order,
        broker_status="new" if state == "working" else "filled", filled_qty=Decimal(4),
        working_qty=Decimal(6) if state == "working" else Decimal(0),
        trading_date=date(2026, 3, 10), reserved_at=T0 + timedelta(minutes=minutes),
        updated_at=T0, final_at=None,
    )  # fmt: skip


def ledger_row(order: str, intent: str, **fields: Any) -> dict[str, Any]:
    return {"broker_order_id": order, "client_intent_id": intent, "status": "partially_filled",
            "filled_avg_price": "400.10", "created_at": T0} | fields  # fmt: skip


def test_working_orders_come_first_then_the_newest() -> None:
    book = [book_row("a", "final", 1, "o-a"), book_row("b", "working", 0, "o-b"),
            book_row("c", "final", 5, "o-c")]  # fmt: skip
    shown = orders_view(book, [], 1, {})
    assert [r.client_intent_id for r in shown.rows] == ["b", "c", "a"]
    assert (shown.working, shown.final) == (1, 2)
    assert shown.rows[0].working and shown.rows[0].working_qty == "6"


def test_each_order_shows_its_ledger_status_fills_and_events_in_time_order() -> None:
    fills = {"f2": {"transaction_time": "2026-03-10T14:31:00Z", "qty": "1", "price": "400.2"},
             "f1": {"transaction_time": "2026-03-10T14:30:30Z", "qty": "3", "price": "400.0"}}  # fmt: skip
    events = {"o-b": [
        {"id": "fill-f1", "type": "fill", "at": "2026-03-10T14:30:30Z", "qty": "3"},
        {"id": "submitted", "type": "submitted", "at": "2026-03-10T14:30:00Z", "status": "new"},
    ]}  # fmt: skip
    shown = orders_view([book_row("b", "working", 0, "o-b")],
                        [ledger_row("o-b", "b", raw_fills=fills)], 1, events)  # fmt: skip
    row = shown.rows[0]
    assert (row.ledger_status, row.filled_avg_price) == ("partially_filled", "400.10")
    assert [line.split()[2] for line in row.fills] == ["qty=3", "qty=1"]
    assert row.events == (
        "submitted 2026-03-10T14:30:00Z status=new",
        "fill 2026-03-10T14:30:30Z qty=3",
    )


def test_a_book_row_without_a_broker_id_is_matched_to_its_ledger_entry_by_intent() -> None:
    shown = orders_view([book_row("r", "reserved", 0)], [ledger_row("o-r", "r")], 1, {"o-r": []})
    row = shown.rows[0]
    assert (row.book_state, row.ledger_status, row.broker_order_id) == (
        "reserved", "partially_filled", "o-r",
    )  # fmt: skip


def test_a_ledger_order_missing_from_the_book_is_listed_as_such() -> None:
    shown = orders_view([], [ledger_row("o-x", "x", symbol="QQQ", qty="2")], 1, {})
    row = shown.rows[0]
    assert (row.book_state, row.symbol, row.qty, row.broker_order_id) == (
        NOT_IN_BOOK, "QQQ", "2", "o-x",
    )  # fmt: skip


def test_a_book_row_without_a_ledger_entry_says_so() -> None:
    assert orders_view([book_row("n", "working", 0, "o-n")], [], 1, {}).rows[0].ledger_status == (
        "no ledger entry"
    )


def test_orders_are_paged_by_twenty_five() -> None:
    book = [book_row(f"i{n}", "final", n, f"o{n}") for n in range(30)]
    assert len(orders_view(book, [], 1, {}).rows) == 25
    second = orders_view(book, [], 2, {})
    assert (second.page, second.pages, len(second.rows)) == (2, 2, 5)
