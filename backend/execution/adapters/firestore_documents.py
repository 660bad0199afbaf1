"""Small Firestore documents read on the gate path: the kill-switch and heartbeat documents.

Each is cached for a bounded time (EXECUTION_HALTED_DOC_TTL_S) so a burst of intents costs one
read, never more stale than the TTL. A failed read is never papered over with an older value.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from backend.execution.errors import TransientError
from backend.execution.kill_switch import REDUCE_ONLY_VALUES, KillSwitchReading, unreadable


class CachedDocument:
    def __init__(
        self,
        client: firestore.Client,
        path: str,
        *,
        ttl_s: float,
        timeout_s: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self._ref = client.document(path)
        self._ttl = ttl_s
        self._timeout = timeout_s
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._fetched_at: float | None = None
        self._data: dict[str, Any] | None = None
        # The last failed read: when it ended, and what it said.
        self._failed_at: float | None = None
        self._failure = ""

    def get(self) -> dict[str, Any] | None:
        """The document's fields, or None if it does not exist. Raises TransientError.

        One reader refreshes; the others wait for its result. A read that fails is shared with
        every caller that was already waiting for it, so a Firestore that never answers costs
        each request one timeout, not one per request queued ahead of it.
        """
        arrived = self._monotonic()
        with self._lock:
            now = self._monotonic()
            if self._fetched_at is not None and now - self._fetched_at < self._ttl:
                return self._data
            if self._failed_at is not None and self._failed_at >= arrived:
                raise TransientError(self._failure)
            try:
                snapshot = self._ref.get(retry=None, timeout=self._timeout)
            except gexc.GoogleAPIError as exc:
                self._fetched_at = None
                self._failed_at = self._monotonic()
                self._failure = f"{self.path}: {type(exc).__name__}"
                raise TransientError(self._failure) from None
            self._data = snapshot.to_dict() if snapshot.exists else None
            self._fetched_at = now
            return self._data

    def invalidate(self) -> None:
        """Forget the cached value: the next get() reads the document."""
        with self._lock:
            self._fetched_at = None


class FirestoreKillSwitch:
    """Field ``enabled`` of a document such as ``ops/execution_kill_switch``: true halts, false
    does not, "reduce_only" lets only exposure-reducing orders through."""

    def __init__(self, document: CachedDocument) -> None:
        self._document = document
        self.source = f"firestore:{document.path}"

    def read(self) -> KillSwitchReading:
        try:
            data = self._document.get()
        except TransientError as exc:
            return unreadable(self.source, f"unreadable: {exc}")
        if data is None:
            return unreadable(self.source, "document does not exist")
        enabled = data.get("enabled")
        if isinstance(enabled, str) and enabled.strip().lower() in REDUCE_ONLY_VALUES:
            return KillSwitchReading(
                self.source, halted=False, value="reduce_only", reduce_only=True
            )
        if not isinstance(enabled, bool):
            return unreadable(
                self.source, "field 'enabled' is missing or not a boolean or \"reduce_only\""
            )
        return KillSwitchReading(self.source, halted=enabled, value=str(enabled).lower())

    def invalidate(self) -> None:
        """This process just wrote the document: read it fresh next time."""
        self._document.invalidate()


class FirestoreHeartbeat:
    """Field ``ts`` of the market-data heartbeat document: a timestamp, epoch seconds or ISO text."""

    def __init__(self, document: CachedDocument) -> None:
        self._document = document

    def last_beat(self) -> datetime | None:
        data = self._document.get()
        if data is None:
            return None
        return parse_heartbeat(data.get("ts"))


def parse_heartbeat(value: object) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise TransientError(f"heartbeat ts {value[:40]!r} is not a timestamp") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise TransientError(f"heartbeat ts has unsupported type {type(value).__name__}")
