"""The trading day's decision records, read once per process and then topped up.

A busy day holds tens of thousands of records; reading them all for every page would take
seconds. The first read takes the whole day (the audit toolkit's query); later reads take only
the records written since the newest ``updated_at`` seen (every write of a record sets it: the
claim, a takeover, the outcome), and merge them by id, so a record decided after it was first
read is seen decided. The bound is moved back by an overlap that absorbs clock skew between
instances and writes committed a little after their ``updated_at``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from backend.audit.queries import Filters

Record = dict[str, Any]
OVERLAP = timedelta(seconds=60)


class DecisionSource(Protocol):
    """The audit toolkit's LedgerReader."""

    def decisions(self, filters: Filters) -> list[Record]: ...

    def decisions_changed_since(self, filters: Filters, since: datetime) -> list[Record]: ...


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
            filters = Filters(account, day)
            since = self._newest_write() if self._key == (account, day) else None
            if since is None:
                self._records = {}
                rows = self._source.decisions(filters)
            else:
                rows = self._source.decisions_changed_since(filters, since - OVERLAP)
            self._key = (account, day)
            for row in rows:
                self._records[str(row.get("client_intent_id"))] = row
            self._read_at = now
            return list(self._records.values())

    def _newest_write(self) -> datetime | None:
        written = [
            at for r in self._records.values() if isinstance(at := r.get("updated_at"), datetime)
        ]
        return max(written, default=None)
