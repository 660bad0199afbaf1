"""A row of the gateway's order book (Postgres ``execution_orders``), as the fill sync and the
auditor's reconcile see it. The states are explained in backend/db/migrations/0002_order_book.sql
and docs/LEDGER.md."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

# A row in one of these states may still fill, so its unfilled rest is working exposure.
OPEN_STATES = frozenset({"reserved", "working"})


@dataclass(frozen=True)
class BookRow:
    """A row of the book that may still be working."""

    client_intent_id: str
    broker_account_id: str
    symbol: str
    side: str
    qty: Decimal
    state: str
    broker_order_id: str | None
    broker_status: str | None
    filled_qty: Decimal
    working_qty: Decimal
    reserved_at: datetime
    updated_at: datetime
