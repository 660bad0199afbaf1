"""Firestore reads for the audit commands: plain dicts out, every call bounded, no writes.

Each listing is equality on a fixed set of fields plus one sort field. ``query_shapes()``
enumerates every combination the CLI can issue, so a test can hold firestore.indexes.json to it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from itertools import combinations
from typing import Any

from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.auth.exceptions import GoogleAuthError
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from backend.execution.adapters.firestore_ledger import INTENTS, LEDGER
from backend.execution.errors import LedgerUnavailable

Row = dict[str, Any]
Progress = Callable[[str], None]
Shape = Callable[[Row], Row]

PAGE_SIZE = 500
# Ids per BatchGetDocuments call: small enough that one call stays well inside the timeout.
LOOKUP_CHUNK = 100


@dataclass(frozen=True)
class QueryShape:
    """What a composite index must cover: equality fields, then one ascending sort field."""

    collection: str
    equality_fields: tuple[str, ...]
    order_field: str


@dataclass(frozen=True)
class Filters:
    account: str
    trading_date: date
    strategy: str | None = None
    symbol: str | None = None
    statuses: tuple[str, ...] = ()

    def by_field(self) -> dict[str, str | tuple[str, ...] | None]:
        return {
            "broker_account_id": self.account,
            "trading_date": self.trading_date.isoformat(),
            "strategy_id": self.strategy,
            "symbol": self.symbol,
            "status": self.statuses or None,
        }


@dataclass(frozen=True)
class Listing:
    """One collection as the CLI lists it: the fields it always and may filter on, its order."""

    collection: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    order_field: str
    noun: str  # for progress lines: "read 500 ledger rows…"

    def shapes(self) -> list[QueryShape]:
        chosen = (
            subset
            for size in range(len(self.optional) + 1)
            for subset in combinations(self.optional, size)
        )
        return [QueryShape(self.collection, self.required + s, self.order_field) for s in chosen]

    def conditions(self, filters: Filters) -> list[tuple[str, str | tuple[str, ...]]]:
        """(field, value) pairs in index order; a tuple value means "any of these"."""
        values = filters.by_field()
        unsupported = [f for f, v in values.items() if v and f not in self.required + self.optional]
        if unsupported:
            raise ValueError(f"{self.collection} cannot be filtered on {unsupported}")
        pairs: list[tuple[str, str | tuple[str, ...]]] = []
        for field in self.required + self.optional:
            value = values[field]
            if value:
                pairs.append((field, value))
        return pairs

    def shape_for(self, filters: Filters) -> QueryShape:
        fields = tuple(field for field, _ in self.conditions(filters))
        return QueryShape(self.collection, fields, self.order_field)


TRADES = Listing(
    LEDGER, ("broker_account_id", "trading_date"), ("strategy_id", "symbol"), "created_at",
    "ledger rows",
)  # fmt: skip
DECISIONS = Listing(
    INTENTS, ("broker_account_id", "trading_date"), ("strategy_id", "symbol", "status"),
    "received_at", "decision records",
)  # fmt: skip
# The console's top-up of its copy of the day: the records written since a moment (every write
# of a decision record sets updated_at: the claim, a takeover, the outcome).
CHANGED_DECISIONS = Listing(
    INTENTS, ("broker_account_id", "trading_date"), (), "updated_at", "changed decision records",
)  # fmt: skip


def query_shapes() -> list[QueryShape]:
    """Every listing query the CLI and the console issue (lookups by id need no index)."""
    return TRADES.shapes() + DECISIONS.shapes() + CHANGED_DECISIONS.shapes()


class LedgerReader:
    def __init__(
        self,
        client: firestore.Client,
        *,
        timeout_s: float,
        page_size: int = PAGE_SIZE,
        progress: Progress | None = None,
    ) -> None:
        self._db = client
        self._timeout = timeout_s
        # The retry deadline is the timeout too: an unreachable Firestore fails in seconds.
        self._retry = Retry(initial=0.1, maximum=1.0, multiplier=2.0, timeout=timeout_s)
        self._page_size = page_size
        self._progress = progress or (lambda _: None)

    def trades(self, filters: Filters) -> list[Row]:
        """ledger_trades rows of one account and trading date, oldest created_at first."""
        return self._list(TRADES, filters)

    def decisions(self, filters: Filters, *, keep: Shape | None = None) -> list[Row]:
        """execution_intents records of one account and trading date, by received_at.

        ``keep``, if given, is applied to each record as it is read, so a caller that keeps only
        part of each record never holds a whole busy day of full records at once."""
        return self._list(DECISIONS, filters, keep=keep)

    def decisions_changed_since(
        self, filters: Filters, since: datetime, *, keep: Shape | None = None
    ) -> list[Row]:
        """The account's records of the trading date written at or after ``since``."""
        return self._list(CHANGED_DECISIONS, filters, start=since, keep=keep)

    def trades_by_id(self, broker_order_ids: Iterable[str]) -> dict[str, Row]:
        return self._by_id(LEDGER, broker_order_ids)

    def decisions_by_id(self, client_intent_ids: Iterable[str]) -> dict[str, Row]:
        return self._by_id(INTENTS, client_intent_ids)

    def _list(
        self, listing: Listing, filters: Filters, start: Any = None, keep: Shape | None = None
    ) -> list[Row]:
        query: Any = self._db.collection(listing.collection)
        for field, value in listing.conditions(filters):
            if isinstance(value, tuple) and len(value) > 1:
                query = query.where(filter=FieldFilter(field, "in", list(value)))
            else:
                only = value[0] if isinstance(value, tuple) else value
                query = query.where(filter=FieldFilter(field, "==", only))
        query = query.order_by(listing.order_field)
        return self._pages(query, listing, start, keep or _as_read)

    def _pages(self, query: Any, listing: Listing, start: Any, keep: Shape) -> list[Row]:
        # Pages continue from the last sort value (">=", dropping rows already seen) rather than
        # from a document cursor: the same composite index serves it, and the test emulator
        # ignores cursors. A full page of rows that all share one sort value cannot move the
        # bound forward, so the next page is made larger until it gets past them.
        rows: list[Row] = []
        seen: set[str] = set()
        bound: Any = start  # the first page starts here too (">=" on the sort field)
        limit = self._page_size
        while True:
            page_query = query
            if bound is not None:
                page_query = query.where(filter=FieldFilter(listing.order_field, ">=", bound))
            page = self._get(page_query.limit(limit))
            fresh = [snapshot for snapshot in page if snapshot.id not in seen]
            seen.update(snapshot.id for snapshot in fresh)
            rows.extend(keep(snapshot.to_dict() or {}) for snapshot in fresh)
            self._progress(f"read {len(rows)} {listing.noun}…")
            last_value = page[-1].get(listing.order_field) if page else None
            if len(page) < limit or last_value is None:
                return rows
            if fresh:
                bound, limit = last_value, self._page_size
            else:
                limit *= 2

    def _get(self, query: Any) -> list[Any]:
        try:
            return list(query.get(retry=self._retry, timeout=self._timeout))
        except (gexc.GoogleAPIError, GoogleAuthError) as exc:
            raise LedgerUnavailable(describe(exc)) from None

    def _by_id(self, collection: str, ids: Iterable[str]) -> dict[str, Row]:
        wanted = sorted({i for i in ids if is_document_id(i)})
        found: dict[str, Row] = {}
        for start in range(0, len(wanted), LOOKUP_CHUNK):
            refs = [
                self._db.collection(collection).document(i)
                for i in wanted[start : start + LOOKUP_CHUNK]
            ]
            try:
                snapshots = list(self._db.get_all(refs, retry=self._retry, timeout=self._timeout))
            except (gexc.GoogleAPIError, GoogleAuthError) as exc:
                raise LedgerUnavailable(describe(exc)) from None
            found |= {s.id: s.to_dict() or {} for s in snapshots if s.exists}
        return found


def _as_read(row: Row) -> Row:
    return row


def is_document_id(text: object) -> bool:
    """Whether Firestore could hold a document with this id (foreign broker ids may be odd)."""
    return (
        isinstance(text, str)
        and text not in ("", ".", "..")
        and "/" not in text
        and not (text.startswith("__") and text.endswith("__"))
        and len(text.encode()) <= 1500
    )


def describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
