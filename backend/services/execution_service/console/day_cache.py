"""The trading day's decision records, kept in memory by a background reader, so that the
Decisions page renders from memory and never waits on a read of the whole day.

A busy day holds tens of thousands of records: reading them takes seconds from Firestore (and
close to a minute from the test emulator), far more than a page may take. So a reader thread
loads the day once (the audit toolkit's query), then tops it up every ``interval_s`` with only
the records written since the newest ``updated_at`` it has seen (every write of a record sets
it: the claim, a takeover, the outcome), merged by id, so a record decided long after it was
received is seen decided. The bound is moved back by ``OVERLAP``, for clock skew between
instances and writes committed a little after their ``updated_at``.

The reader runs while pages ask for the day and stops ``keep_s`` after the last one; the next
request starts it again (a top-up, not a reload). A request waits for the reader only when its
copy is older than ``fresh_s`` (the first load, or after a pause), and then at most ``wait_s``:
past that the page says the day is still loading, and how far it got.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from backend.audit.queries import Filters
from backend.audit.views import summarize_checks

Record = dict[str, Any]
OVERLAP = timedelta(seconds=60)
# What the page, its filters, its charts and the CSV (the audit toolkit's columns) read of a
# record; the rest of it stays in Firestore. The checks are kept as one JSON string: a day of
# nested check dicts would take hundreds of MB per worker, the strings a tenth of that.
KEPT_FIELDS = frozenset({
    "client_intent_id", "strategy_id", "broker_account_id", "symbol", "side", "qty",
    "order_type", "time_in_force", "limit_price", "stop_price", "status", "reason", "retryable",
    "message", "broker_order_id", "attempt", "source", "trading_date", "received_at",
    "decided_at", "updated_at",
})  # fmt: skip
CHECKS_JSON, CHECKS_SUMMARY = "_checks_json", "_checks_summary"
RECEIVED_S, RECEIVED_MINUTE = "_received_s", "_received_minute"
log = logging.getLogger(__name__)


class DecisionSource(Protocol):
    """The audit toolkit's LedgerReader."""

    def decisions(
        self, filters: Filters, *, keep: Callable[[Record], Record] | None = None
    ) -> list[Record]: ...

    def decisions_changed_since(
        self, filters: Filters, since: datetime, *, keep: Callable[[Record], Record] | None = None
    ) -> list[Record]: ...


@dataclass(frozen=True)
class DaySnapshot:
    records: list[Record]  # newest first
    complete: bool  # the whole day has been read at least once
    read_so_far: str  # the reader's last progress line, while loading
    error: str | None  # the last read failed (the reader retries)
    age_s: float | None  # since the last successful read
    version: int  # changes whenever a record does: what was computed from them may be kept


class DayDecisions:
    def __init__(
        self,
        source: DecisionSource,
        *,
        interval_s: float = 5.0,
        keep_s: float = 60.0,
        fresh_s: float = 5.0,
        wait_s: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._interval, self._keep, self._fresh, self._wait = interval_s, keep_s, fresh_s, wait_s
        self._monotonic = monotonic
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._key: tuple[str, date] | None = None
        self._records: dict[str, Record] = {}
        self._newest_first: list[Record] = []
        self._version = 0
        self._complete = False
        self._progress = ""
        self._error: str | None = None
        self._read_at: float | None = None
        self._wanted_at = 0.0
        self._reader: threading.Thread | None = None
        self._pass_done = threading.Event()

    def snapshot(self, account: str, day: date) -> DaySnapshot:
        key = (account, day)
        with self._lock:
            now = self._monotonic()
            self._wanted_at = now
            if self._key != key:
                self._key, self._records, self._newest_first = key, {}, []
                self._complete, self._version = False, self._version + 1
                self._read_at, self._error, self._progress = None, None, ""
                self._pass_done = threading.Event()
            if (self._reader is None or not self._reader.is_alive()) and not self._stopped.is_set():
                self._reader = threading.Thread(
                    target=self._read_while_wanted, daemon=True, name="console-day-reader"
                )
                self._reader.start()
            stale = self._read_at is None or now - self._read_at > self._fresh
            done = self._pass_done
        if stale:
            done.wait(self._wait)
        with self._lock:
            age = None if self._read_at is None else self._monotonic() - self._read_at
            return DaySnapshot(
                self._newest_first, self._complete, self._progress, self._error, age,
                self._version,
            )  # fmt: skip

    def progress(self, line: str) -> None:
        """The LedgerReader's progress lines ("read 4500 decision records…")."""
        self._progress = line

    def _read_while_wanted(self) -> None:
        failures = 0
        while True:
            with self._lock:
                key = self._key
            assert key is not None
            try:
                self._read_once(key)
                failures = 0
            except Exception as exc:  # any failure: shown on the page, retried with backoff
                failures += 1
                with self._lock:
                    if self._key == key:
                        self._error = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
                log.warning("console: the day's decisions could not be read: %s",
                            type(exc).__name__, extra={"event": "console.unreadable"})  # fmt: skip
            with self._lock:
                if self._key != key:
                    continue  # another day was asked for meanwhile: read that one now
                done, self._pass_done = self._pass_done, threading.Event()
                if self._monotonic() - self._wanted_at > self._keep:
                    self._reader = None
                    done.set()
                    return
            done.set()
            if self._stopped.wait(self._interval * min(2**failures, 30)):
                with self._lock:
                    self._reader = None
                return

    def stop(self) -> None:
        """Ends the reader (the service is shutting down); a later snapshot would restart it."""
        self._stopped.set()

    def _read_once(self, key: tuple[str, date]) -> None:
        with self._lock:
            since = self._newest_write() if self._complete else None
        filters = Filters(*key)
        if since is None:
            rows = self._source.decisions(filters, keep=compact)
        else:
            rows = self._source.decisions_changed_since(filters, since - OVERLAP, keep=compact)
        with self._lock:
            if self._key != key:
                return  # another day was asked for meanwhile
            changed = not self._complete
            for row in rows:
                intent_id = str(row.get("client_intent_id"))
                if self._records.get(intent_id) != row:
                    self._records[intent_id] = row
                    changed = True
            if changed:
                # A new list, so a page holding the old one is not changed under it.
                self._newest_first = sorted(self._records.values(), key=newest_first)
                self._version += 1
            self._complete, self._error, self._progress = True, None, ""
            self._read_at = self._monotonic()

    def _newest_write(self) -> datetime | None:
        written = [
            at for r in self._newest_first if isinstance(at := r.get("updated_at"), datetime)
        ]
        return max(written, default=None)


def compact(record: Record) -> Record:
    """What the console keeps of a record: the fields it shows, the checks as JSON and their
    one-line summary (the audit toolkit's, as its CSV writes it), and the receipt time in
    seconds and in minutes since the epoch, for sorting and the per-minute chart."""
    kept = {k: v for k, v in record.items() if k in KEPT_FIELDS}
    checks = record.get("checks")
    if checks is not None:
        kept[CHECKS_JSON] = json.dumps(checks, default=str)
    kept[CHECKS_SUMMARY] = summarize_checks(checks)
    received = record.get("received_at")
    at = received.timestamp() if isinstance(received, datetime) else None
    kept[RECEIVED_S] = at
    kept[RECEIVED_MINUTE] = int(at // 60) if at is not None else None
    return kept


def with_checks(record: Mapping[str, Any]) -> Record:
    """A kept record as stored (for a row that opens)."""
    full = {k: v for k, v in record.items() if k in KEPT_FIELDS}
    if CHECKS_JSON in record:
        full["checks"] = json.loads(record[CHECKS_JSON])
    return full


def newest_first(record: Mapping[str, Any]) -> tuple[float, str]:
    at = record.get(RECEIVED_S)
    return (-at if at is not None else float("inf"), str(record.get("client_intent_id")))
