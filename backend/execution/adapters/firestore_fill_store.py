"""Firestore side of the fill sync: the sync cursor, ledger merges and the order event history.

Events go to ``ledger_trades/{broker_order_id}/events/{event_id}`` with ``create()`` under
deterministic ids (``fill-<activity id>``, ``status-<status>``), so replaying a page never
duplicates an event: the second create fails with AlreadyExists and is counted as "seen".
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.cloud import firestore

from backend.execution.adapters.firestore_ledger import INTENTS, LEDGER
from backend.execution.errors import LedgerUnavailable
from backend.execution.fills import SyncCursor

SYNC_STATE = "execution_sync/fills"


def cursor_path(broker_account_id: str | None) -> str:
    """The sync cursor of one account (``execution_sync/fills-<account>``), so deployments of
    several accounts sharing a Firestore database never move each other's cursor. An account
    name that is not a safe document id is replaced by its digest."""
    if broker_account_id is None:
        return SYNC_STATE
    if re.fullmatch(r"[A-Za-z0-9_.:-]{1,100}", broker_account_id) and broker_account_id not in (
        ".",
        "..",
    ):
        return f"{SYNC_STATE}-{broker_account_id}"
    return f"{SYNC_STATE}-sha256-{hashlib.sha256(broker_account_id.encode()).hexdigest()[:24]}"


EVENTS = "events"


class FirestoreFillStore:
    def __init__(
        self, client: firestore.Client, *, timeout_s: float, state_path: str = SYNC_STATE
    ) -> None:
        self._db = client
        self._state_path = state_path
        self._timeout = timeout_s
        self._retry = Retry(initial=0.05, maximum=0.5, multiplier=2.0, timeout=timeout_s)

    def load_cursor(self) -> SyncCursor:
        snapshot = self._call(lambda: self._db.document(self._state_path).get(**self._opts()))
        return SyncCursor.from_dict(snapshot.to_dict() if snapshot.exists else None)

    def save_cursor(self, cursor: SyncCursor, now: datetime) -> None:
        data = cursor.to_dict() | {"updated_at": now}
        self._call(lambda: self._db.document(self._state_path).set(data, **self._opts()))

    def load_orders(self, order_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        refs = [self._db.collection(LEDGER).document(order_id) for order_id in set(order_ids)]
        if not refs:
            return {}
        snapshots = self._call(lambda: list(self._db.get_all(refs, **self._opts())))
        return {s.id: s.to_dict() or {} for s in snapshots if s.exists}

    def intent_of(self, client_order_id: str) -> dict[str, Any] | None:
        """The decision record behind a broker order, if the order is this service's."""
        if not client_order_id or "/" in client_order_id:
            return None
        ref = self._db.collection(INTENTS).document(client_order_id)
        snapshot = self._call(lambda: ref.get(**self._opts()))
        return snapshot.to_dict() if snapshot.exists else None

    def merge_order(self, order_id: str, fields: dict[str, Any], now: datetime) -> None:
        ref = self._db.collection(LEDGER).document(order_id)
        data = fields | {"updated_at": now, "last_synced_at": now}
        self._call(lambda: ref.set(data, merge=True, **self._opts()))

    def add_fill(self, order_id: str, activity_id: str, activity: dict[str, Any]) -> None:
        # A map keyed by activity id: merging it twice is harmless (ArrayUnion would not be
        # needed, and the emulator does not support it anyway).
        ref = self._db.collection(LEDGER).document(order_id)
        data = {"raw_fills": {activity_id: activity}}
        self._call(lambda: ref.set(data, merge=True, **self._opts()))

    def add_event(self, order_id: str, event_id: str, event: dict[str, Any], now: datetime) -> bool:
        """Appends an event; False if it was already recorded (a replay)."""
        ref = self._db.collection(LEDGER).document(order_id).collection(EVENTS).document(event_id)
        try:
            # retry=None: a retried create whose first try landed would look like a replay,
            # which is what it is, so that is only a question of counting.
            ref.create(event | {"recorded_at": now}, retry=None, timeout=self._timeout)
        except gexc.AlreadyExists:
            return False
        except gexc.GoogleAPIError as exc:
            raise LedgerUnavailable(f"Firestore {type(exc).__name__}: {str(exc)[:200]}") from None
        return True

    def _opts(self) -> dict[str, Any]:
        return {"retry": self._retry, "timeout": self._timeout}

    def _call(self, action: Any) -> Any:
        try:
            return action()
        except gexc.GoogleAPIError as exc:
            raise LedgerUnavailable(f"Firestore {type(exc).__name__}: {str(exc)[:200]}") from None
