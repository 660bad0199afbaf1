"""The fill sync: brings broker order progress and fills into the ledger, within a time budget.

Called by Cloud Scheduler through ``POST /sync-fills`` (nothing runs between requests on Cloud
Run). Each call resumes where the last one stopped. Two passes:

1. orders, listed by submission time from the cursor's low-water mark (minus an overlap), each
   merged with the monotonic rules in :mod:`backend.execution.fills`;
2. FILL activities since the last one seen (minus the overlap), paged by activity id (Alpaca's
   ``page_token``), each recorded once per order (``raw_fills`` map and a ``fill-<id>`` event).

Broker calls are spaced to respect Alpaca's 200 requests/minute, never retried in a loop; a
broker or Firestore failure ends the call with what was done saved.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Protocol, TypeVar

from backend.execution.adoption import order_differences
from backend.execution.book import BookRow
from backend.execution.clock import Clock
from backend.execution.errors import TransientError
from backend.execution.fills import (
    FINAL_STATUSES,
    RecordedOrder,
    SyncCursor,
    broker_time,
    earliest,
    fill_event,
    fill_event_id,
    merge_order,
    status_event,
)
from backend.execution.ports import BrokerHistory

log = logging.getLogger(__name__)
_T = TypeVar("_T")

# Intent fields copied from a decision record when the sync adopts an order missing from the
# ledger (its attempt died after the broker accepted it and nobody redelivered the intent).
_INTENT_FIELDS = (
    "client_intent_id", "strategy_id", "broker_account_id", "symbol", "side", "qty",
    "order_type", "time_in_force", "limit_price", "stop_price", "intent_created_at",
    "metadata_json", "trading_date",
)  # fmt: skip


class FillStore(Protocol):
    def load_cursor(self) -> SyncCursor: ...
    def save_cursor(self, cursor: SyncCursor, now: datetime) -> None: ...
    def load_orders(self, order_ids: list[str]) -> dict[str, dict[str, Any]]: ...
    def intent_of(self, client_order_id: str) -> dict[str, Any] | None: ...
    def merge_order(self, order_id: str, fields: dict[str, Any], now: datetime) -> None: ...
    def add_fill(self, order_id: str, activity_id: str, activity: dict[str, Any]) -> None: ...
    def add_event(
        self, order_id: str, event_id: str, event: dict[str, Any], now: datetime
    ) -> bool: ...


class SyncLock(Protocol):
    def hold(self) -> AbstractContextManager[bool]: ...


class BookUpdates(Protocol):
    """The order book in Postgres, kept true to the broker (PostgresOrderBook)."""

    def apply_orders(self, orders: Iterable[Mapping[str, Any]]) -> set[str]: ...
    def apply_fills(self, activities: Iterable[Mapping[str, Any]]) -> int: ...


class BookSweep(Protocol):
    """The book's rows that may still be working, and the release of stale reservations."""

    def open_rows(self) -> list[BookRow]: ...
    def release_stale(self, row: BookRow) -> bool: ...


@dataclass
class SyncReport:
    status: str = "complete"  # complete | budget_exhausted | busy | failed
    orders_seen: int = 0
    documents_changed: int = 0
    orders_adopted: int = 0
    # Broker orders under one of our client_order_ids that are not the intent's order.
    orders_mismatched: int = 0
    book_rows_refreshed: int = 0
    book_rows_released: int = 0
    fills_seen: int = 0
    fills_added: int = 0
    broker_calls: int = 0
    error: str | None = None
    cursor: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["cursor"] = {
            k: v.isoformat() if isinstance(v, datetime) else v for k, v in self.cursor.items()
        }
        return out


class _OutOfBudget(Exception):
    pass


class FillSync:
    def __init__(
        self,
        history: BrokerHistory,
        store: FillStore,
        lock: SyncLock,
        clock: Clock,
        *,
        budget_s: float,
        overlap_s: float,
        book: Any = None,
        sweep_book: bool = True,
        reservation_grace_s: float = 120.0,
        page_size: int = 500,
        fills_page_size: int = 100,
        min_call_interval_s: float = 0.3,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._history = history
        self._store = store
        # The Postgres order book (BookUpdates and BookSweep); None only in tests of the ledger.
        self._book = book
        # Only a deployment bound to one account sweeps: the book may hold other accounts.
        self._sweeps = sweep_book
        # A reservation older than this can no longer be sent by the attempt that made it.
        self._grace = timedelta(seconds=reservation_grace_s)
        self._lock = lock
        self._clock = clock
        self._budget_s = budget_s
        self._overlap = timedelta(seconds=overlap_s)
        self._page_size = page_size
        self._fills_page_size = fills_page_size
        self._min_interval = min_call_interval_s
        self._monotonic = monotonic
        self._sleep = sleep

    def run(self) -> SyncReport:
        report = SyncReport()
        try:
            with self._lock.hold() as held:
                if not held:
                    report.status = "busy"
                    return report
                self._run_locked(report)
        except TransientError as exc:  # the lock, the cursor, the broker or the ledger
            report.status, report.error = "failed", str(exc)
            log.warning("fill sync stopped early: %s", exc, extra={"event": "fills.sync_failed"})
        log.info("fill sync %s", report.status, extra={"event": "fills.sync", **report.to_dict()})
        return report

    def _run_locked(self, report: SyncReport) -> None:
        self._deadline = self._monotonic() + self._budget_s
        self._last_call: float | None = None
        cursor = self._store.load_cursor()
        started = self._clock.now()
        try:
            self._sync_orders(cursor, report)
            self._sync_fills(cursor, report)
            self._sweep_book(started, report)
        except _OutOfBudget:
            report.status = "budget_exhausted"
        finally:
            # What was done is kept, whatever stopped the run.
            report.cursor = cursor.to_dict()
            self._store.save_cursor(cursor, self._clock.now())

    # -- pass 1: orders ------------------------------------------------------------------------

    def _sync_orders(self, cursor: SyncCursor, report: SyncReport) -> None:
        after = cursor.orders_resume_after or _minus(cursor.orders_low_water, self._overlap)
        newest_seen: datetime | None = None
        while True:
            self._spend_budget()
            page = self._broker(
                report, partial(self._history.list_orders, after=after, limit=self._page_size)
            )
            recorded = self._store.load_orders([str(o.get("id")) for o in page])
            if self._book is not None:
                self._book.apply_orders(page)
            for order in page:
                ours = self._merge_one(order, recorded.get(str(order.get("id"))), report)
                submitted = broker_time(order.get("submitted_at"))
                # Only this service's open orders hold the mark back; another tool's order
                # left open for weeks must not make every run re-list from its day.
                if ours and str(order.get("status")) not in FINAL_STATUSES:
                    cursor.orders_next_low_water = earliest(cursor.orders_next_low_water, submitted)
                newest_seen = submitted or newest_seen
            report.orders_seen += len(page)
            if len(page) < self._page_size:
                break
            if newest_seen is None or (after is not None and newest_seen <= after):
                log.warning("order listing made no progress; stopping this pass")
                break
            after = newest_seen
            cursor.orders_resume_after = after
        # A full pass: everything before the oldest still-open order is final.
        cursor.orders_low_water = (
            cursor.orders_next_low_water or newest_seen or cursor.orders_low_water
        )
        cursor.orders_resume_after = cursor.orders_next_low_water = None

    def _merge_one(
        self, order: dict[str, Any], recorded: dict[str, Any] | None, report: SyncReport
    ) -> bool:
        """Merges one broker order; False when the order is not this service's."""
        order_id, now = str(order.get("id")), self._clock.now()
        if recorded is None:
            intent = self._store.intent_of(str(order.get("client_order_id") or ""))
            if intent is None:
                return False
            differences = order_differences(intent, order)
            if differences:
                # Someone else's order under our id: never adopted, the ledger is left alone.
                report.orders_mismatched += 1
                log.error(
                    "broker order %s carries client_order_id %s but is not that intent's: %s",
                    order_id,
                    order.get("client_order_id"),
                    "; ".join(differences),
                    extra={
                        "event": "broker.order_mismatch",
                        "broker_order": order,
                        "intent": {k: intent.get(k) for k in _INTENT_FIELDS},
                        "differences": differences,
                    },
                )
                return False
            recorded = {}
            entry = {k: intent.get(k) for k in _INTENT_FIELDS}
            entry |= {"broker_order_id": order_id, "broker": "alpaca", "created_at": now,
                      "submitted_at": order.get("submitted_at")}  # fmt: skip
            self._store.merge_order(order_id, entry, now)
            self._store.add_event(order_id, "adopted-by-sync", {"type": "adopted",
                                  "at": order.get("submitted_at"), "source": "fill_sync"}, now)  # fmt: skip
            report.orders_adopted += 1
        update = merge_order(RecordedOrder.from_ledger(recorded), order)
        if update is None:
            return True
        self._store.merge_order(order_id, update.fields, now)
        report.documents_changed += 1
        if update.new_status_event:
            event_id = f"status-{update.new_status_event}"
            self._store.add_event(
                order_id, event_id, status_event(update.new_status_event, order), now
            )
        return True

    # -- pass 2: fills -------------------------------------------------------------------------

    def _sync_fills(self, cursor: SyncCursor, report: SyncReport) -> None:
        # A pass starts from a time (the newest fill seen, minus the overlap) and then follows
        # activity ids: the time bound is only ever the start, where the overlap covers it.
        after = _minus(cursor.fills_after, self._overlap)
        while True:
            self._spend_budget()
            token = cursor.fills_resume_after_id
            listing = partial(
                self._history.list_fills,
                after=None if token else after,
                page_token=token,
                page_size=self._fills_page_size,
            )
            page = self._broker(report, listing)
            recorded = self._store.load_orders([str(a.get("order_id")) for a in page])
            if self._book is not None:
                self._book.apply_fills(page)
            for activity in page:
                report.fills_seen += 1
                order_id = str(activity.get("order_id"))
                known = recorded.get(order_id, {}).get("raw_fills") or {}
                # Only this service's orders are in the ledger; a fill already recorded (seen
                # again inside the overlap window) costs no write.
                if order_id in recorded and str(activity.get("id")) not in known:
                    self._record_fill(order_id, activity, report)
                stamp = broker_time(activity.get("transaction_time"))
                if stamp is not None:
                    cursor.fills_after = max(cursor.fills_after or stamp, stamp)
                # Recorded as each activity is done, so a failure mid-page resumes after the
                # last one recorded (a replayed fill costs no write).
                if activity.get("id"):
                    cursor.fills_resume_after_id = str(activity["id"])
            if len(page) < self._fills_page_size:
                cursor.fills_resume_after_id = None  # the pass is complete
                return
            if not page[-1].get("id") or cursor.fills_resume_after_id == token:
                log.warning("fill listing made no progress; stopping this pass")
                cursor.fills_resume_after_id = None
                return

    # -- pass 3: the book's rows the listings did not settle ------------------------------------

    def _sweep_book(self, started: datetime, report: SyncReport) -> None:
        """Rows still reserved or working that this run did not touch: orders older than the
        listing's window (rows carried over from an earlier version, say) are read one by one;
        a reservation whose attempt is over and whose order the broker does not have is
        released. Anything that cannot be read stays as it is (counted: fail closed)."""
        if self._book is None or not self._sweeps:
            return
        for row in self._book.open_rows():
            if row.updated_at >= started:
                continue  # refreshed by this run's listing
            if row.broker_order_id is not None:
                self._spend_budget()
                order = self._broker(report, partial(self._history.get_order, row.broker_order_id))
                if order is not None and self._book.apply_orders([order]):
                    report.book_rows_refreshed += 1
            elif row.reserved_at < started - self._grace:
                self._spend_budget()
                lookup = partial(self._history.get_order_by_client_id, row.client_intent_id)
                order = self._broker(report, lookup)
                if order is not None:
                    report.book_rows_refreshed += len(self._book.apply_orders([order]))
                elif self._book.release_stale(row):
                    report.book_rows_released += 1

    def _record_fill(self, order_id: str, activity: dict[str, Any], report: SyncReport) -> None:
        event_id, now = fill_event_id(activity), self._clock.now()
        self._store.add_fill(order_id, str(activity.get("id")), activity)
        if self._store.add_event(order_id, event_id, fill_event(activity), now):
            report.fills_added += 1

    # -- pacing --------------------------------------------------------------------------------

    def _spend_budget(self) -> None:
        if self._monotonic() >= self._deadline:
            raise _OutOfBudget()

    def _broker(self, report: SyncReport, call: Callable[[], _T]) -> _T:
        """One broker call, spaced from the last to stay under the broker's rate limit."""
        if self._last_call is not None:
            wait = self._min_interval - (self._monotonic() - self._last_call)
            if wait > 0:
                self._sleep(wait)
        self._last_call = self._monotonic()
        report.broker_calls += 1  # counted before the call: a failed call was still made
        return call()


def _minus(stamp: datetime | None, overlap: timedelta) -> datetime | None:
    return None if stamp is None else stamp - overlap
