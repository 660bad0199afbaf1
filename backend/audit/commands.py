"""The three audit commands, given readers that are already built. Each returns an exit code."""

from __future__ import annotations

from datetime import date
from typing import Any, TextIO

from backend.audit import views
from backend.audit.broker_side import (
    OrderHistory,
    Progress,
    look_up_orders,
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
    return CLEAN if result.clean else DISCREPANCIES


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


def _belongs_to(decision: dict[str, Any] | None, account: str) -> bool:
    return decision is not None and decision.get("broker_account_id") == account
