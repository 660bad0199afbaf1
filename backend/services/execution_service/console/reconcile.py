"""The Reconcile page: the audit toolkit's reconciliation of one trading day (the ledger against
Alpaca, and the order book against Alpaca's open orders), shown discrepancy by discrepancy.

The comparison is the toolkit's own (backend/audit/commands.gather, reconcile, check_order_book);
this module only runs it and arranges what it found for the page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from backend.audit.broker_side import BookReader, OrderHistory
from backend.audit.commands import BookCheck, check_order_book, gather
from backend.audit.queries import LedgerReader
from backend.audit.reconcile import Reconciliation, reconcile


@dataclass(frozen=True)
class Finding:
    kind: str
    broker_order_id: str
    client_intent_id: str
    ours: str  # the ledger's or the book's side
    broker: str


@dataclass(frozen=True)
class ReconcileView:
    day: date
    account: str
    compared: int
    in_ledger: int
    at_broker: int
    ledger_findings: tuple[Finding, ...]
    book_working: int | None
    book_open_at_broker: int | None
    book_findings: tuple[Finding, ...]
    book_note: str

    @property
    def clean(self) -> bool:
        return not self.ledger_findings and not self.book_findings


def run_reconcile(
    ledger: LedgerReader,
    broker: OrderHistory,
    book: BookReader | None,
    account: str,
    day: date,
) -> ReconcileView:
    """Reads both sides and compares them; raises LedgerUnavailable, BrokerUnavailable or
    RiskDataUnavailable when a side cannot be read (the page says which)."""
    quiet = lambda _line: None  # noqa: E731 - the CLI's progress lines have no place on a page
    ledger_rows, broker_orders = gather(ledger, broker, account, day, quiet)
    result = reconcile(ledger_rows, broker_orders)
    check = (
        check_order_book(book, broker, account, quiet, ledger.decisions_by_id)
        if book is not None
        else None
    )
    return reconcile_view(account, day, result, check)


def reconcile_view(
    account: str, day: date, result: Reconciliation, check: BookCheck | None
) -> ReconcileView:
    return ReconcileView(
        day=day,
        account=account,
        compared=result.compared,
        in_ledger=result.in_ledger,
        at_broker=result.at_broker,
        ledger_findings=tuple(
            Finding(d.kind.value, d.broker_order_id, d.client_order_id or "?", d.ledger, d.broker)
            for d in result.discrepancies
        ),
        book_working=check.working_rows if check else None,
        book_open_at_broker=check.open_at_broker if check else None,
        book_findings=tuple(
            Finding(d.kind.value, d.broker_order_id or "?", d.client_intent_id, d.book, d.broker)
            for d in (check.discrepancies if check else ())
        ),
        book_note="" if check else "the order book was not compared (no Postgres configured)",
    )
