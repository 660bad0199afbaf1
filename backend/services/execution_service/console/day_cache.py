"""The trading day's decision records, read once per process and then topped up.

A busy day holds tens of thousands of records; reading them all for every page would take
seconds. The first read takes the whole day (the audit toolkit's query); later reads take only
records received since a low-water mark and merge them by id. The mark is the oldest record not
yet decided (in_progress or retry_pending: its outcome will still change), or else the newest
record seen, in both cases minus an overlap that absorbs clock skew between instances and
records committed a little after their ``received_at``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from backend.audit.queries import Filters

Record = dict[str, Any]
UNDECIDED = frozenset({"in_progress", "retry_pending"})
OVERLAP = timedelta(seconds=60)


class DecisionSource(Protocol):
    def decisions(
        self, filters: Filters, *, received_from: datetime | None = None
    ) -> list[Record]: ...


class DayDecisions:
    def __init__(
        self,
        source: DecisionSource,
        *,
        min_interval_s: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._min_interval = min_interval_s
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._key: tuple[str, date] | None = None
        self._records: dict[str, Record] = {}
        self._read_at: float | None = None

    def records(self, account: str, day: date) -> list[Record]:
        """The day's records (any order). Raises what the source raises (LedgerUnavailable)."""
        with self._lock:  # one reader tops up; concurrent pages wait for it and share it
            now = self._monotonic()
            fresh = self._read_at is not None and now - self._read_at < self._min_interval
            if self._key == (account, day) and fresh:
                return list(self._records.values())
            if self._key != (account, day):
                self._records = {}
            since = self._low_water() if self._key == (account, day) else None
            rows = self._source.decisions(Filters(account, day), received_from=since)
            self._key = (account, day)
            for row in rows:
                self._records[str(row.get("client_intent_id"))] = row
            self._read_at = now
            return list(self._records.values())

    def _low_water(self) -> datetime | None:
        undecided = [
            at
            for r in self._records.values()
            if r.get("status") in UNDECIDED and isinstance(at := r.get("received_at"), datetime)
        ]
        seen = [
            at for r in self._records.values() if isinstance(at := r.get("received_at"), datetime)
        ]
        if not seen:
            return None
        return min(undecided or [max(seen)]) - OVERLAP
