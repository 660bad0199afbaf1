"""The Orders page as data: the gateway's book (working first, then final) joined with each
order's ledger entry, its fills and its event history. Pure."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from backend.audit.timestamps import chronological, shown
from backend.audit.views import fill_line, fills_of
from backend.execution.adapters.postgres_console_reads import ConsoleBookRow
from backend.execution.book import OPEN_STATES

PAGE_SIZE = 25
NOT_IN_BOOK = "not in book"


@dataclass(frozen=True)
class OrderRow:
    client_intent_id: str
    broker_order_id: str
    strategy_id: str
    symbol: str
    side: str
    qty: str
    order_type: str
    limit_price: str
    book_state: str  # reserved | working | final | released | not in book
    broker_status: str
    filled_qty: str
    working_qty: str
    reserved_at: str
    ledger_status: str
    filled_avg_price: str
    fills: tuple[str, ...]
    events: tuple[str, ...]
    working: bool


@dataclass(frozen=True)
class OrdersView:
    working: int
    final: int
    page: int
    pages: int
    rows: tuple[OrderRow, ...]


def page_of_orders(
    book: Sequence[ConsoleBookRow], ledger: Sequence[Mapping[str, Any]], page: int
) -> tuple[list[tuple[ConsoleBookRow | None, Mapping[str, Any] | None]], int, int]:
    """The pairs (book row, ledger row) of one page, working orders first, newest first, and
    the page number and page count. Ledger rows with no book row (adopted from another
    deployment's book, or from before the book existed) come last."""
    by_order = {str(row.get("broker_order_id")): row for row in ledger}
    by_intent = {str(row.get("client_intent_id")): row for row in ledger}
    pairs: list[tuple[ConsoleBookRow | None, Mapping[str, Any] | None]] = []
    used: set[int] = set()
    ordered = sorted(book, key=lambda r: (r.state not in OPEN_STATES, -r.reserved_at.timestamp()))
    for row in ordered:
        entry = by_order.get(row.broker_order_id or "") or by_intent.get(row.client_intent_id)
        if entry is not None:
            used.add(id(entry))
        pairs.append((row, entry))
    unmatched = [r for r in ledger if id(r) not in used]
    unmatched.sort(key=lambda r: chronological(shown(r.get("created_at"))), reverse=True)
    pairs.extend((None, r) for r in unmatched)
    pages = max(1, math.ceil(len(pairs) / PAGE_SIZE))
    page = min(max(1, page), pages)
    return pairs[(page - 1) * PAGE_SIZE : page * PAGE_SIZE], page, pages


def orders_view(
    book: Sequence[ConsoleBookRow],
    ledger: Sequence[Mapping[str, Any]],
    page: int,
    events: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
) -> OrdersView:
    """``events``: each order's event history, when read (the order's own page reads it)."""
    pairs, page, pages = page_of_orders(book, ledger, page)
    working = sum(1 for r in book if r.state in OPEN_STATES)
    return OrdersView(
        working=working,
        final=len(book) - working,
        page=page,
        pages=pages,
        rows=tuple(order_row(row, entry, events or {}) for row, entry in pairs),
    )


def order_row(
    row: ConsoleBookRow | None,
    entry: Mapping[str, Any] | None,
    events: Mapping[str, Sequence[Mapping[str, Any]]],
) -> OrderRow:
    ledger: Mapping[str, Any] = entry or {}
    order_id = (row.broker_order_id if row else None) or _text(ledger.get("broker_order_id"))
    return OrderRow(
        client_intent_id=row.client_intent_id if row else _text(ledger.get("client_intent_id")),
        broker_order_id=order_id or "",
        strategy_id=(row.strategy_id if row else None) or _text(ledger.get("strategy_id")),
        symbol=row.symbol if row else _text(ledger.get("symbol")),
        side=row.side if row else _text(ledger.get("side")),
        qty=_number(row.qty) if row else _text(ledger.get("qty")),
        order_type=(row.order_type if row else None) or _text(ledger.get("order_type")),
        limit_price=(row.limit_price if row else None) or _text(ledger.get("limit_price")),
        book_state=row.state if row else NOT_IN_BOOK,
        broker_status=(row.broker_status if row else None) or "",
        filled_qty=_number(row.filled_qty) if row else _text(ledger.get("filled_qty")),
        working_qty=_number(row.working_qty) if row else "",
        reserved_at=shown(row.reserved_at) or "" if row else "",
        ledger_status=_text(ledger.get("status")) if entry else "no ledger entry",
        filled_avg_price=_text(ledger.get("filled_avg_price")),
        fills=tuple(fill_line(fill) for fill in fills_of(ledger)),
        events=tuple(_event_line(e) for e in _by_time(events.get(order_id or "", []))),
        working=bool(row and row.state in OPEN_STATES),
    )


def _by_time(events: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(events, key=lambda e: chronological(shown(e.get("at") or e.get("recorded_at"))))


def _event_line(event: Mapping[str, Any]) -> str:
    parts = [str(event.get("type") or event.get("id")), shown(event.get("at")) or ""]
    for key in ("status", "qty", "price", "source", "attempt"):
        if event.get(key) is not None:
            parts.append(f"{key}={event[key]}")
    return " ".join(p for p in parts if p)


def _number(value: Any) -> str:
    return format(value, "f")


def _text(value: Any) -> str:
    return "" if value is None else str(value)
