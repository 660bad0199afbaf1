"""The three audit commands, given readers that are already built. Each returns an exit code."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import date
from typing import Any, TextIO

from backend.audit import views
from backend.audit.book_reconcile import missing_from_book, reconcile_book
from backend.audit.broker_side import (
    BookReader,
    OrderHistory,
    Progress,
    look_up_book_row,
    look_up_orders,
    open_orders_of,
    orders_submitted_on,
    trading_day_bounds,
)
from backend.audit.output import render
from backend.audit.queries import Filters, LedgerReader
from backend.audit.reconcile import Record, reconcile
from backend.audit.timestamps import shown
from backend.audit.views import counted

CLEAN, DISCREPANCIES = 0, 1


def list_trades(ledger: LedgerReader, filters: Filters, fmt: str, out: TextIO) -> int:
    render(views.TRADES, fmt, ledger.trades(filters), out)
    return CLEAN


def list_decisions(ledger: LedgerReader, filters: Filters, fmt: str, out: TextIO) -> int:
    render(views.DECISIONS, fmt, ledger.decisions(filters), out)
    return CLEAN


def reconcile_day(
    ledger: LedgerReader,
    broker: OrderHistory,
    account: str,
    day: date,
    out: TextIO,
    progress: Progress,
    book: BookReader | None = None,
) -> int:
    start, end = trading_day_bounds(day)
    out.write(
        f"reconciling account {account}, trading date {day} "
        f"(broker orders submitted {shown(start)} to {shown(end)})\n"
    )
    ledger_rows, broker_orders = gather(ledger, broker, account, day, progress)
    result = reconcile(ledger_rows, broker_orders)
    for discrepancy in result.discrepancies:
        out.write(discrepancy.describe() + "\n")
    out.write(
        f"summary: {counted(result.compared, 'order')} compared ({result.in_ledger} in the "
        f"ledger, {result.at_broker} at the broker), "
        f"{counted(len(result.discrepancies), 'discrepancy', 'discrepancies')}"
        + (" - clean\n" if result.clean else "\n")
    )
    book_clean = True
    if book is not None:
        book_clean = reconcile_order_book(
            book, broker, account, out, progress, ledger.decisions_by_id
        )
    return CLEAN if result.clean and book_clean else DISCREPANCIES


def reconcile_order_book(
    book: BookReader,
    broker: OrderHistory,
    account: str,
    out: TextIO,
    progress: Progress,
    decisions_by_id: Callable[[Iterable[str]], Mapping[str, Mapping[str, Any]]],
) -> bool:
    """The book's working orders against the broker's open ones (every day: orders work across
    days). A row the broker's open listing lacks is looked up on its own."""
    open_rows = book.open_rows(account)
    open_orders = {
        str(o.get("client_order_id")): o for o in open_orders_of(broker, progress=progress)
    }
    known = {row.client_intent_id for row in open_rows}
    others = [
        row
        for row in book.rows_for(coid for coid in open_orders if coid not in known)
        if row.broker_account_id == account
    ]
    orders = {coid: order for coid, order in open_orders.items() if coid in known}
    orders |= {row.client_intent_id: open_orders[row.client_intent_id] for row in others}
    for row in open_rows:
        if row.client_intent_id not in orders:
            found = look_up_book_row(broker, row)
            if found is not None:
                orders[row.client_intent_id] = found
    found_discrepancies = reconcile_book([*open_rows, *others], orders)
    # Open orders whose intent has no book row at all, but a decision record of this account.
    rowless = [
        coid for coid in open_orders if coid not in known | {r.client_intent_id for r in others}
    ]
    ours = {
        coid: open_orders[coid]
        for coid, decision in decisions_by_id(rowless).items()
        if _belongs_to(decision, account)
    }
    found_discrepancies += missing_from_book(ours)
    for discrepancy in found_discrepancies:
        out.write(discrepancy.describe() + "\n")
    at_broker = sum(1 for row in [*open_rows, *others] if row.client_intent_id in open_orders)
    out.write(
        f"order book: {counted(len(open_rows), 'working row')} in the book, "
        f"{counted(at_broker, 'open order')} of ours at the broker, "
        f"{counted(len(found_discrepancies), 'discrepancy', 'discrepancies')}"
        + (" - clean\n" if not found_discrepancies else "\n")
    )
    return not found_discrepancies


def gather(
    ledger: LedgerReader, broker: OrderHistory, account: str, day: date, progress: Progress
) -> tuple[dict[str, Record], dict[str, Record]]:
    """Both sides of one account's trading day, keyed by broker order id.

    The broker's day listing covers every order of the Alpaca account, whoever placed it: an
    order is ours when its client_order_id names a decision record of this account. Its ledger
    row may carry another trading date (an order adopted after New York midnight), so rows
    missing from the day's listing are looked up by id before the order is called missing.
    Ledger orders the listing did not return (submitted on another day) are asked for one by
    one; an order the listing already returned is not fetched again, which keeps a busy day
    well inside Alpaca's 200 requests a minute.
    """
    ledger_rows: dict[str, Record] = {}
    for row in ledger.trades(Filters(account, day)):
        ledger_rows[str(row.get("broker_order_id"))] = row

    listed = orders_submitted_on(broker, day, progress=progress)
    decisions = ledger.decisions_by_id(o.get("client_order_id") or "" for o in listed)
    ours: dict[str, Record] = {
        str(order["id"]): order
        for order in listed
        if _belongs_to(decisions.get(str(order.get("client_order_id"))), account)
    }
    ledger_rows |= ledger.trades_by_id(i for i in ours if i not in ledger_rows)

    unlisted = [i for i in ledger_rows if i not in ours]
    broker_orders = ours | look_up_orders(broker, unlisted, progress=progress)
    return ledger_rows, broker_orders


def _belongs_to(decision: Mapping[str, Any] | None, account: str) -> bool:
    return decision is not None and decision.get("broker_account_id") == account
